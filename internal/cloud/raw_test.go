package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

const testCredential = "priv-cred-0123456789abcdef"

// rawServer is a fake raw card-present API on 127.0.0.1 that records what it
// received and answers with a fixed status and body.
type rawServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	status   int
	body     []byte
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

func newRawServer(t *testing.T, status int, body []byte) *rawServer {
	t.Helper()
	s := &rawServer{status: status, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, recorded{r.Method, r.URL.Path, r.Header.Clone(), b})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rawServer) got() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.requests...)
}

func newClient(t *testing.T, base string, mod ...func(*RawConfig)) *RawClient {
	t.Helper()
	cfg := RawConfig{
		BaseURL:    base,
		Credential: testCredential,
		Currencies: map[string]money.Currency{"lane1": money.PEN, "lane2": money.CLP},
		Timeout:    20 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewRawClient(cfg)
	if err != nil {
		t.Fatalf("NewRawClient: %v", err)
	}
	return c
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func penAmount() payment.Amount {
	return payment.Amount{IVA: money.MustParse("1.80"), SubtotalIVA: money.MustParse("10.00"), SubtotalIVA0: money.MustParse("0")}
}

func TestReverseSendsTheDocumentedRequest(t *testing.T) {
	srv := newRawServer(t, http.StatusOK, testdata(t, "reverse-approved.json"))
	c := newClient(t, srv.URL+"/")
	id := "6680eadc-6c8d-44aa-8ca0-18e061c1472a"
	if _, err := c.Reverse(context.Background(), "lane1", id, penAmount()); err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	reqs := srv.got()
	if len(reqs) != 1 {
		t.Fatalf("requests: got %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/pos/v1/transaction" {
		t.Errorf("request: got %s %s, want POST /pos/v1/transaction", r.method, r.path)
	}
	for k, want := range map[string]string{"Private-Credential-Id": testCredential, "Content-Type": "application/json"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	// Numbers compared as written: the amount is exact decimals, never floats.
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var got map[string]any
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	want := map[string]any{
		"amount": map[string]any{
			"currency": "PEN", "iva": json.Number("1.8"), "subtotal_iva": json.Number("10"), "subtotal_iva0": json.Number("0"),
		},
		"transaction_mode":      "Reverse",
		"transaction_type":      "charge",
		"client_transaction_id": id,
		"omit_card":             true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body:\n got %v\nwant %v", got, want)
	}

	// Extra taxes go along; the terminal's own currency is used.
	ice := money.MustParse("250")
	amt := payment.Amount{SubtotalIVA0: money.MustParse("6000"), ExtraTaxes: &payment.ExtraTaxes{ICE: &ice}}
	if _, err := c.Reverse(context.Background(), "lane2", id, amt); err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	body := string(srv.got()[1].body)
	if !strings.Contains(body, `"currency":"CLP"`) || !strings.Contains(body, `"extra_taxes":{"ice":250}`) {
		t.Errorf("body: got %s, want currency CLP and extra_taxes.ice 250", body)
	}
}

func TestReverseRefusesBeforeSending(t *testing.T) {
	srv := newRawServer(t, http.StatusOK, testdata(t, "reverse-approved.json"))
	c := newClient(t, srv.URL)
	tip := money.MustParse("1")
	tests := []struct {
		name, terminal, id string
		amount             payment.Amount
		want               string
	}{
		{"unknown terminal", "lane9", "id-1", penAmount(), `no currency configured for terminal "lane9"`},
		{"empty id", "lane1", "", penAmount(), "empty client_transaction_id"},
		{"tip", "lane1", "id-1", payment.Amount{SubtotalIVA0: money.MustParse("10"), Tip: &tip}, "tip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Reverse(context.Background(), tc.terminal, tc.id, tc.amount)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %+v, %v; want an error containing %q", res, err, tc.want)
			}
		})
	}
	if n := len(srv.got()); n != 0 {
		t.Errorf("requests: got %d, want none", n)
	}
}

// outcome is how a test case expects Reverse to end.
type outcome int

const (
	approved outcome = iota
	declined
	refused // *payment.TerminalError
	unknown // payment.ErrOutcomeUnknown
	notSent // payment.ErrNotSent
)

func (o outcome) String() string {
	return [...]string{"approved", "declined", "refused", "outcome unknown", "not sent"}[o]
}

func classify(res *payment.Result, err error) outcome {
	var te *payment.TerminalError
	switch {
	case err == nil && res != nil && res.Status == payment.StatusApproved:
		return approved
	case err == nil && res != nil && res.Status == payment.StatusDeclined:
		return declined
	case errors.As(err, &te):
		return refused
	case errors.Is(err, payment.ErrOutcomeUnknown) && !errors.Is(err, payment.ErrNotSent):
		return unknown
	case errors.Is(err, payment.ErrNotSent) && !errors.Is(err, payment.ErrOutcomeUnknown):
		return notSent
	}
	return -1
}

func TestReverseAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   []byte
		want   outcome
		check  func(t *testing.T, res *payment.Result, err error)
	}{
		{
			name: "approved (vendor sample)", status: 200, body: testdata(t, "reverse-approved.json"), want: approved,
			check: func(t *testing.T, res *payment.Result, _ error) {
				want := payment.Result{Route: payment.RouteCloud, Status: payment.StatusApproved,
					Reference: "260091a5-3ce6-43bd-92ef-4100b024fcd9", TicketNumber: "111728108177182252",
					AuthorizationCode: "123456", Card: &payment.Card{Brand: "VISA", Type: "debit"}, Code: "000",
					Message: "Approval and completed successfully Accepted and processed."}
				got := *res
				got.Raw = nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("result:\n got %+v\nwant %+v", got, want)
				}
				if !strings.Contains(string(res.Raw), `"transaction_status":"APPROVAL"`) || strings.Contains(string(res.Raw), "additional_amounts") {
					t.Errorf("Raw: got %s, want the documented fields only", res.Raw)
				}
			},
		},
		{
			name: "declined, numbers for codes, EMV data dropped", status: 200, body: testdata(t, "reverse-declined-emv.json"), want: declined,
			check: func(t *testing.T, res *payment.Result, _ error) {
				if res.Code != "5" || res.TicketNumber != "111728108177182253" || res.Card.Brand != "MASTERCARD" {
					t.Errorf("result: got code %q ticket %q card %+v, want 5, 111728108177182253, MASTERCARD", res.Code, res.TicketNumber, res.Card)
				}
				for _, secret := range []string{"9F2608", "5413330089600020", "F55", "card_number"} {
					if strings.Contains(string(res.Raw), secret) {
						t.Errorf("Raw keeps %q: %s", secret, res.Raw)
					}
				}
			},
		},
		{
			name: "already reversed counts as reversed", status: 400, body: testdata(t, "error-400-e048.json"), want: approved,
			check: func(t *testing.T, res *payment.Result, _ error) {
				if res.Code != CodeAlreadyReversed || !strings.Contains(res.Message, "already reversed") {
					t.Errorf("result: got code %q message %q, want E048 and the vendor's message", res.Code, res.Message)
				}
			},
		},
		{
			name: "400 operation not allowed", status: 400, body: testdata(t, "error-400-e041.json"), want: refused,
			check: func(t *testing.T, _ *payment.Result, err error) {
				var te *payment.TerminalError
				errors.As(err, &te)
				if te.Code != "E041" || te.HTTPStatus != 400 || te.Type != "RAW-API" || te.Route != payment.RouteCloud ||
					te.Message != "Operación no permitida: Partial void not allowed" {
					t.Errorf("error: got %+v, want E041, 400, RAW-API, cloud, both messages", te)
				}
			},
		},
		{
			name: "401 unauthorized", status: 401, body: testdata(t, "error-401.json"), want: refused,
			check: func(t *testing.T, _ *payment.Result, err error) {
				var te *payment.TerminalError
				errors.As(err, &te)
				if te.HTTPStatus != 401 || te.Code != "HTTP401" || te.Message != "Unauthorized" {
					t.Errorf("error: got %+v, want 401, HTTP401, Unauthorized", te)
				}
			},
		},
		{name: "404 with an HTML body", status: 404, body: []byte("<html>not found</html>"), want: refused},
		{name: "429", status: 429, body: nil, want: refused},
		{name: "408 request timeout", status: 408, body: nil, want: unknown},
		{
			name: "500 E002", status: 500, body: testdata(t, "error-500-e002.json"), want: unknown,
			check: func(t *testing.T, _ *payment.Result, err error) {
				var e *Error
				if !errors.As(err, &e) || e.HTTPStatus != 500 || e.Code != "E002" || !e.Sent {
					t.Errorf("error: got %#v, want *Error 500 E002 sent", err)
				}
			},
		},
		{name: "502 from a proxy, HTML", status: 502, body: []byte("<html>bad gateway</html>"), want: unknown},
		{name: "200 not JSON", status: 200, body: []byte("OK"), want: unknown},
		{name: "200 JSON null", status: 200, body: []byte("null"), want: unknown},
		{name: "200 without transaction_status", status: 200, body: []byte(`{"transaction_reference":"r"}`), want: unknown},
		{name: "200 with an unknown transaction_status", status: 200, body: []byte(`{"transaction_status":"PENDING"}`), want: unknown},
		{name: "200 with approved:true but no status", status: 200, body: []byte(`{"approved":true}`), want: unknown},
		{name: "202 accepted", status: 202, body: []byte(`{"transaction_status":"APPROVAL"}`), want: unknown},
		{name: "302 redirect not followed", status: 302, body: nil, want: unknown},
		{name: "lower-case approval", status: 200, body: []byte(`{"transaction_status":"approval"}`), want: approved},
		// An approval followed by more than 1 MiB of blanks: what was read
		// would parse, but the answer was not read whole.
		{name: "200 over 1 MiB", status: 200, body: []byte(`{"transaction_status":"APPROVAL"}` + strings.Repeat(" ", maxAnswer)), want: unknown},
		{name: "400 over 1 MiB", status: 400, body: []byte(`{"code":"E041","message":"` + strings.Repeat("x", maxAnswer) + `"}`), want: refused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, tc.status, tc.body)
			res, err := newClient(t, srv.URL).Reverse(context.Background(), "lane1", "id-1", penAmount())
			if got := classify(res, err); got != tc.want {
				t.Fatalf("got %v (%+v, %v), want %v", got, res, err, tc.want)
			}
			if err != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), testCredential) {
				t.Errorf("error shows the credential: %v", err)
			}
			if tc.check != nil {
				tc.check(t, res, err)
			}
		})
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestReverseTransportFailures(t *testing.T) {
	// Accepts, reads the request, and drops the connection without an answer.
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer drop.Close()
	// Holds the request until the client gives up.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	// Half an answer: headers, then the connection drops mid-body.
	half := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		w.Write([]byte(`{"transaction_status":"APPR`))
		w.(http.Flusher).Flush()
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer half.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		base    string
		ctx     context.Context
		timeout time.Duration
		want    outcome
	}{
		{"connection refused", "http://" + closedAddr(t), context.Background(), 0, notSent},
		{"untrusted certificate", tlsSrv.URL, context.Background(), 0, notSent},
		{"context ended before sending", drop.URL, cancelled, 0, notSent},
		{"connection dropped after the request", drop.URL, context.Background(), 0, unknown},
		{"no answer before the deadline", hang.URL, context.Background(), 100 * time.Millisecond, unknown},
		{"answer cut in the middle", half.URL, context.Background(), 0, unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.base, func(cfg *RawConfig) {
				if tc.timeout > 0 {
					cfg.Timeout = tc.timeout
				}
			})
			res, err := c.Reverse(tc.ctx, "lane1", "id-1", penAmount())
			if got := classify(res, err); got != tc.want {
				t.Fatalf("got %v (%+v, %v), want %v", got, res, err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != "reverse" || e.ID != "id-1" {
				t.Errorf("error: got %#v, want *Error for reverse id-1", err)
			}
			if strings.Contains(err.Error(), testCredential) {
				t.Errorf("error shows the credential: %v", err)
			}
		})
	}
}

func TestNewRawClientRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  RawConfig
		want string
	}{
		{"no base URL", RawConfig{Credential: testCredential}, "base URL"},
		{"relative base URL", RawConfig{BaseURL: "api.kushkipagos.com", Credential: testCredential}, "base URL"},
		{"no credential", RawConfig{BaseURL: RawUATURL}, "no Private-Credential-Id"},
		{"credential with newline", RawConfig{BaseURL: RawUATURL, Credential: testCredential + "\r\nX-Evil: 1"}, "control characters"},
		{"credential with space", RawConfig{BaseURL: RawUATURL, Credential: "a " + testCredential}, "spaces"},
		{"unknown currency", RawConfig{BaseURL: RawUATURL, Credential: testCredential, Currencies: map[string]money.Currency{"lane1": "USD"}}, `unknown currency "USD"`},
		{"negative timeout", RawConfig{BaseURL: RawUATURL, Credential: testCredential, Timeout: -1}, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewRawClient(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want an error containing %q", c, err, tc.want)
			}
			if strings.Contains(err.Error(), testCredential) {
				t.Errorf("error shows the credential: %v", err)
			}
		})
	}
}

func TestCredentialNotPrinted(t *testing.T) {
	cfg := RawConfig{BaseURL: RawUATURL, Credential: testCredential}
	c, err := NewRawClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(c), fmt.Sprintf("%+v", c)} {
		if strings.Contains(s, testCredential) {
			t.Errorf("printed form shows the credential: %s", s)
		}
	}
}

// FuzzReverseAnswer feeds arbitrary answers to the answer mapping: it must
// never panic, report approved only on transaction_status APPROVAL (or the
// documented E048), and keep nothing undocumented in Raw.
func FuzzReverseAnswer(f *testing.F) {
	for _, name := range []string{"reverse-approved.json", "reverse-declined-emv.json", "error-400-e048.json", "error-400-e041.json", "error-401.json", "error-500-e002.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, st := range []int{200, 400, 401, 500} {
			f.Add(st, b)
		}
	}
	f.Add(200, []byte(`{"transaction_status":7}`))
	f.Add(200, []byte(`{"message_fields":{"F55":"x"},"transaction_status":"APPROVAL"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			return
		}
		res, err := reverseAnswer("id-1", status, body)
		if (res == nil) == (err == nil) {
			t.Fatalf("got %+v and %v: want exactly one", res, err)
		}
		if res == nil {
			return
		}
		var probe struct {
			Status flexString `json:"transaction_status"`
			Code   flexString `json:"code"`
		}
		json.Unmarshal(body, &probe)
		if res.Status == payment.StatusApproved {
			isApproval := status == 200 || status == 201
			isApproval = isApproval && strings.EqualFold(string(probe.Status), "APPROVAL")
			isE048 := status == 400 && probe.Code == CodeAlreadyReversed
			if !isApproval && !isE048 {
				t.Fatalf("approved from status %d body %q", status, body)
			}
		}
		if bytes.Contains(res.Raw, []byte("F55")) {
			t.Fatalf("Raw keeps F55: %s", res.Raw)
		}
	})
}
