package sim_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

const (
	testSerial = "SIMTEST01"
	testSecret = "sim-test-secret-0123456789"
)

// lima is a fixed UTC-5 zone (Peru): the same-day void rule is evaluated in it.
var lima = time.FixedZone("PET", -5*3600)

// t0 is the fake clock's start: 10:00 in Lima, far from midnight.
func t0() time.Time { return time.Date(2026, 3, 10, 10, 0, 0, 0, lima) }

// clock is a settable clock shared by the simulator and the test's signer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// timers replaces Config.After: every wait the simulator starts is handed to
// the test, which decides when it ends.
type timers struct{ ch chan *timer }

type timer struct {
	d time.Duration
	c chan time.Time
}

func newTimers() *timers { return &timers{ch: make(chan *timer, 64)} }

func (ts *timers) After(d time.Duration) <-chan time.Time {
	tm := &timer{d: d, c: make(chan time.Time, 1)}
	ts.ch <- tm
	return tm.c
}

// next returns the next wait the simulator started.
func (ts *timers) next(t testing.TB) *timer {
	t.Helper()
	select {
	case tm := <-ts.ch:
		return tm
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator started no wait within 10 s")
		return nil
	}
}

func (tm *timer) fire() { tm.c <- time.Time{} }

// fixture is a running simulator on a real loopback socket and a signing
// client for it.
type fixture struct {
	sim    *sim.Sim
	base   string // http://127.0.0.1:port
	clock  *clock
	timers *timers
	mode   hmac.Mode
	signer hmac.Signer
	client *http.Client
}

// startSim runs a simulator with test defaults (hmac mode, PEN, no think
// time, the fake clock, manual timers) changed by edit, and stops it at the
// end of the test.
func startSim(t testing.TB, edit func(*sim.Config)) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: t0()}, timers: newTimers()}
	cfg := sim.Config{
		Serial:     testSerial,
		Auth:       hmac.ModeHMAC,
		Credential: hmac.Credential{Secret: testSecret},
		Currency:   "PEN",
		ThinkTime:  -1,
		Location:   lima,
		Now:        f.clock.Now,
		After:      f.timers.After,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	f.sim, f.mode = s, cfg.Auth
	f.signer, err = hmac.NewSigner(cfg.Auth, hmac.Credential{Secret: cfg.Credential.Secret, Serial: testSerial})
	if err != nil {
		t.Fatalf("hmac.NewSigner: %v", err)
	}
	f.base = serve(t, s)
	f.client = &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(func() {
		f.client.CloseIdleConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// serve serves s on a new loopback listener and returns its base URL.
func serve(t testing.TB, s *sim.Sim) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil after Close", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10 s of Close")
		}
	})
	return "http://" + l.Addr().String()
}

// lan and cloud turn an endpoint into a path on each route.
func lan(ep terminal.Endpoint) (string, string) {
	m, p := terminal.Path(terminal.LAN, ep)
	return m, "/terminal/v1" + p
}

func cloud(ep terminal.Endpoint) (string, string) {
	m, p := terminal.Path(terminal.Cloud, ep)
	return m, "/terminal/v1/" + testSerial + p
}

// do signs and sends one request and returns the status and the plaintext
// answer.
func (f *fixture) do(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	status, b, err := f.try(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, b
}

// try is do without failing the test on a transport error.
func (f *fixture) try(method, path string, body []byte) (int, []byte, error) {
	sealed, err := f.signer.Seal(method, body, f.clock.Now())
	if err != nil {
		return 0, nil, fmt.Errorf("seal: %w", err)
	}
	var rd io.Reader = http.NoBody
	if len(sealed.Body) > 0 {
		rd = bytes.NewReader(sealed.Body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range sealed.Header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	plain, err := sealed.Open(b)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("open answer %q: %w", b, err)
	}
	return resp.StatusCode, plain, nil
}

// post sends a payment or search body on the LAN route.
func (f *fixture) post(t testing.TB, ep terminal.Endpoint, body any) (int, []byte) {
	t.Helper()
	m, p := lan(ep)
	return f.do(t, m, p, mustMarshal(t, body))
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// amount is an amount object with the whole value in subtotal_iva0.
func amount(v string) map[string]any {
	return map[string]any{"iva": 0, "subtotal_iva": 0, "subtotal_iva0": json.Number(v)}
}

func newID() string { return uuid.NewString() }

// payment runs a payment operation that must be answered 200 and returns
// the answer.
func (f *fixture) payment(t testing.TB, ep terminal.Endpoint, body map[string]any) terminal.PaymentResponse {
	t.Helper()
	status, b := f.post(t, ep, body)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %s", ep, status, b)
	}
	var r terminal.PaymentResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: decode %s: %v", ep, b, err)
	}
	return r
}

// approved runs a payment operation that must be approved and returns its
// answer.
func (f *fixture) approved(t testing.TB, ep terminal.Endpoint, body map[string]any) terminal.PaymentResponse {
	t.Helper()
	r := f.payment(t, ep, body)
	if r.Approved == nil || !*r.Approved || r.TransactionStatus != terminal.StatusApproval {
		t.Fatalf("%s: got approved=%v status=%q, want an approval (%+v)", ep, r.Approved, r.TransactionStatus, r)
	}
	return r
}

func (f *fixture) charge(t testing.TB, id, total string) terminal.PaymentResponse {
	t.Helper()
	return f.approved(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id, "amount": amount(total)})
}

func (f *fixture) authorize(t testing.TB, id, total string) terminal.PaymentResponse {
	t.Helper()
	return f.approved(t, terminal.EndpointAuthorization, map[string]any{"client_transaction_id": id, "amount": amount(total)})
}

func followUp(id, ref string, amt map[string]any) map[string]any {
	m := map[string]any{"client_transaction_id": id, "transaction_reference": ref}
	if amt != nil {
		m["amount"] = amt
	}
	return m
}

// failure decodes a LinkFailure answer and checks status, type and code.
func failure(t testing.TB, status int, body []byte, wantStatus int, wantType, wantCode string) terminal.LinkFailure {
	t.Helper()
	var lf terminal.LinkFailure
	if err := json.Unmarshal(body, &lf); err != nil {
		t.Fatalf("decode error body %s: %v", body, err)
	}
	if status != wantStatus || lf.Type != wantType || lf.Code != wantCode {
		t.Fatalf("got %d %s/%s (%q), want %d %s/%s", status, lf.Type, lf.Code, lf.Message, wantStatus, wantType, wantCode)
	}
	return lf
}

// search runs a search on the LAN route and decodes the answer.
func (f *fixture) search(t testing.TB, ep terminal.Endpoint, req terminal.SearchRequest) terminal.SearchResponse {
	t.Helper()
	status, b := f.post(t, ep, req)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %s", ep, status, b)
	}
	var r terminal.SearchResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decode search %s: %v", b, err)
	}
	return r
}

func (f *fixture) entry(t testing.TB, id string) sim.LedgerEntry {
	t.Helper()
	e, ok := f.sim.Ledger().Entry(id)
	if !ok {
		t.Fatalf("ledger has no entry for %s", id)
	}
	return e
}

// waitActive waits until the terminal runs a transaction in the given phase.
func (f *fixture) waitActive(t testing.TB, phase string) sim.Active {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if a := f.sim.State().Active; a != nil && a.Phase == phase {
			return *a
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no active transaction in phase %q within 10 s (state %+v)", phase, f.sim.State().Active)
	return sim.Active{}
}

// isConnError reports whether err is a transport failure without an answer.
func isConnError(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset")
}
