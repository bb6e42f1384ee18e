package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

var ticketRE = regexp.MustCompile(`^[0-9]{18}$`)

// checkApproval checks every field of an approval, at the top level and
// under rawResponse.
func checkApproval(t *testing.T, r terminal.PaymentResponse, id, typ string) {
	t.Helper()
	levels := []terminal.PaymentResponse{r}
	if r.RawResponse == nil {
		t.Fatal("rawResponse missing")
	}
	levels = append(levels, *r.RawResponse)
	for i, l := range levels {
		if l.Approved == nil || !*l.Approved {
			t.Errorf("level %d: approved = %v, want true", i, l.Approved)
		}
		if l.TransactionStatus != terminal.StatusApproval {
			t.Errorf("level %d: transaction_status = %q, want APPROVAL", i, l.TransactionStatus)
		}
		if _, err := uuid.Parse(l.TransactionReference); err != nil {
			t.Errorf("level %d: transaction_reference %q is not a UUID", i, l.TransactionReference)
		}
		if !ticketRE.MatchString(l.TicketNumber) {
			t.Errorf("level %d: ticket_number %q is not 18 digits", i, l.TicketNumber)
		}
		if l.ClientTransactionID != id || l.TransactionType != typ {
			t.Errorf("level %d: id/type = %q/%q, want %q/%q", i, l.ClientTransactionID, l.TransactionType, id, typ)
		}
		if l.Franchise != "VISA" || l.CardType != "credit" || l.MaskedCard != "424242******4242" {
			t.Errorf("level %d: card = %q %q %q, want VISA credit 424242******4242", i, l.Franchise, l.CardType, l.MaskedCard)
		}
		if l.MessageFields == nil || len(l.MessageFields.F38) != 6 || l.MessageFields.F39 != "00" {
			t.Errorf("level %d: message_fields = %+v, want a 6-digit F38 and F39 00", i, l.MessageFields)
		}
		if l.KushkiResponse == nil || l.KushkiResponse.Code != "000" {
			t.Errorf("level %d: kushki_response = %+v, want code 000", i, l.KushkiResponse)
		}
	}
	if r.RawResponse.TransactionReference != r.TransactionReference || r.RawResponse.RawResponse != nil {
		t.Errorf("rawResponse does not mirror the top level: %+v", r.RawResponse)
	}
}

func TestChargeOnBothRoutesAndModes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    hmac.Mode
		encrypt bool
	}{
		{"hmac", hmac.ModeHMAC, false},
		{"encrypted", hmac.ModeEncrypted, false},
		{"encrypted responses", hmac.ModeEncrypted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startSim(t, func(c *sim.Config) { c.Auth, c.EncryptResponses = tc.mode, tc.encrypt })
			for _, route := range []func(terminal.Endpoint) (string, string){lan, cloud} {
				id := newID()
				m, p := route(terminal.EndpointCharge)
				body := mustMarshal(t, map[string]any{"client_transaction_id": id, "amount": amount("25.50")})
				sealed, err := f.signer.Seal(m, body, f.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				req, _ := http.NewRequest(m, f.base+p, bytes.NewReader(sealed.Body))
				req.Header = sealed.Header.Clone()
				resp, err := f.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				wire, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				encrypted := bytes.HasPrefix(wire, []byte(`{"data":`))
				if encrypted != tc.encrypt {
					t.Fatalf("%s: answer encrypted = %v, want %v (%s)", p, encrypted, tc.encrypt, wire)
				}
				plain, err := sealed.Open(wire)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				var r terminal.PaymentResponse
				if err := json.Unmarshal(plain, &r); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d, want 200 (%s)", p, resp.StatusCode, plain)
				}
				checkApproval(t, r, id, "charge")
				if e := f.entry(t, id); e.TimesTaken != 1 || e.Taken != money.MustParse("25.5") {
					t.Errorf("ledger: taken %s ×%d, want 25.5 ×1", e.Taken, e.TimesTaken)
				}
			}
			if got := f.sim.State().Routes; got["lan"] != 1 || got["cloud"] != 1 {
				t.Errorf("routes = %v, want lan 1 and cloud 1", got)
			}
		})
	}
}

func TestEveryOperationAnswersItsType(t *testing.T) {
	f := startSim(t, nil)
	ch := f.charge(t, newID(), "100")
	auth := f.authorize(t, newID(), "100")
	cases := []struct {
		ep   terminal.Endpoint
		body map[string]any
		typ  string
	}{
		{terminal.EndpointReAuthorization, followUp(newID(), auth.TransactionReference, amount("20")), "reAuthorization"},
		{terminal.EndpointPosTip, followUp(newID(), auth.TransactionReference,
			map[string]any{"iva": 0, "subtotal_iva": 0, "subtotal_iva0": 0, "tip": 5}), "posTip"},
		{terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("125")), "capture"},
		{terminal.EndpointRefund, followUp(newID(), ch.TransactionReference, amount("30")), "refund"},
	}
	for _, c := range cases {
		r := f.approved(t, c.ep, c.body)
		checkApproval(t, r, c.body["client_transaction_id"].(string), c.typ)
	}
	ch2 := f.charge(t, newID(), "7")
	f.clock.Advance(time.Minute)
	id := newID()
	checkApproval(t, f.approved(t, terminal.EndpointVoid, followUp(id, ch2.TransactionReference, nil)), id, "void")
}

func TestAuthenticationFailures(t *testing.T) {
	for _, mode := range []hmac.Mode{hmac.ModeHMAC, hmac.ModeEncrypted} {
		t.Run(string(mode), func(t *testing.T) {
			f := startSim(t, func(c *sim.Config) { c.Auth = mode })
			body := mustMarshal(t, map[string]any{"client_transaction_id": newID(), "amount": amount("5")})
			wrong, err := hmac.NewSigner(mode, hmac.Credential{Secret: "another-secret", Serial: testSerial})
			if err != nil {
				t.Fatal(err)
			}
			m, p := lan(terminal.EndpointCharge)
			cases := []struct {
				name string
				req  func() *http.Request
				code string
			}{
				{"no headers", func() *http.Request {
					r, _ := http.NewRequest(m, f.base+p, bytes.NewReader(body))
					return r
				}, hmac.CodeMissingHeader},
				{"wrong credential", func() *http.Request {
					s, _ := wrong.Seal(m, body, f.clock.Now())
					r, _ := http.NewRequest(m, f.base+p, bytes.NewReader(s.Body))
					r.Header = s.Header
					return r
				}, hmac.CodeSignature},
				{"stale timestamp", func() *http.Request {
					s, _ := f.signer.Seal(m, body, f.clock.Now().Add(-6*time.Minute))
					r, _ := http.NewRequest(m, f.base+p, bytes.NewReader(s.Body))
					r.Header = s.Header
					return r
				}, hmac.CodeTimestamp},
			}
			for _, c := range cases {
				resp, err := f.client.Do(c.req())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				failure(t, resp.StatusCode, b, http.StatusUnauthorized, terminal.TypeAuthentication, c.code)
			}
			st := f.sim.State()
			if st.AuthFailures != len(cases) || st.Transactions != 0 {
				t.Errorf("auth failures %d, transactions %d; want %d and 0", st.AuthFailures, st.Transactions, len(cases))
			}
			// The LAN GET /abort has no body and is signed too.
			am, ap := lan(terminal.EndpointAbort)
			req, _ := http.NewRequest(am, f.base+ap, nil)
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			failure(t, resp.StatusCode, b, http.StatusUnauthorized, terminal.TypeAuthentication, hmac.CodeMissingHeader)
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	f := startSim(t, nil)
	body := mustMarshal(t, map[string]any{"client_transaction_id": newID(), "amount": amount("5")})
	cases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"other serial", http.MethodPost, "/terminal/v1/OTHER/sync/charge", 404, sim.CodeNoRoute},
		{"unknown endpoint", http.MethodPost, "/terminal/v1/sync/print", 404, sim.CodeNoRoute},
		{"async not simulated", http.MethodPost, "/terminal/v1/async/charge", 404, sim.CodeNoRoute},
		{"LAN abort is GET", http.MethodPost, "/terminal/v1/sync/abort", 405, sim.CodeMethod},
		{"cloud abort is POST", http.MethodGet, "/terminal/v1/" + testSerial + "/sync/abort", 405, sim.CodeMethod},
		{"LAN online search has no /sync", http.MethodPost, "/terminal/v1/sync/transaction_search_online", 404, sim.CodeNoRoute},
		{"cloud online search has /sync", http.MethodPost, "/terminal/v1/" + testSerial + "/transaction_search_online", 404, sim.CodeNoRoute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b := f.do(t, c.method, c.path, body)
			failure(t, st, b, c.status, terminal.TypeNotFound, c.code)
		})
	}
	if n := f.sim.State().Transactions; n != 0 {
		t.Errorf("transactions = %d, want 0", n)
	}
}

// TestTwoListenersShareOneTerminal serves one simulator on a "LAN" and a
// "cloud" listener: a charge blocking on one makes the other busy, and a
// search on either sees both routes' transactions.
func TestTwoListenersShareOneTerminal(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = 10*time.Second, -1 })
	cloudBase := serve(t, f.sim)

	id := newID()
	done := make(chan int, 1)
	go func() {
		st, _, _ := f.try(http.MethodPost, "/terminal/v1/sync/charge",
			mustMarshal(t, map[string]any{"client_transaction_id": id, "amount": amount("12")}))
		done <- st
	}()
	tm := f.timers.next(t)
	f.waitActive(t, "customer")

	cf := *f
	cf.base = cloudBase
	m, p := cloud(terminal.EndpointCharge)
	st, b := cf.do(t, m, p, mustMarshal(t, map[string]any{"client_transaction_id": newID(), "amount": amount("3")}))
	failure(t, st, b, http.StatusConflict, terminal.TypeTerminal, sim.CodeBusy)

	tm.fire()
	if st := <-done; st != http.StatusOK {
		t.Fatalf("charge status %d, want 200", st)
	}
	m, p = cloud(terminal.EndpointSearchLocal)
	st, b = cf.do(t, m, p, mustMarshal(t, terminal.SearchRequest{Page: 1, Size: 10}))
	var r terminal.SearchResponse
	if err := json.Unmarshal(b, &r); err != nil || st != 200 {
		t.Fatalf("search: %d %s", st, b)
	}
	if r.Total != 1 || r.Items[0].ClientTransactionID != id {
		t.Errorf("cloud listener's local search = %+v, want the LAN charge", r)
	}
}

func TestCloseAnswersNothingAndReturns(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime = time.Hour })
	errc := make(chan error, 1)
	go func() {
		_, _, err := f.try(http.MethodPost, "/terminal/v1/sync/charge",
			mustMarshal(t, map[string]any{"client_transaction_id": newID(), "amount": amount("12")}))
		errc <- err
	}()
	f.timers.next(t)
	f.waitActive(t, "customer")
	closed := make(chan error, 1)
	go func() { closed <- f.sim.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s while a charge was waiting")
	}
	if err := <-errc; !isConnError(err) {
		t.Errorf("charge during Close: got %v, want a connection error", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sim.Serve(l); err != sim.ErrClosed {
		t.Errorf("Serve after Close: got %v, want ErrClosed", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve after Close left its listener open")
	}
}

func TestConfigValidation(t *testing.T) {
	ok := sim.Config{Serial: "S1", Credential: hmac.Credential{Secret: "secret"}}
	cases := []struct {
		name string
		edit func(*sim.Config)
		want string
	}{
		{"no serial", func(c *sim.Config) { c.Serial = "" }, "serial"},
		{"serial with slash", func(c *sim.Config) { c.Serial = "a/b" }, "serial"},
		{"no secret", func(c *sim.Config) { c.Credential.Secret = "" }, "secret"},
		{"serial mismatch", func(c *sim.Config) { c.Credential.Serial = "S2" }, "serial"},
		{"currency", func(c *sim.Config) { c.Currency = "USD" }, "currency"},
		{"mode", func(c *sim.Config) { c.Auth = "basic" }, "mode"},
		{"idempotency", func(c *sim.Config) { c.Idempotency = "maybe" }, "idempotency"},
		{"unmasked card", func(c *sim.Config) { c.Card = sim.Card{Masked: "4242424242424242"} }, "masked"},
	}
	for _, c := range cases {
		cfg := ok
		c.edit(&cfg)
		_, err := sim.New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret\"") {
			t.Errorf("%s: error reveals the secret: %v", c.name, err)
		}
	}
	if _, err := sim.New(ok); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestHandlerInHTTPTestServer(t *testing.T) {
	s, err := sim.New(sim.Config{Serial: testSerial, Credential: hmac.Credential{Secret: testSecret}, ThinkTime: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	signer, _ := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: testSecret})
	body := mustMarshal(t, map[string]any{"client_transaction_id": newID(), "amount": amount("1")})
	sealed, _ := signer.Seal(http.MethodPost, body, time.Now())
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "/terminal/v1/sync/charge", bytes.NewReader(sealed.Body))
	req.Header = sealed.Header
	rec := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusOK || !bytes.Contains(rec.body.Bytes(), []byte(`"approved":true`)) {
		t.Errorf("got %d %s, want an approval", rec.status, rec.body.Bytes())
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
