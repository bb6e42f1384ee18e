package terminal

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// t0 is the fixed signing clock of the tests.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func fixedNow() time.Time { return t0 }

const testSerial = "P3SN0001"

var testCred = hmac.Credential{Secret: "test-secret-1234", Serial: testSerial}

func mustSigner(tb testing.TB, mode hmac.Mode) hmac.Signer {
	tb.Helper()
	s, err := hmac.NewSigner(mode, testCred)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	return s
}

func mustVerifier(tb testing.TB, mode hmac.Mode, encrypt bool) hmac.Verifier {
	tb.Helper()
	v, err := hmac.NewVerifier(mode, testCred, hmac.VerifierOptions{EncryptResponses: encrypt})
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// recorded is one request a fakeTerminal received, its body decrypted.
type recorded struct {
	Method string
	Path   string
	Body   string
	Header http.Header
}

// fakeTerminal is a tiny terminal over httptest: it checks every request's
// signature with a real hmac.Verifier, records it, and answers with reply.
// It is not the simulator: only what a test needs.
type fakeTerminal struct {
	srv      *httptest.Server
	verifier hmac.Verifier

	mu    sync.Mutex
	reqs  []recorded
	wire  [][]byte // answers as sent on the wire
	reply func(r recorded) (int, string)
}

func newFakeTerminal(tb testing.TB, v hmac.Verifier, reply func(r recorded) (int, string)) *fakeTerminal {
	tb.Helper()
	ft := &fakeTerminal{verifier: v, reply: reply}
	ft.srv = httptest.NewServer(http.HandlerFunc(ft.serve))
	tb.Cleanup(ft.srv.Close)
	return ft
}

func (ft *fakeTerminal) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	opened, err := ft.verifier.Verify(r.Method, r.Header, body, t0)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"type":"AUTHENTICATION","code":"AUTH-003","message":"bad signature"}`)
		return
	}
	rec := recorded{Method: r.Method, Path: r.URL.Path, Body: string(opened.Body), Header: r.Header.Clone()}
	ft.mu.Lock()
	ft.reqs = append(ft.reqs, rec)
	reply := ft.reply
	ft.mu.Unlock()
	status, answer := reply(rec)
	out, err := opened.SealResponse([]byte(answer))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	ft.mu.Lock()
	ft.wire = append(ft.wire, out)
	ft.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (ft *fakeTerminal) requests() []recorded {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]recorded(nil), ft.reqs...)
}

func (ft *fakeTerminal) hostport() string { return strings.TrimPrefix(ft.srv.URL, "http://") }

// lanURL and cloudURL are the base URLs of the fake on each route.
func (ft *fakeTerminal) lanURL() string   { return LANBaseURL(ft.hostport()) }
func (ft *fakeTerminal) cloudURL() string { return CloudBaseURL(ft.srv.URL+"/terminal/v1", testSerial) }

func mustClient(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	c, err := NewClient(cfg)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	return c
}

func dec(s string) money.Decimal { return money.MustParse(s) }

func decp(s string) *money.Decimal { d := dec(s); return &d }

// testAmount encodes as {"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0}.
func testAmount() payment.Amount {
	return payment.Amount{IVA: dec("1.8"), SubtotalIVA: dec("10"), SubtotalIVA0: dec("0")}
}

const testAmountJSON = `{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0}`

// approvedAnswer is an approval as third-party clients see it: approved at
// the top, details under rawResponse (research §1, §7).
const approvedAnswer = `{"approved":true,"message":"Aprobada","rawResponse":{"transaction_status":"APPROVAL",` +
	`"transaction_reference":"ref-123","ticket_number":"000000000000000123","franchise":"VISA",` +
	`"card_type":"credit","masked_card":"424242******4242","message_fields":{"F38":"A1B2C3","F39":"00"},` +
	`"kushki_response":{"code":"000","message":"Transacción Aprobada."}}}`

// closedAddr returns a loopback host:port nothing listens on.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawServer is a TCP listener whose connections are handled by handle; it
// counts accepted connections. Close stops it and waits for its goroutines.
type rawServer struct {
	ln     net.Listener
	handle func(net.Conn)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	accept int
}

func newRawServer(tb testing.TB, handle func(net.Conn)) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{ln: ln, handle: handle}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accept++
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(s.Close)
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accept
}

// Close stops accepting, closes every connection and waits.
func (s *rawServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest reads one HTTP request head and body from c.
func readRequest(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
}

// mustJSON asserts that b is valid JSON.
func mustJSON(tb testing.TB, b []byte) {
	tb.Helper()
	if !json.Valid(b) {
		tb.Fatalf("not valid JSON: %.200s", b)
	}
}
