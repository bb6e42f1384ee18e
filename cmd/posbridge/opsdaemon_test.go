package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
)

// The operations tests (journal CLI, metrics, log scan) run the real daemon
// wiring in process: newDaemon + Open + Serve, the real configuration loader
// on a real YAML file, credentials from a file and from an environment
// variable, a bearer token from a file, simulated terminals on loopback
// sockets, and one settable clock shared by the daemon and the simulators
// (void windows and recovery's claim window move only when a test says so).

const (
	opsLane1Secret = "ops-lane1-credential-7f3a9c"
	// opsLane2Secret is what the daemon holds for lane2; its simulator
	// expects opsLane2SimSecret, so every lane2 call fails authentication.
	opsLane2Secret    = "ops-lane2-wrong-credential-51d2e8"
	opsLane2SimSecret = "ops-lane2-real-credential-c0ffee"
	opsToken          = "ops-api-bearer-token-9b8e7d6c"
	opsLane2Env       = "OPS_TEST_LANE2_CREDENTIAL"
	// opsThinkTime is how long a charge or authorization holds a simulated
	// terminal, on the test clock.
	opsThinkTime = 2 * time.Second
)

// opsLima is a fixed UTC-5 zone (America/Lima has no DST).
var opsLima = time.FixedZone("PET", -5*3600)

// opsClock is the settable clock.
type opsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *opsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *opsClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// opsBuffer is a goroutine-safe log sink.
type opsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *opsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *opsBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.b.Bytes()...)
}

// opsTerminal is one simulated terminal and what its server saw.
type opsTerminal struct {
	name, serial string
	sim          *sim.Sim
	addr         string
}

// opsStack is the running daemon and its terminals.
type opsStack struct {
	t       *testing.T
	dir     string
	cfgPath string
	cfg     *config.Config
	clock   *opsClock
	lanes   map[string]*opsTerminal
	logs    *opsBuffer
	base    string // http://127.0.0.1:PORT

	authMu sync.Mutex
	auths  map[string]bool // Authorization header values the terminals received

	d       *daemon
	cancel  context.CancelFunc
	served  chan error
	stopped bool
}

// opsOptions shape the stack.
type opsOptions struct {
	// badLane adds lane2, whose credential (from an environment variable)
	// the simulator refuses.
	badLane bool
	// abandoned is recovery.abandoned (default report: an unclaimed
	// approval becomes needs_attention instead of being voided).
	abandoned string
}

// startOps boots the stack; t.Cleanup stops it.
func startOps(t *testing.T, o opsOptions) *opsStack {
	t.Helper()
	if o.abandoned == "" {
		o.abandoned = "report"
	}
	s := &opsStack{
		t: t, dir: t.TempDir(), logs: &opsBuffer{}, lanes: map[string]*opsTerminal{}, auths: map[string]bool{},
		clock: &opsClock{t: time.Date(2026, 3, 10, 10, 0, 0, 0, opsLima)},
	}
	s.addLane("lane1", "OPS00001", opsLane1Secret)
	if o.badLane {
		s.addLane("lane2", "OPS00002", opsLane2SimSecret)
		t.Setenv(opsLane2Env, opsLane2Secret)
	}
	opsWriteFile(t, filepath.Join(s.dir, "api.token"), opsToken+"\n")
	opsWriteFile(t, filepath.Join(s.dir, "lane1.credential"), opsLane1Secret+"\n")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.base = "http://" + ln.Addr().String()

	yaml := fmt.Sprintf(`listen: %s
data_dir: %s
api:
  token_file: %s
log:
  level: debug
  format: json
terminals:
  - name: lane1
    serial: OPS00001
    lan_address: %s
    auth: hmac
    credential_file: %s
    currency: PEN
`, ln.Addr(), filepath.Join(s.dir, "data"), filepath.Join(s.dir, "api.token"),
		s.lanes["lane1"].addr, filepath.Join(s.dir, "lane1.credential"))
	if o.badLane {
		yaml += fmt.Sprintf(`  - name: lane2
    serial: OPS00002
    lan_address: %s
    auth: hmac
    credential_env: %s
    currency: PEN
`, s.lanes["lane2"].addr, opsLane2Env)
	}
	yaml += fmt.Sprintf(`discovery:
  enabled: false
timeouts:
  response: 60s
recovery:
  abandoned: %s
  timezone: America/Lima
`, o.abandoned)
	s.cfgPath = filepath.Join(s.dir, "posbridge.yaml")
	opsWriteFile(t, s.cfgPath, yaml)

	cfg, _, err := loadConfig(s.cfgPath, false, pflag.NewFlagSet("test", pflag.ContinueOnError))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	s.cfg = cfg
	log, err := newLogger(s.logs, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		t.Fatalf("newLogger: %v", err)
	}
	opts := daemonOptions{Logger: log, Listener: ln, Now: s.clock.Now}
	s.d = newDaemon(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.d.Open(ctx, opts); err != nil {
		cancel()
		_ = ln.Close()
		t.Fatalf("daemon Open: %v", err)
	}
	s.cancel, s.served = cancel, make(chan error, 1)
	go func() { s.served <- s.d.Serve(ctx, notifier{log: log}) }()
	t.Cleanup(s.stop)
	return s
}

// addLane starts a simulated terminal whose server records the
// Authorization headers it receives.
func (s *opsStack) addLane(name, serial, secret string) {
	t := s.t
	sm, err := sim.New(sim.Config{
		Serial: serial, Auth: hmac.ModeHMAC, Credential: hmac.Credential{Secret: secret},
		Currency: money.PEN, ThinkTime: opsThinkTime, Location: opsLima, Now: s.clock.Now,
		// The customer's time passes on the shared clock, at once: the
		// gateway measures exactly opsThinkTime per charge.
		After: func(d time.Duration) <-chan time.Time {
			s.clock.Advance(d)
			c := make(chan time.Time, 1)
			c <- s.clock.Now()
			return c
		},
	})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := sm.Handler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			s.authMu.Lock()
			s.auths[a] = true
			s.authMu.Unlock()
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = sm.Close()
		<-done
	})
	s.lanes[name] = &opsTerminal{name: name, serial: serial, sim: sm, addr: ln.Addr().String()}
}

// authorizations returns the Authorization header values the terminals saw.
func (s *opsStack) authorizations() []string {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	out := make([]string, 0, len(s.auths))
	for a := range s.auths {
		out = append(out, a)
	}
	return out
}

// stop stops the daemon (drain) and waits for Serve to return.
func (s *opsStack) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.served:
		if err != nil {
			s.t.Errorf("daemon Serve: %v", err)
		}
	case <-time.After(90 * time.Second):
		s.t.Error("daemon did not stop within 90 s")
	}
}

func opsWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// opsAnswer is one API answer.
type opsAnswer struct {
	status int
	body   []byte
}

// do calls the daemon's API with the bearer token. A POST first moves
// the clock a second.
func (s *opsStack) do(method, path, body string) opsAnswer {
	s.t.Helper()
	var rd io.Reader
	if method == http.MethodPost {
		// A second passes between operations, so created_at orders them.
		s.clock.Advance(time.Second)
	}
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+opsToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return opsAnswer{status: resp.StatusCode, body: b}
}

// txn decodes a transaction answer with the status wanted.
func (s *opsStack) txn(a opsAnswer, wantStatus int, what string) payment.Transaction {
	s.t.Helper()
	if a.status != wantStatus {
		s.t.Fatalf("%s: got HTTP %d %s, want %d", what, a.status, a.body, wantStatus)
	}
	var tr payment.Transaction
	if err := json.Unmarshal(a.body, &tr); err != nil {
		s.t.Fatalf("%s: decode: %v (%s)", what, err, a.body)
	}
	return tr
}

// peek reads a transaction without claiming it.
func (s *opsStack) peek(id string) payment.Transaction {
	s.t.Helper()
	a := s.do(http.MethodGet, "/v1/transactions?client_transaction_id="+id, "")
	var page transactionPage
	if a.status != http.StatusOK || json.Unmarshal(a.body, &page) != nil || len(page.Transactions) != 1 {
		s.t.Fatalf("peek %s: got HTTP %d %s, want one transaction", id, a.status, a.body)
	}
	return page.Transactions[0]
}

// waitFor polls (without claiming) until cond holds for the transaction,
// kicking recovery each time.
func (s *opsStack) waitFor(id, what string, cond func(payment.Transaction) bool) payment.Transaction {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.d.svc.Kick()
		tr := s.peek(id)
		if cond(tr) {
			return tr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: transaction %s did not get there within 30 s; last: status %s, events %+v", what, id, tr.Status, tr.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func opsHasEvent(detail string) func(payment.Transaction) bool {
	return func(tr payment.Transaction) bool {
		for _, e := range tr.Events {
			if strings.Contains(e.Detail, detail) {
				return true
			}
		}
		return false
	}
}

func opsStatusIs(st payment.Status) func(payment.Transaction) bool {
	return func(tr payment.Transaction) bool { return tr.Status == st }
}

// opsRun is what the scenario did, by role.
type opsRun struct {
	charge, auth, capture, tip, declined, voided, void, refund, leak, failed, claimed, attention string
	tickets                                                                                      []string
	search                                                                                       []byte // the answer to a search the terminal answered with leak_pan
}

func opsNewID() string { return uuid.NewString() }

// scenario runs a full set of operations through the API: charge, tip,
// refund; authorization and capture; a decline; a charge voided after the
// void window opens; a charge whose answer carries the full test card
// number (leak_pan) and a search that does too; a charge on a terminal
// that refuses the credential (when lane2 exists); and two charges whose
// answers are lost after approval: one the POS claims (recovery settles it
// approved), one nobody claims (needs_attention under abandoned: report).
func (s *opsStack) scenario() opsRun {
	t := s.t
	t.Helper()
	var run opsRun
	ticket := func(tr payment.Transaction) {
		if tr.TicketNumber != "" {
			run.tickets = append(run.tickets, tr.TicketNumber)
		}
	}
	charge := func(id, terminal, amount string) opsAnswer {
		return s.do(http.MethodPost, "/v1/charges", fmt.Sprintf(
			`{"client_transaction_id":%q,"terminal":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s},"metadata":{"order":"A-1"}}`,
			id, terminal, amount))
	}

	run.charge = opsNewID()
	tr := s.txn(charge(run.charge, "lane1", "12.50"), http.StatusOK, "charge")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("charge: got status %s, want approved", tr.Status)
	}
	ticket(tr)

	run.tip = opsNewID()
	tr = s.txn(s.do(http.MethodPost, "/v1/transactions/"+run.charge+"/tip",
		fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"tip":1.50}}`, run.tip)), http.StatusOK, "tip")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("tip: got status %s, want approved", tr.Status)
	}
	ticket(tr)

	run.auth = opsNewID()
	tr = s.txn(s.do(http.MethodPost, "/v1/authorizations", fmt.Sprintf(
		`{"client_transaction_id":%q,"terminal":"lane1","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":30}}`, run.auth)),
		http.StatusOK, "authorization")
	ticket(tr)
	run.capture = opsNewID()
	tr = s.txn(s.do(http.MethodPost, "/v1/transactions/"+run.auth+"/capture",
		fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":30}}`, run.capture)),
		http.StatusOK, "capture")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("capture: got status %s, want approved", tr.Status)
	}
	ticket(tr)

	run.declined = opsNewID()
	tr = s.txn(charge(run.declined, "lane1", "10"), http.StatusOK, "declined charge")
	if tr.Status != payment.StatusDeclined {
		t.Fatalf("charge of 10: got status %s, want declined", tr.Status)
	}
	ticket(tr)

	run.voided = opsNewID()
	ticket(s.txn(charge(run.voided, "lane1", "20"), http.StatusOK, "charge to void"))
	s.clock.Advance(2 * time.Minute) // the void window opens 1 min after approval
	run.void = opsNewID()
	tr = s.txn(s.do(http.MethodPost, "/v1/transactions/"+run.voided+"/void",
		fmt.Sprintf(`{"client_transaction_id":%q}`, run.void)), http.StatusOK, "void")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("void: got status %s, want approved", tr.Status)
	}
	ticket(tr)

	run.refund = opsNewID()
	tr = s.txn(s.do(http.MethodPost, "/v1/transactions/"+run.charge+"/refund",
		fmt.Sprintf(`{"client_transaction_id":%q}`, run.refund)), http.StatusOK, "refund")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("refund: got status %s, want approved", tr.Status)
	}
	ticket(tr)

	lane1 := s.lanes["lane1"].sim
	if err := lane1.ArmFault(sim.Fault{Mode: sim.FaultLeakPAN, Endpoints: []string{"charge", "transaction_search_local"}, Count: 2}); err != nil {
		t.Fatalf("ArmFault leak_pan: %v", err)
	}
	run.leak = opsNewID()
	tr = s.txn(charge(run.leak, "lane1", "15"), http.StatusOK, "charge with leak_pan")
	if tr.Status != payment.StatusApproved {
		t.Fatalf("leak_pan charge: got status %s, want approved", tr.Status)
	}
	ticket(tr)
	a := s.do(http.MethodPost, "/v1/terminals/lane1/search", `{"source":"local"}`)
	if a.status != http.StatusOK {
		t.Fatalf("search: got HTTP %d %s, want 200", a.status, a.body)
	}
	run.search = a.body

	if _, ok := s.lanes["lane2"]; ok {
		run.failed = opsNewID()
		a = charge(run.failed, "lane2", "11")
		if a.status != http.StatusBadGateway {
			t.Fatalf("charge with a refused credential: got HTTP %d %s, want 502", a.status, a.body)
		}
		if got := s.peek(run.failed).Status; got != payment.StatusFailed {
			t.Fatalf("charge with a refused credential: got status %s, want failed", got)
		}
	}

	// Lost answers. Claimed: the POS reads it by id, recovery settles it.
	if err := lane1.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"charge"}}); err != nil {
		t.Fatalf("ArmFault: %v", err)
	}
	run.claimed = opsNewID()
	if a := charge(run.claimed, "lane1", "26"); a.status != http.StatusGatewayTimeout {
		t.Fatalf("charge with a lost answer: got HTTP %d %s, want 504", a.status, a.body)
	}
	s.waitFor(run.claimed, "found by recovery", opsHasEvent("found approved on the terminal"))
	tr = s.txn(s.do(http.MethodGet, "/v1/transactions/"+run.claimed+"?wait=20s", ""), http.StatusOK, "claim")
	if tr.Status != payment.StatusApproved {
		tr = s.waitFor(run.claimed, "settled after the claim", opsStatusIs(payment.StatusApproved))
	}
	ticket(tr)

	// Unclaimed: found approved, the claim window passes, needs_attention.
	if err := lane1.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"charge"}}); err != nil {
		t.Fatalf("ArmFault: %v", err)
	}
	run.attention = opsNewID()
	if a := charge(run.attention, "lane1", "27"); a.status != http.StatusGatewayTimeout {
		t.Fatalf("charge with a lost answer: got HTTP %d %s, want 504", a.status, a.body)
	}
	s.waitFor(run.attention, "found by recovery", opsHasEvent("waiting until"))
	s.clock.Advance(3 * time.Minute)
	tr = s.waitFor(run.attention, "needs attention", opsStatusIs(payment.StatusNeedsAttention))
	ticket(tr)
	return run
}

// runCLI runs a posbridge command line as main would, with buffers.
func opsRunCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

var errOpsNotFound = errors.New("not found")

// findLine returns the first line of s that contains every part.
func opsFindLine(s string, parts ...string) (string, error) {
	for _, line := range strings.Split(s, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line, nil
		}
	}
	return "", errOpsNotFound
}
