package main

// The harness of the crash, link-fault and disk-fault tests (crash_test.go,
// faults_test.go): the posbridge binary built once with -tags failpoint;
// "posbridge sim" processes, one simulated terminal (lane) each, run with
// --idempotency charge so that a re-sent client_transaction_id would charge
// the customer again; "posbridge serve" processes started, SIGKILLed and
// restarted against them with a generated configuration; and the journal
// file read after the daemon has stopped. The POS model and the invariant
// check live in pos_test.go.
//
// Everything runs on 127.0.0.1; every process is killed and reaped at
// cleanup, also when a test fails.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/journal"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
)

// TestMain removes the failpoint binary the crash tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	fpBinary.remove()
	os.Exit(code)
}

// Timing of the harness. The daemon's waits are short settings of the real
// rules (the vendor's 1-minute void wait becomes fpReverseDelay); the
// harness's own deadlines are generous, so a slow machine makes the tests
// slower, not red.
const (
	fpThink         = 300 * time.Millisecond // simulator think time of a charge or authorization
	fpApprovalPhase = 100 * time.Millisecond // its last part, when abort no longer works
	fpDelayed       = time.Second            // extra delay of the "approved with delay" amount 74
	fpReverseDelay  = 2 * time.Second        // recovery.reverse_delay = simulator --void-wait
	fpResponse      = 5 * time.Second        // timeouts.response (the shortest the daemon accepts)
	fpNotFoundGrace = time.Second            // recovery.not_found_grace
	fpClaimWindow   = time.Second            // recovery.claim_window
	fpBudget        = 15 * time.Minute       // recovery.budget: never reached in these tests
	fpDeadline      = 90 * time.Second       // the longest the harness waits for anything
	fpCredential    = "crash-test-credential-5d1e"
)

// fpBuild is the posbridge binary built with -tags failpoint, once per test
// process, in a temporary directory TestMain removes.
type fpBuild struct {
	once sync.Once
	dir  string
	path string
	out  []byte
	err  error
}

// fpBinary is shared by every test of the package that runs real processes.
var fpBinary fpBuild

// get builds the binary on first use and returns its path. The daemon is
// built without -race even when the tests run with it: only the test
// process is instrumented.
func (b *fpBuild) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "posbridge-fp-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "posbridge")
		goCmd, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		cmd := exec.Command(goCmd, "build", "-tags", "failpoint", "-o", b.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build -tags failpoint: %v\n%s", b.err, b.out)
	}
	return b.path
}

func (b *fpBuild) remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// fpBuffer is a bytes.Buffer safe for a writer and readers.
type fpBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (f *fpBuffer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.Write(p)
}

func (f *fpBuffer) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.String()
}

// fpSim is one "posbridge sim" process: one terminal, one lane.
type fpSim struct {
	lane   string
	serial string
	addr   string // 127.0.0.1:port of its LAN API, raw API and /_sim control API
	cmd    *exec.Cmd
	out    *fpBuffer
	done   chan struct{}
	client *http.Client
}

var fpSimAddrRE = regexp.MustCompile(`LAN route:\s+http://(127\.0\.0\.1:\d+)/terminal/v1`)

// startFPSim starts a simulator for lane and waits until it listens.
func startFPSim(t *testing.T, bin, credFile, lane, serial string, extra []string) *fpSim {
	t.Helper()
	args := append([]string{"sim", "--addr", "127.0.0.1:0", "--no-advertise", "--serial", serial,
		"--credential-file", credFile, "--idempotency", "charge",
		"--think-time", fpThink.String(), "--approval-phase", fpApprovalPhase.String(),
		"--delayed-approval", fpDelayed.String(), "--void-wait", fpReverseDelay.String(),
		"--log-format", "json", "--log-level", "warn"}, extra...)
	s := &fpSim{lane: lane, serial: serial, out: &fpBuffer{}, done: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = fpEnviron("")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start posbridge sim: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	deadline := time.Now().Add(fpDeadline)
	for {
		if m := fpSimAddrRE.FindStringSubmatch(s.out.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("posbridge sim for %s exited before listening:\n%s", lane, s.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("posbridge sim for %s did not listen within %s:\n%s", lane, fpDeadline, s.out.String())
		}
	}
}

// control calls the simulator's control API and decodes a JSON answer into
// out (when not nil).
func (s *fpSim) control(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+"/_sim/"+path, body)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("sim %s: %s %s: %w", s.lane, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("sim %s: %s %s: %s %s", s.lane, method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("sim %s: %s: %w", s.lane, path, err)
		}
	}
	return nil
}

func (s *fpSim) ledger(t testing.TB) sim.Ledger {
	t.Helper()
	var l sim.Ledger
	if err := s.control(http.MethodGet, "ledger", nil, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *fpSim) state(t testing.TB) sim.State {
	t.Helper()
	var st sim.State
	if err := s.control(http.MethodGet, "state", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *fpSim) arm(t testing.TB, f sim.Fault) {
	t.Helper()
	if err := s.control(http.MethodPost, "faults", f, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *fpSim) clearFaults(t testing.TB) {
	t.Helper()
	if err := s.control(http.MethodDelete, "faults", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// fpEnviron is the environment of a child process: this one's without any
// POSBRIDGE_* variable (which the daemon would read as configuration), plus
// the failpoints to arm.
func fpEnviron(failpoints string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSBRIDGE_") {
			env = append(env, kv)
		}
	}
	if failpoints != "" {
		env = append(env, "POSBRIDGE_FAILPOINTS="+failpoints)
	}
	return env
}

// fpOptions shape an environment.
type fpOptions struct {
	Lanes   int      // simulators, one terminal each (default 3)
	SimArgs []string // extra flags for every simulator
	DataDir string   // the daemon's data_dir (default: a new temporary directory)
	// Cutoff is recovery.cutoff; "" picks 23:59 in a time zone where it is
	// now about noon, so no run crosses the cutoff.
	Cutoff string
	// RawAPI configures cloud.raw_api against the first lane's simulator.
	RawAPI bool
	// BackoffMin and BackoffMax are recovery.backoff_* (default 100ms, 1s).
	BackoffMin, BackoffMax time.Duration
	// ClaimWindow is recovery.claim_window (default fpClaimWindow). Tests
	// that assert "claimed → approved" give the POS model more than the
	// default second, so a loaded machine cannot make a claim late.
	ClaimWindow time.Duration
}

// fpEnv is one test's world: its simulators, its configuration and the
// daemon process of the moment.
type fpEnv struct {
	t       *testing.T
	bin     string
	dir     string
	dataDir string
	cfgPath string
	sims    []*fpSim
	lanes   map[string]*fpSim
	client  *http.Client
	logPath string

	mu      sync.Mutex
	cur     *fpDaemon     // the ready daemon, nil between lives
	lives   int           // daemons started so far
	changed chan struct{} // closed (and replaced) whenever cur changes
	running map[*fpDaemon]bool
	started chan struct{} // a new payment was sent (for random kills)
}

// newFPEnv builds the binary (once), starts the simulators and writes the
// daemon's configuration. It does not start the daemon.
func newFPEnv(t *testing.T, o fpOptions) *fpEnv {
	t.Helper()
	if o.Lanes == 0 {
		o.Lanes = 3
	}
	e := &fpEnv{t: t, bin: fpBinary.get(t), dir: t.TempDir(), lanes: map[string]*fpSim{},
		changed: make(chan struct{}), running: map[*fpDaemon]bool{}, started: make(chan struct{}, 1),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	e.dataDir = o.DataDir
	if e.dataDir == "" {
		e.dataDir = filepath.Join(e.dir, "data")
	}
	e.logPath = filepath.Join(e.dir, "daemon.log")
	cred := filepath.Join(e.dir, "terminal.credential")
	if err := os.WriteFile(cred, []byte(fpCredential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range o.Lanes {
		lane := fmt.Sprintf("lane%d", i+1)
		s := startFPSim(t, e.bin, cred, lane, fmt.Sprintf("P3CRASH%04d", i+1), o.SimArgs)
		e.sims = append(e.sims, s)
		e.lanes[lane] = s
	}
	tz, cutoff := noonZone(time.Now()), "23:59"
	if o.Cutoff != "" {
		cutoff = o.Cutoff
	}
	if o.ClaimWindow == 0 {
		o.ClaimWindow = fpClaimWindow
	}
	if o.BackoffMin == 0 {
		o.BackoffMin, o.BackoffMax = 100*time.Millisecond, time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\ndata_dir: %s\nlog: {level: info, format: json}\n", e.dataDir)
	b.WriteString("discovery: {enabled: false}\n")
	fmt.Fprintf(&b, "timeouts: {connect: 2s, response: %s, control: 5s}\n", fpResponse)
	fmt.Fprintf(&b, "recovery: {reverse_delay: %s, abandoned: reverse, claim_window: %s, budget: %s, "+
		"not_found_grace: %s, backoff_min: %s, backoff_max: %s, cutoff: %q, timezone: %q}\n",
		fpReverseDelay, o.ClaimWindow, fpBudget, fpNotFoundGrace, o.BackoffMin, o.BackoffMax, cutoff, tz)
	b.WriteString("cloud:\n  environment: \"off\"\n")
	if o.RawAPI {
		fmt.Fprintf(&b, "  raw_api: {credential_file: %s, base_url: \"http://%s\"}\n", cred, e.sims[0].addr)
	}
	b.WriteString("terminals:\n")
	for _, s := range e.sims {
		fmt.Fprintf(&b, "  - {name: %s, serial: %s, lan_address: %q, auth: hmac, credential_file: %s, currency: PEN}\n",
			s.lane, s.serial, s.addr, cred)
	}
	e.cfgPath = filepath.Join(e.dir, "posbridge.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	return e
}

// noonZone names a fixed-offset IANA zone (Etc/GMT±h) where now is between
// 10:00 and 14:00, so the processor cutoff at 23:59 is hours away.
func noonZone(now time.Time) string {
	off := 12 - now.UTC().Hour() // hours east of UTC
	if off < -12 {
		off += 24
	}
	switch {
	case off == 0:
		return "Etc/GMT"
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off) // the Etc names have the sign inverted
	}
	return fmt.Sprintf("Etc/GMT+%d", -off)
}

// cleanup kills every daemon still running and keeps the daemon log of a
// failed test.
func (e *fpEnv) cleanup() {
	e.mu.Lock()
	var procs []*fpDaemon
	for d := range e.running {
		procs = append(procs, d)
	}
	e.mu.Unlock()
	for _, d := range procs {
		d.kill()
		<-d.done
	}
	if e.t.Failed() || os.Getenv("POSBRIDGE_KEEP_LOGS") != "" {
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("posbridge-%s-%d.log",
			strings.ReplaceAll(e.t.Name(), "/", "_"), time.Now().Unix()))
		if b, err := os.ReadFile(e.logPath); err == nil && os.WriteFile(keep, b, 0o644) == nil {
			e.t.Logf("daemon logs of every life kept in %s", keep)
		}
	}
}

func (e *fpEnv) sim(lane string) *fpSim { return e.lanes[lane] }

// fpDaemon is one life of "posbridge serve".
type fpDaemon struct {
	env    *fpEnv
	life   int
	spec   string // POSBRIDGE_FAILPOINTS
	cmd    *exec.Cmd
	out    *fpBuffer
	url    string // http://127.0.0.1:port once ready
	began  time.Time
	ready  chan struct{} // closed once it logged "posbridge ready"
	done   chan struct{} // closed once reaped
	state  *os.ProcessState
	killMu sync.Mutex
	killed bool // SIGKILLed by the harness
}

var fpReadyRE = regexp.MustCompile(`"listen":"(127\.0\.0\.1:\d+)"[^\n]*"message":"posbridge ready"`)

// start starts a daemon with the failpoints armed. It returns at once: the
// daemon becomes current when it is ready (see current).
func (e *fpEnv) start(failpoints string) *fpDaemon {
	e.t.Helper()
	e.mu.Lock()
	e.lives++
	d := &fpDaemon{env: e, life: e.lives, spec: failpoints, out: &fpBuffer{}, began: time.Now(),
		ready: make(chan struct{}), done: make(chan struct{})}
	e.running[d] = true
	e.mu.Unlock()
	d.cmd = exec.Command(e.bin, "serve", "--config", e.cfgPath)
	d.cmd.Env = fpEnviron(failpoints)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		e.t.Fatalf("start posbridge serve: %v", err)
	}
	go d.reap()
	go d.watchReady()
	return d
}

func (d *fpDaemon) reap() {
	_ = d.cmd.Wait()
	d.state = d.cmd.ProcessState
	e := d.env
	e.mu.Lock()
	delete(e.running, d)
	if e.cur == d {
		e.cur = nil
		close(e.changed)
		e.changed = make(chan struct{})
	}
	if f, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintf(f, "=== life %d failpoints %q: %s after %s\n%s\n", d.life, d.spec, d.state,
			time.Since(d.began).Round(time.Millisecond), d.out.String())
		f.Close()
	}
	e.mu.Unlock()
	close(d.done)
}

func (d *fpDaemon) watchReady() {
	for {
		if m := fpReadyRE.FindStringSubmatch(d.out.String()); m != nil {
			d.url = "http://" + m[1]
			e := d.env
			e.mu.Lock()
			if e.running[d] {
				e.cur = d
				close(e.changed)
				e.changed = make(chan struct{})
			}
			e.mu.Unlock()
			close(d.ready)
			return
		}
		select {
		case <-d.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL (once).
func (d *fpDaemon) kill() {
	d.killMu.Lock()
	defer d.killMu.Unlock()
	if d.killed {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.killed = true
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
}

// stop asks the daemon to stop (SIGTERM: drain, then exit 0) and waits.
func (d *fpDaemon) stop(t testing.TB) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(fpDeadline):
		d.kill()
		<-d.done
		t.Fatalf("life %d did not stop within %s of SIGTERM", d.life, fpDeadline)
	}
	if !d.state.Success() {
		t.Fatalf("life %d stopped with %s, want exit 0:\n%s", d.life, d.state, fpTail(d.out.String(), 4000))
	}
}

// waitReady waits until the daemon is ready; false when it died first.
func (d *fpDaemon) waitReady(t testing.TB) bool {
	t.Helper()
	select {
	case <-d.ready:
		return true
	case <-d.done:
		return false
	case <-time.After(fpDeadline):
		t.Fatalf("life %d not ready within %s:\n%s", d.life, fpDeadline, fpTail(d.out.String(), 4000))
	}
	return false
}

// mustStart starts a daemon without failpoints and waits until it is ready.
func (e *fpEnv) mustStart() *fpDaemon {
	e.t.Helper()
	d := e.start("")
	if !d.waitReady(e.t) {
		e.t.Fatalf("life %d exited before it was ready (%s):\n%s", d.life, d.state, fpTail(d.out.String(), 4000))
	}
	return d
}

// firedFailpoint returns the failpoint the daemon announced before it
// killed itself, or "".
func (d *fpDaemon) firedFailpoint() string {
	for _, line := range strings.Split(d.out.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "FAILPOINT "); ok {
			return strings.TrimSpace(name)
		}
	}
	return ""
}

// sigkilled reports whether the process died of SIGKILL.
func (d *fpDaemon) sigkilled() bool {
	ws, ok := d.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// current returns the ready daemon whose life is at least minLife, waiting
// for it as long as ctx lasts.
func (e *fpEnv) current(ctx context.Context, minLife int) (*fpDaemon, error) {
	for {
		e.mu.Lock()
		d, ch := e.cur, e.changed
		e.mu.Unlock()
		if d != nil && d.life >= minLife {
			return d, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// paymentStarted tells a random-kill life that a payment is on its way.
func (e *fpEnv) paymentStarted() {
	select {
	case e.started <- struct{}{}:
	default:
	}
}

// do sends one API request to a daemon. err is a transport error (the
// daemon died, or ctx ended); otherwise status and body are the answer.
func (e *fpEnv) do(ctx context.Context, d *fpDaemon, method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// mustDo is do for a daemon that must answer.
func (e *fpEnv) mustDo(d *fpDaemon, method, path, body string) (int, []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fpDeadline)
	defer cancel()
	status, b, err := e.do(ctx, d, method, path, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, b
}

// unsettled counts the records the daemon still has pending or unknown.
func (e *fpEnv) unsettled(d *fpDaemon) (int, error) {
	n := 0
	for _, st := range []payment.Status{payment.StatusPending, payment.StatusUnknown} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		status, b, err := e.do(ctx, d, http.MethodGet, "/v1/transactions?limit=500&status="+string(st), "")
		cancel()
		if err != nil {
			return 0, err
		}
		if status != http.StatusOK {
			return 0, fmt.Errorf("GET /v1/transactions?status=%s: %d %s", st, status, b)
		}
		var list struct {
			Transactions []json.RawMessage `json:"transactions"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return 0, err
		}
		n += len(list.Transactions)
	}
	return n, nil
}

// waitSettled waits until nothing is pending or unknown (recovery has
// settled everything or handed it to a person), or fails after fpDeadline.
func (e *fpEnv) waitSettled(d *fpDaemon) {
	e.t.Helper()
	deadline := time.Now().Add(fpDeadline)
	for {
		n, err := e.unsettled(d)
		if err != nil {
			e.t.Fatalf("waiting for recovery: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d records still pending or unknown %s after the last restart", n, fpDeadline)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readJournal opens the journal file read-only (the daemon must have
// stopped), checks its integrity and returns every record by id.
func (e *fpEnv) readJournal() map[string]*payment.Record {
	e.t.Helper()
	j, err := journal.OpenReadOnly(filepath.Join(e.dataDir, "journal.db"))
	if err != nil {
		e.t.Fatalf("open the journal read-only: %v", err)
	}
	defer j.Close()
	ctx := context.Background()
	if err := j.Check(ctx); err != nil {
		e.t.Errorf("journal check (I5 store integrity): %v", err)
	}
	recs := map[string]*payment.Record{}
	if err := j.Each(ctx, func(r *payment.Record) error { recs[r.ID] = r; return nil }); err != nil {
		e.t.Fatalf("read the journal: %v", err)
	}
	return recs
}

// ledgers returns every lane's ledger, once no terminal is working on a
// transaction any more (one still in its think time would be missing).
func (e *fpEnv) ledgers() map[string]sim.Ledger {
	e.t.Helper()
	out := map[string]sim.Ledger{}
	deadline := time.Now().Add(fpDeadline)
	for _, s := range e.sims {
		for s.state(e.t).Active != nil {
			if time.Now().After(deadline) {
				e.t.Fatalf("terminal %s still busy %s after the daemon stopped", s.lane, fpDeadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
		out[s.lane] = s.ledger(e.t)
	}
	return out
}

func fpTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
