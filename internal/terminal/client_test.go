package terminal

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/payment"
)

// TestOperations sends every operation on both routes and checks the method,
// path and exact body the terminal received, and the classified answer.
func TestOperations(t *testing.T) {
	amount := testAmount()
	tip := testAmount()
	tip.Tip = decp("2.5")
	meta := Metadata{"reference": "A&B <1>"}

	type call func(context.Context, *Client) (*payment.Result, error)
	ops := []struct {
		name      string
		call      call
		lanPath   string
		cloudPath string
		body      string
	}{
		{"charge", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Charge(ctx, ChargeRequest{ClientTransactionID: "id-1", Amount: amount, Metadata: meta})
		}, "/terminal/v1/sync/charge", "/terminal/v1/P3SN0001/sync/charge",
			// SetEscapeHTML(false): & < > stay as they are.
			`{"client_transaction_id":"id-1","amount":` + testAmountJSON + `,"metadata":{"reference":"A&B <1>"}}`},
		{"authorization", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Authorization(ctx, AuthorizationRequest{ClientTransactionID: "id-2", Amount: amount})
		}, "/terminal/v1/sync/authorization", "/terminal/v1/P3SN0001/sync/authorization",
			`{"client_transaction_id":"id-2","amount":` + testAmountJSON + `}`},
		{"capture", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Capture(ctx, CaptureRequest{ClientTransactionID: "id-3", TransactionReference: "ref-a", Amount: amount})
		}, "/terminal/v1/sync/capture", "/terminal/v1/P3SN0001/sync/capture",
			`{"client_transaction_id":"id-3","transaction_reference":"ref-a","amount":` + testAmountJSON + `}`},
		{"re_authorization", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.ReAuthorization(ctx, ReAuthorizationRequest{ClientTransactionID: "id-4", TransactionReference: "ref-a", Amount: amount})
		}, "/terminal/v1/sync/re_authorization", "/terminal/v1/P3SN0001/sync/re_authorization",
			`{"client_transaction_id":"id-4","transaction_reference":"ref-a","amount":` + testAmountJSON + `}`},
		{"pos_tip", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.PosTip(ctx, PosTipRequest{ClientTransactionID: "id-5", TransactionReference: "ref-a", Amount: tip})
		}, "/terminal/v1/sync/pos_tip", "/terminal/v1/P3SN0001/sync/pos_tip",
			`{"client_transaction_id":"id-5","transaction_reference":"ref-a","amount":{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0,"tip":2.5}}`},
		{"void", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Void(ctx, VoidRequest{ClientTransactionID: "id-6", TransactionReference: "ref-a"})
		}, "/terminal/v1/sync/void", "/terminal/v1/P3SN0001/sync/void",
			`{"client_transaction_id":"id-6","transaction_reference":"ref-a"}`},
		{"refund", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Refund(ctx, RefundRequest{ClientTransactionID: "id-7", TransactionReference: "ref-a", Amount: &amount})
		}, "/terminal/v1/sync/refund", "/terminal/v1/P3SN0001/sync/refund",
			`{"client_transaction_id":"id-7","transaction_reference":"ref-a","amount":` + testAmountJSON + `}`},
		{"refund rest", func(ctx context.Context, c *Client) (*payment.Result, error) {
			return c.Refund(ctx, RefundRequest{ClientTransactionID: "id-8", TransactionReference: "ref-a"})
		}, "/terminal/v1/sync/refund", "/terminal/v1/P3SN0001/sync/refund",
			`{"client_transaction_id":"id-8","transaction_reference":"ref-a"}`},
	}
	for _, mode := range []hmac.Mode{hmac.ModeHMAC, hmac.ModeEncrypted} {
		ft := newFakeTerminal(t, mustVerifier(t, mode, false), func(recorded) (int, string) { return 200, approvedAnswer })
		for _, kind := range []Kind{LAN, Cloud} {
			base, wantRoute := ft.lanURL(), payment.RouteLAN
			if kind == Cloud {
				base, wantRoute = ft.cloudURL(), payment.RouteCloud
			}
			c := mustClient(t, ClientConfig{BaseURL: base, Kind: kind, Signer: mustSigner(t, mode)})
			for _, op := range ops {
				t.Run(string(mode)+"/"+string(kind)+"/"+op.name, func(t *testing.T) {
					n := len(ft.requests())
					res, err := op.call(context.Background(), c)
					if err != nil {
						t.Fatalf("got error %v, want approval", err)
					}
					if res.Status != payment.StatusApproved || res.Route != wantRoute {
						t.Errorf("got status %s route %s, want approved %s", res.Status, res.Route, wantRoute)
					}
					reqs := ft.requests()
					if len(reqs) != n+1 {
						t.Fatalf("terminal got %d requests, want 1", len(reqs)-n)
					}
					got := reqs[n]
					wantPath := op.lanPath
					if kind == Cloud {
						wantPath = op.cloudPath
					}
					if got.Method != http.MethodPost || got.Path != wantPath {
						t.Errorf("got %s %s, want POST %s", got.Method, got.Path, wantPath)
					}
					if got.Body != op.body {
						t.Errorf("got body %s\nwant %s", got.Body, op.body)
					}
					for _, h := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
						if v := got.Header.Get(h); v != "" {
							t.Errorf("got header %s: %q, want none (net/http would replay the POST)", h, v)
						}
					}
				})
			}
		}
	}
}

// TestControlPaths checks abort and the searches on both routes: the route
// differences of research §1.
func TestControlPaths(t *testing.T) {
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(r recorded) (int, string) {
		if strings.HasSuffix(r.Path, "/abort") {
			return 200, `{"message":"aborted"}`
		}
		return 200, `{"items":[],"page":1,"size":10,"total":0}`
	})
	search := SearchRequest{Page: 1, Size: 10, Filters: SearchFilters{ClientTransactionID: "id-9"}}
	const searchBody = `{"page":1,"size":10,"filters":{"client_transaction_id":"id-9"}}`
	cases := []struct {
		name       string
		kind       Kind
		call       func(context.Context, *Client) error
		wantMethod string
		wantPath   string
		wantBody   string
	}{
		{"lan abort", LAN, func(ctx context.Context, c *Client) error { return c.Abort(ctx) },
			"GET", "/terminal/v1/sync/abort", ""},
		{"cloud abort", Cloud, func(ctx context.Context, c *Client) error { return c.Abort(ctx) },
			"POST", "/terminal/v1/P3SN0001/sync/abort", "{}"},
		{"lan local search", LAN, func(ctx context.Context, c *Client) error { _, err := c.SearchLocal(ctx, search); return err },
			"POST", "/terminal/v1/sync/transaction_search_local", searchBody},
		{"cloud local search", Cloud, func(ctx context.Context, c *Client) error { _, err := c.SearchLocal(ctx, search); return err },
			"POST", "/terminal/v1/P3SN0001/sync/transaction_search_local", searchBody},
		{"lan online search", LAN, func(ctx context.Context, c *Client) error { _, err := c.SearchOnline(ctx, search); return err },
			"POST", "/terminal/v1/transaction_search_online", searchBody},
		{"cloud online search", Cloud, func(ctx context.Context, c *Client) error { _, err := c.SearchOnline(ctx, search); return err },
			"POST", "/terminal/v1/P3SN0001/sync/transaction_search_online", searchBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := ft.lanURL()
			if tc.kind == Cloud {
				base = ft.cloudURL()
			}
			c := mustClient(t, ClientConfig{BaseURL: base, Kind: tc.kind, Signer: mustSigner(t, hmac.ModeHMAC)})
			n := len(ft.requests())
			if err := tc.call(context.Background(), c); err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			got := ft.requests()[n]
			if got.Method != tc.wantMethod || got.Path != tc.wantPath || got.Body != tc.wantBody {
				t.Errorf("got %s %s %q, want %s %s %q", got.Method, got.Path, got.Body, tc.wantMethod, tc.wantPath, tc.wantBody)
			}
		})
	}
}

func TestAbortAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		check  func(error) bool
	}{
		{"aborted", 200, `{"message":"ok"}`, func(err error) bool { return err == nil }},
		{"aborted empty body", 200, ``, func(err error) bool { return err == nil }},
		{"409 nothing", 409, `{"type":"TERMINAL","code":"TER-004","message":"no transaction"}`,
			func(err error) bool { return errors.Is(err, payment.ErrNothingToAbort) }},
		{"409 no body", 409, ``, func(err error) bool { return errors.Is(err, payment.ErrNothingToAbort) }},
		{"200 cancel body", 200, `{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}`,
			func(err error) bool { return err == nil }},
		{"200 TER-004 body", 200, `{"type":"TERMINAL","code":"TER-004","message":"no transaction"}`,
			func(err error) bool { return errors.Is(err, payment.ErrNothingToAbort) }},
		{"401", 401, `{"message":"Unauthorized"}`, func(err error) bool {
			var te *payment.TerminalError
			return errors.As(err, &te) && te.Type == TypeAuthentication && te.Route == payment.RouteLAN
		}},
		{"500", 500, `oops`, func(err error) bool { return errors.Is(err, payment.ErrOutcomeUnknown) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) { return tc.status, tc.body })
			c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeHMAC)})
			if err := c.Abort(context.Background()); !tc.check(err) {
				t.Errorf("got %v, which the case does not accept", err)
			}
		})
	}
}

func TestSearchAnswers(t *testing.T) {
	const answer = `{"items":[{"client_transaction_id":"id-1","transaction_type":"charge","transaction_status":"APPROVAL",` +
		`"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":10},"masked_card":"4242424242424242","created":1767225600000},` +
		`{"client_transaction_id":"id-2","transaction_type":"charge","transaction_status":"DECLINED",` +
		`"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5},"masked_card":"424242******4242","created":1767225500000}],` +
		`"page":1,"size":10,"total":2}`
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) { return 200, answer })
	c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeHMAC)})
	resp, err := c.SearchLocal(context.Background(), SearchRequest{Page: 1, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items) != 2 || resp.Total != 2 {
		t.Fatalf("got %d items total %d, want 2 and 2", len(resp.Items), resp.Total)
	}
	if got := resp.Items[0].MaskedCard; got != "" {
		t.Errorf("got masked_card %q for a full card number, want it dropped", got)
	}
	if got := resp.Items[1].MaskedCard; got != "424242******4242" {
		t.Errorf("got masked_card %q, want 424242******4242", got)
	}

	// Refused before sending.
	n := len(ft.requests())
	if _, err := c.SearchLocal(context.Background(), SearchRequest{Page: 1, Size: 10,
		Filters: SearchFilters{TransactionType: "charge"}}); err == nil {
		t.Error("got nil error for a local search on transaction_type, want a refusal")
	}
	if _, err := c.SearchOnline(context.Background(), SearchRequest{Page: 1, Size: MaxSearchSize + 1}); err == nil {
		t.Error("got nil error for size 501, want a refusal")
	}
	if got := len(ft.requests()) - n; got != 0 {
		t.Errorf("terminal got %d requests for refused searches, want 0", got)
	}
}

// TestEncryptedAnswer: a terminal in the encrypted mode answers encrypted;
// the client decrypts before it classifies.
func TestEncryptedAnswer(t *testing.T) {
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeEncrypted, true), func(recorded) (int, string) { return 200, approvedAnswer })
	c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeEncrypted)})
	res, err := c.Charge(context.Background(), ChargeRequest{ClientTransactionID: "id-1", Amount: testAmount()})
	if err != nil {
		t.Fatalf("got %v, want approval", err)
	}
	if res.Status != payment.StatusApproved || res.Reference != "ref-123" {
		t.Errorf("got %s %q, want approved ref-123", res.Status, res.Reference)
	}
	ft.mu.Lock()
	wire := string(ft.wire[0])
	ft.mu.Unlock()
	if !strings.HasPrefix(wire, `{"data":"`) || strings.Contains(wire, "approved") {
		t.Errorf("the answer on the wire was %.80s, want it encrypted", wire)
	}

	// An answer that claims to be encrypted but does not decrypt is unclear.
	bad := newFakeTerminal(t, mustVerifier(t, hmac.ModeEncrypted, false), func(recorded) (int, string) {
		return 200, `{"data":"00112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`
	})
	c2 := mustClient(t, ClientConfig{BaseURL: bad.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeEncrypted)})
	_, err = c2.Charge(context.Background(), ChargeRequest{ClientTransactionID: "id-2", Amount: testAmount()})
	var ue *UnclearAnswerError
	if !errors.As(err, &ue) || !errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Errorf("got %v, want an UnclearAnswerError (outcome unknown)", err)
	}
}

func TestNewClientRejects(t *testing.T) {
	s := mustSigner(t, hmac.ModeHMAC)
	cases := []struct {
		name string
		cfg  ClientConfig
	}{
		{"no url", ClientConfig{Kind: LAN, Signer: s}},
		{"relative", ClientConfig{BaseURL: "/terminal/v1", Kind: LAN, Signer: s}},
		{"ftp", ClientConfig{BaseURL: "ftp://x/terminal/v1", Kind: LAN, Signer: s}},
		{"no kind", ClientConfig{BaseURL: "http://x:6868/terminal/v1", Signer: s}},
		{"no signer", ClientConfig{BaseURL: "http://x:6868/terminal/v1", Kind: LAN}},
		{"negative", ClientConfig{BaseURL: "http://x:6868/terminal/v1", Kind: LAN, Signer: s, ConnectTimeout: -1}},
	}
	for _, tc := range cases {
		if _, err := NewClient(tc.cfg); err == nil {
			t.Errorf("%s: got nil error, want a refusal", tc.name)
		}
	}
}

// TestEncryptedRefusalUnreadable: a 4xx whose body has the encrypted shape
// but does not decrypt is still a refusal (the terminal ran nothing), not an
// unknown outcome.
func TestEncryptedRefusalUnreadable(t *testing.T) {
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeEncrypted, false), func(recorded) (int, string) {
		return 400, `{"data":"00112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`
	})
	c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeEncrypted)})
	_, err := c.Charge(context.Background(), ChargeRequest{ClientTransactionID: "id-1", Amount: testAmount()})
	var te *payment.TerminalError
	if !errors.As(err, &te) || errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Fatalf("got %v (%T), want a *payment.TerminalError and not outcome unknown", err, err)
	}
	if te.HTTPStatus != 400 || te.Code != "400" || te.Route != payment.RouteLAN {
		t.Errorf("got status %d code %q route %q, want 400 400 lan", te.HTTPStatus, te.Code, te.Route)
	}
}

// failingSigner is a Signer whose Seal always fails.
type failingSigner struct{}

func (failingSigner) Seal(string, []byte, time.Time) (*hmac.Sealed, error) {
	return nil, errors.New("iv source failed")
}

var _ hmac.Signer = failingSigner{}

// TestSignFailureNotSent: a request that cannot be signed is not sent.
func TestSignFailureNotSent(t *testing.T) {
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: failingSigner{}})
	wantTransport(t, charge(c), false)
	if n := len(ft.requests()); n != 0 {
		t.Errorf("terminal got %d requests, want 0", n)
	}
}

// TestSearchMalformedAnswer: a 2xx search answer that is JSON but not the
// search shape is an error, not an empty result.
func TestSearchMalformedAnswer(t *testing.T) {
	ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) {
		return 200, `{"items":"none","total":"2"}`
	})
	c := mustClient(t, ClientConfig{BaseURL: ft.lanURL(), Kind: LAN, Signer: mustSigner(t, hmac.ModeHMAC)})
	resp, err := c.SearchLocal(context.Background(), SearchRequest{Page: 1, Size: 10})
	if err == nil || resp != nil {
		t.Fatalf("got %+v, %v; want no answer and an error", resp, err)
	}
	if !strings.Contains(err.Error(), "decode answer") {
		t.Errorf("got %q, want it to say the answer could not be decoded", err)
	}
}
