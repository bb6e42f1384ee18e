package main

// Link-fault and disk-fault tests with real processes
// (research/anchors-reliability.md §6 T5 and T8). The simulators bend the
// answers of the terminal (drop the connection before or after processing,
// hang past the response deadline, answer 500 before or after processing,
// answer slowly); the journal lives on a small tmpfs that is filled up
// before an intent or while the terminal is working. Every test ends with
// the invariant check of crash_test.go, and checks the settle path each
// case must take.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// fpFirstPost sends pp's request until the daemon takes it: 409
// terminal_busy means nothing was sent (recovery held the lane), so the
// armed fault still waits for it. The answer goes to the POS model. It
// returns the HTTP status of the answer and how long it took (status 0: no
// answer).
func fpFirstPost(e *fpEnv, pos *posModel, d *fpDaemon, pp *posPay, rng *rand.Rand) (int, time.Duration, error) {
	pos.markSent(pp)
	deadline := time.Now().Add(fpDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), fpDeadline)
		began := time.Now()
		status, body, err := e.do(ctx, d, http.MethodPost, pp.path, pp.body)
		took := time.Since(began)
		cancel()
		if err != nil {
			pos.noAnswer(pp, rng)
			return 0, took, nil
		}
		var v struct {
			Error *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &v)
		if status == http.StatusConflict && v.Error != nil && v.Error.Code == string(payment.CodeTerminalBusy) {
			if time.Now().After(deadline) {
				return status, took, fmt.Errorf("%s: terminal busy for %s", pp.id, fpDeadline)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		pos.answer(pp, status, body, rng)
		return status, took, nil
	}
}

// linkRun is one payment sent under one armed link fault.
type linkRun struct {
	pp        *posPay
	mode      sim.FaultMode
	decline   bool
	firstHTTP int
	took      time.Duration
}

// want is the final status the payment must reach, by the fault and what
// the POS does: a fault before processing leaves nothing to find (not
// charged, after the not-found grace); a processed payment whose answer was
// lost is found by the search and kept when the POS claims it, voided
// when it is abandoned; a slow answer is just an answer.
func (r linkRun) want() payment.Status {
	switch {
	case r.mode == sim.FaultDropBefore || r.mode == sim.FaultError500:
		return payment.StatusNotCharged
	case r.decline:
		return payment.StatusDeclined
	case r.mode != sim.FaultSlow && r.pp.fate == fpAbandon:
		return payment.StatusVoided
	}
	return payment.StatusApproved
}

// TestLinkFaults runs every link fault 50 times, spread over 20 lanes, with
// charges and authorizations, approvals and declines, and each of the
// POS's ways to learn the outcome (retry, poll, abandon).
func TestLinkFaults(t *testing.T) {
	t.Parallel()
	const perMode = 50
	modes := []sim.FaultMode{sim.FaultDropAfterApprove, sim.FaultDropBefore, sim.FaultHang,
		sim.FaultError500, sim.FaultApproveThen500, sim.FaultSlow}
	seed := crashSeed(t)
	e := newFPEnv(t, fpOptions{Lanes: 20, ClaimWindow: 3 * time.Second})
	pos := newPOS(e)
	pos.noFollow = true
	d := e.mustStart()
	began := time.Now()

	// Runs dealt round-robin to the lanes, every mode spread over all of
	// them (the hang holds a lane for the whole response timeout).
	fates := []fpFate{fpClaim, fpPoll, fpAbandon}
	declines := []string{"10", "40", "50"}
	approvals := []string{"12.50", "7.30", "99.99", "74"}
	lanes := map[string][]*linkRun{}
	var runs []*linkRun
	for i := range perMode {
		for j, mode := range modes {
			k := i*len(modes) + j
			lane := e.sims[(i+j)%len(e.sims)].lane
			op := "charge"
			if i%4 == 3 {
				op = "authorization"
			}
			amount, decline := approvals[i%len(approvals)], i%5 == 4
			if decline {
				amount = declines[i%len(declines)]
			}
			pp := pos.payment(lane, op, amount, fmt.Sprintf("link-%d", k))
			pp.fate = fates[(i+j)%len(fates)]
			r := &linkRun{pp: pp, mode: mode, decline: decline}
			runs = append(runs, r)
			lanes[lane] = append(lanes[lane], r)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	waitClaimers := pos.runClaimers(ctx, 48, seed)
	defer func() {
		stop()
		waitClaimers()
	}()
	var wg sync.WaitGroup
	for i, s := range e.sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for _, r := range lanes[s.lane] {
				f := sim.Fault{Mode: r.mode, Endpoints: []string{r.pp.op}}
				if r.mode == sim.FaultSlow {
					f.Delay = time.Second
				}
				if err := s.control(http.MethodPost, "faults", f, nil); err != nil {
					t.Error(err)
					return
				}
				status, took, err := fpFirstPost(e, pos, d, r.pp, rng)
				if err != nil {
					t.Error(err)
					return
				}
				r.firstHTTP, r.took = status, took
			}
		}()
	}
	wg.Wait()
	sent := time.Since(began)
	pos.settleClaims(t, seed+1)
	stop()
	waitClaimers()
	answered := time.Since(began)
	e.waitSettled(d)
	d.stop(t)
	t.Logf("every run sent after %s, every POS answered after %s, all settled after %s",
		sent.Round(time.Millisecond), answered.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	c := newCounts()
	c.Lives = 1
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	recs := e.readJournal()
	ledgers := e.ledgers()
	type outcome struct {
		mode sim.FaultMode
		got  payment.Status
	}
	table := map[outcome]int{}
	for _, r := range runs {
		rec := recs[r.pp.id]
		if rec == nil {
			t.Errorf("%s %s %s: no journal record", r.mode, r.pp.op, r.pp.id)
			continue
		}
		table[outcome{r.mode, rec.Status}]++
		if rec.Status != r.want() {
			t.Errorf("%s, %s %s, POS %s: got %s, want %s\n%s", r.mode, r.pp.op, r.pp.id, r.pp.fate, rec.Status, r.want(), fpDescribe(rec))
		}
		wantFirst := http.StatusGatewayTimeout // outcome_unknown
		if r.mode == sim.FaultSlow {
			wantFirst = http.StatusOK
		}
		if r.firstHTTP != wantFirst {
			t.Errorf("%s %s: first answer %d, want %d", r.mode, r.pp.id, r.firstHTTP, wantFirst)
		}
		if r.mode == sim.FaultHang && r.took < fpResponse {
			t.Errorf("hang %s: answered after %s, want the response timeout %s first", r.pp.id, r.took, fpResponse)
		}
		recovered := fpRecovered(rec)
		if recovered == (r.mode == sim.FaultSlow) {
			t.Errorf("%s %s: settled by recovery %v, want %v\n%s", r.mode, r.pp.id, recovered, r.mode != sim.FaultSlow, fpDescribe(rec))
		}
		en, processed := ledgers[r.pp.lane].Entry(r.pp.id)
		if wantProcessed := r.mode != sim.FaultDropBefore && r.mode != sim.FaultError500; processed != wantProcessed {
			t.Errorf("%s %s: on the terminal's ledger %v, want %v", r.mode, r.pp.id, processed, wantProcessed)
		}
		if r.want() == payment.StatusVoided && !en.Voided {
			t.Errorf("%s %s: abandoned approval not voided on the terminal: %+v", r.mode, r.pp.id, en)
		}
	}
	var lines []string
	for o, n := range table {
		lines = append(lines, fmt.Sprintf("  %-18s → %-12s %3d", o.mode, o.got, n))
	}
	sort.Strings(lines)
	t.Logf("link faults: %d runs (%d per mode) in %s; final states by fault:\n%s", len(runs), perMode,
		time.Since(began).Round(time.Second), strings.Join(lines, "\n"))
	c.report(t, "TestLinkFaults", time.Since(began))
}

// TestLinkFaultReverse: an approval whose answer was lost while the
// terminal cannot be searched (its searches answer 500) is reversed
// through the raw card-present API by its client_transaction_id once the
// reverse delay has passed (research/kushki-one.md §7 "Reverse"), unless
// the POS claims it: that one waits for the search to work again and is
// kept.
func TestLinkFaultReverse(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	e := newFPEnv(t, fpOptions{Lanes: 1, RawAPI: true, ClaimWindow: 3 * time.Second})
	pos := newPOS(e)
	pos.noFollow = true
	d := e.mustStart()
	s := e.sims[0]
	s.arm(t, sim.Fault{Mode: sim.FaultError500, Count: 100000, Endpoints: []string{"transaction_search_local", "transaction_search_online"}})
	ctx, stop := context.WithCancel(context.Background())
	waitClaimers := pos.runClaimers(ctx, 2, seed)
	defer func() {
		stop()
		waitClaimers()
	}()
	var abandoned []*posPay
	claimed := pos.payment(s.lane, "charge", "33.33", "reverse-claimed")
	claimed.fate = fpClaim
	for i := range 6 {
		pp := pos.payment(s.lane, "charge", []string{"12.50", "7.30", "99.99"}[i%3], fmt.Sprintf("reverse-%d", i))
		pp.fate = fpAbandon
		abandoned = append(abandoned, pp)
	}
	for _, pp := range append(abandoned, claimed) {
		s.arm(t, sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"charge"}})
		if status, _, err := fpFirstPost(e, pos, d, pp, rng); err != nil || status != http.StatusGatewayTimeout {
			t.Fatalf("%s: first answer %d %v, want 504 outcome_unknown", pp.id, status, err)
		}
	}
	for _, pp := range abandoned {
		waitStatus(t, e, d, pp.id, payment.StatusReversed)
	}
	if got := peekStatus(t, e, d, claimed.id); got != payment.StatusUnknown {
		t.Errorf("claimed %s while the terminal cannot be searched: got %s, want unknown", claimed.id, got)
	}
	s.clearFaults(t) // the searches work again: the claimed one is found
	pos.settleClaims(t, seed+1)
	stop()
	waitClaimers()
	e.waitSettled(d)
	d.stop(t)

	c := newCounts()
	c.Lives = 1
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	l := s.ledger(t)
	for _, pp := range abandoned {
		if en, ok := l.Entry(pp.id); !ok || !en.Reversed || !en.Outstanding.IsZero() {
			t.Errorf("abandoned %s: ledger %+v, want reversed with nothing outstanding", pp.id, en)
		}
	}
	if pp := claimed; pp.status != string(payment.StatusApproved) {
		t.Errorf("claimed %s: the POS got %q, want approved", pp.id, pp.status)
	}
	if c.Settled["reverse"] != len(abandoned) {
		t.Errorf("settled by reverse: got %d, want %d", c.Settled["reverse"], len(abandoned))
	}
	if st := s.state(t); st.Requests[sim.EndpointRaw] < len(abandoned) {
		t.Errorf("raw API requests: got %d, want at least %d", st.Requests[sim.EndpointRaw], len(abandoned))
	}
	c.report(t, "TestLinkFaultReverse", 0)
}

// TestLinkFaultRefundAfterCutoff: past the processor's cutoff a lost
// approval nobody claims is refunded (research/kushki-one.md §7 "Void vs
// refund"), a claimed one kept, and an abandoned authorization voided (an
// authorization holds money but took none: there is nothing to refund), as
// the POS's own cancel does.
func TestLinkFaultRefundAfterCutoff(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 4))
	e := newFPEnv(t, fpOptions{Lanes: 2, Cutoff: "00:00", ClaimWindow: 3 * time.Second}) // every approval is past the cutoff
	pos := newPOS(e)
	pos.noFollow = true
	d := e.mustStart()
	ctx, stop := context.WithCancel(context.Background())
	waitClaimers := pos.runClaimers(ctx, 2, seed)
	defer func() {
		stop()
		waitClaimers()
	}()
	type run struct {
		pp   *posPay
		want payment.Status
	}
	var runs []run
	for i, tc := range []struct {
		op   string
		fate fpFate
		want payment.Status
	}{
		{"charge", fpAbandon, payment.StatusRefunded},
		{"charge", fpAbandon, payment.StatusRefunded},
		{"charge", fpAbandon, payment.StatusRefunded},
		{"charge", fpClaim, payment.StatusApproved},
		{"charge", fpPoll, payment.StatusApproved},
		{"authorization", fpAbandon, payment.StatusVoided},
		{"authorization", fpAbandon, payment.StatusVoided},
		{"authorization", fpClaim, payment.StatusApproved},
	} {
		s := e.sims[i%len(e.sims)]
		pp := pos.payment(s.lane, tc.op, "12.50", fmt.Sprintf("cutoff-%d", i))
		pp.fate = tc.fate
		s.arm(t, sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{tc.op}})
		if status, _, err := fpFirstPost(e, pos, d, pp, rng); err != nil || status != http.StatusGatewayTimeout {
			t.Fatalf("%s: first answer %d %v, want 504 outcome_unknown", pp.id, status, err)
		}
		runs = append(runs, run{pp, tc.want})
	}
	pos.settleClaims(t, seed+1)
	stop()
	waitClaimers()
	e.waitSettled(d)
	d.stop(t)

	c := newCounts()
	c.Lives = 1
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	recs := e.readJournal()
	for _, r := range runs {
		if got := recs[r.pp.id]; got == nil || got.Status != r.want {
			t.Errorf("%s %s, POS %s: got %v, want %s\n%s", r.pp.op, r.pp.id, r.pp.fate, statusOf(got), r.want, fpDescribe(got))
		}
	}
	if c.Settled["refund"] != 3 || c.Settled["void"] != 2 {
		t.Errorf("settled by refund %d and void %d, want 3 and 2", c.Settled["refund"], c.Settled["void"])
	}
	c.report(t, "TestLinkFaultRefundAfterCutoff", 0)
}

// TestRecoveryClaimWhileAVoidIsUnknown is the regression test of a bug the
// crash sweep found (kill at recovery-after-void, then a claim): recovery
// sent the void of an abandoned approval, the void's answer was lost (the
// terminal did void it), and then the POS claimed the payment. Recovery
// settled it "approved" without looking the void up, so the journal and the
// POS said approved while the customer had the money back. The void must be
// looked up first: it happened, so the payment is voided (the claim came
// after the claim window).
func TestRecoveryClaimWhileAVoidIsUnknown(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	// A long backoff: after the void's unknown outcome, recovery's next look
	// comes seconds later, and the claim lands before it.
	e := newFPEnv(t, fpOptions{Lanes: 1, BackoffMin: time.Second, BackoffMax: 5 * time.Second})
	pos := newPOS(e)
	pos.noFollow = true
	d := e.mustStart()
	s := e.sims[0]
	s.arm(t, sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"charge"}})
	s.arm(t, sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"void"}})
	pp := pos.payment(s.lane, "charge", "12.50", "void-race")
	pp.fate = fpAbandon
	if status, _, err := fpFirstPost(e, pos, d, pp, rng); err != nil || status != http.StatusGatewayTimeout {
		t.Fatalf("first answer %d %v, want 504 outcome_unknown", status, err)
	}
	deadline := time.Now().Add(fpDeadline)
	for {
		if en, ok := s.ledger(t).Entry(pp.id); ok && en.Voided {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery did not void %s within %s", pp.id, fpDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := peekStatus(t, e, d, pp.id); got != payment.StatusUnknown {
		t.Fatalf("after the void's lost answer: got %s, want unknown (the test needs the claim to come first)", got)
	}
	// Now the POS asks for it (a GET claims it).
	status, body := e.mustDo(d, http.MethodGet, "/v1/transactions/"+pp.id+"?wait=60s", "")
	var tx payment.Transaction
	if err := json.Unmarshal(body, &tx); err != nil || status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, body)
	}
	if tx.Status != payment.StatusVoided {
		t.Errorf("claimed after its void went out: got %s, want voided (the terminal voided it)", tx.Status)
	}
	e.waitSettled(d)
	d.stop(t)
	c := newCounts()
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
}

// TestRecoveryOfARetriedPaymentKilledMidCall is the regression test of a
// lost approval the crash sweep found. A charge is refused with TER-003
// (the terminal is busy with a transaction posbridge did not start), so it
// is a retryable failure; the POS sends it again with the same id long
// after, and the daemon dies while the terminal works on it. Recovery
// measured "the terminal can no longer be running it" from the record's
// creation, searched at once, found nothing yet and closed it not_charged;
// the terminal then approved it. It must wait from the last send.
func TestRecoveryOfARetriedPaymentKilledMidCall(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 8))
	// A think time abort cannot cut short: the terminal approves whatever
	// it started.
	e := newFPEnv(t, fpOptions{Lanes: 1, ClaimWindow: 3 * time.Second,
		SimArgs: []string{"--think-time", "3s", "--approval-phase", "3s"}})
	pos := newPOS(e)
	pos.noFollow = true
	s := e.sims[0]
	d := e.mustStart()

	// Another register's charge holds the terminal.
	signer, err := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: fpCredential, Serial: s.serial})
	if err != nil {
		t.Fatal(err)
	}
	client, err := terminal.NewClient(terminal.ClientConfig{BaseURL: terminal.LANBaseURL(s.addr), Kind: terminal.LAN, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	foreign := uuid.NewString()
	pos.foreign = map[string]bool{foreign: true}
	foreignDone := make(chan error, 1)
	go func() {
		_, err := client.Charge(context.Background(), terminal.ChargeRequest{ClientTransactionID: foreign,
			Amount: payment.Amount{SubtotalIVA0: money.MustParse("5")}})
		foreignDone <- err
	}()
	deadline := time.Now().Add(fpDeadline)
	for a := s.state(t).Active; a == nil || a.ClientTransactionID != foreign; a = s.state(t).Active {
		if time.Now().After(deadline) {
			t.Fatal("the foreign charge never became active")
		}
		time.Sleep(5 * time.Millisecond)
	}
	pp := pos.payment(s.lane, "charge", "12.50", "retried")
	pp.fate = fpClaim
	status, body := e.mustDo(d, http.MethodPost, pp.path, pp.body)
	if status != http.StatusConflict || !strings.Contains(string(body), "terminal_busy") {
		t.Fatalf("charge while the terminal is busy: got %d %s, want 409 terminal_busy", status, body)
	}
	if err := <-foreignDone; err != nil {
		t.Fatalf("foreign charge: %v", err)
	}
	// Later than the response timeout and grace after the first attempt.
	time.Sleep(fpResponse + fpNotFoundGrace + 500*time.Millisecond)
	d.kill()
	<-d.done

	// The POS sends it again; the daemon dies once the request is written.
	d = e.start(FPTerminalWrote + "=kill@1")
	if !d.waitReady(t) {
		t.Fatalf("life %d died before it was ready: %s", d.life, d.state)
	}
	pos.markSent(pp)
	if pos.post(context.Background(), d, pp, rng) {
		t.Fatalf("the retry was answered; want the daemon killed at %s", FPTerminalWrote)
	}
	<-d.done
	if got := d.firedFailpoint(); got != FPTerminalWrote {
		t.Fatalf("life %d ended with %s, failpoint %q; want %s", d.life, d.state, got, FPTerminalWrote)
	}
	if n := s.state(t).Requests["charge"]; n != 3 {
		t.Fatalf("charges on the terminal: got %d, want 3 (the foreign one, the busy one, the retry the daemon died on)", n)
	}

	d = e.mustStart()
	ctx, stop := context.WithCancel(context.Background())
	waitClaimers := pos.runClaimers(ctx, 2, seed)
	defer func() {
		stop()
		waitClaimers()
	}()
	pos.settleClaims(t, seed+1)
	e.waitSettled(d)
	d.stop(t)
	c := newCounts()
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	if pp.status != string(payment.StatusApproved) {
		t.Errorf("the POS's retry got %q, want approved (the terminal approved it)", pp.status)
	}
	if en, ok := s.ledger(t).Entry(pp.id); !ok || en.TimesTaken != 1 {
		t.Errorf("on the terminal: %+v, want approved once", en)
	}
}

// waitStatus waits until a record reaches want, reading it without claiming
// it (GET /v1/transactions?client_transaction_id=).
func waitStatus(t *testing.T, e *fpEnv, d *fpDaemon, id string, want payment.Status) {
	t.Helper()
	deadline := time.Now().Add(fpDeadline)
	for {
		got := peekStatus(t, e, d, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %s, want %s", id, got, fpDeadline, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peekStatus reads a record's status without claiming it ("" when there is
// none).
func peekStatus(t *testing.T, e *fpEnv, d *fpDaemon, id string) payment.Status {
	t.Helper()
	status, body := e.mustDo(d, http.MethodGet, "/v1/transactions?client_transaction_id="+id, "")
	var list struct {
		Transactions []payment.Transaction `json:"transactions"`
	}
	if err := json.Unmarshal(body, &list); err != nil || status != http.StatusOK {
		t.Fatalf("GET /v1/transactions?client_transaction_id=%s: %d %s", id, status, body)
	}
	if len(list.Transactions) == 0 {
		return ""
	}
	return list.Transactions[0].Status
}

func statusOf(r *payment.Record) payment.Status {
	if r == nil {
		return ""
	}
	return r.Status
}

// fpMountTmpfs mounts a tmpfs of size on a new temporary directory, and
// unmounts it at cleanup (after the daemon of the test is gone). It skips
// the test only where mounting is not permitted.
func fpMountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("skipped: mounting a tmpfs on %s is not permitted: %v (needs root or CAP_SYS_ADMIN)", dir, err)
		}
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fpFill writes a file in dir until the file system is full, and returns
// its path.
func fpFill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: got %v, want ENOSPC", dir, err)
			}
			// The last partial page: fill it byte by byte.
			for err == nil {
				_, err = f.Write(buf[:1])
			}
			return path
		}
	}
}

// fpBigPayment is a charge whose journal record needs new pages (20
// metadata entries of 64-byte keys and 256-byte values, the API's limits),
// so its commit cannot fit in pages the journal already owns.
func fpBigPayment(pos *posModel, lane, amount string) *posPay {
	id := uuid.NewString()
	var meta []string
	for i := range 20 {
		meta = append(meta, fmt.Sprintf(`"k%s%02d":%q`, strings.Repeat("x", 61), i, strings.Repeat("v", 256)))
	}
	body := fmt.Sprintf(`{"client_transaction_id":%q,"terminal":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s},"metadata":{%s}}`,
		id, lane, amount, strings.Join(meta, ","))
	return pos.register(&posPay{id: id, lane: lane, op: "charge", path: "/v1/charges", body: body})
}

// TestDiskFaultIntent: when the intent cannot be made durable (the disk is
// full), the payment is refused with 503 journal_unavailable and nothing at
// all reaches the terminal (DESIGN.md lifecycle step 2: fail closed). After
// a restart with space, the same request runs once.
func TestDiskFaultIntent(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 6))
	dataDir := fpMountTmpfs(t, "4m")
	e := newFPEnv(t, fpOptions{Lanes: 1, DataDir: dataDir})
	pos := newPOS(e)
	pos.noFollow = true
	s := e.sims[0]
	d := e.mustStart()
	filler := fpFill(t, dataDir)

	pp := fpBigPayment(pos, s.lane, "12.50")
	status, body := e.mustDo(d, http.MethodPost, pp.path, pp.body)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"journal_unavailable"`) {
		t.Fatalf("charge on a full disk: got %d %s, want 503 journal_unavailable", status, body)
	}
	if st := s.state(t); st.TotalRequests != 0 {
		t.Fatalf("terminal requests after a refused intent: got %d %v, want 0", st.TotalRequests, st.Requests)
	}
	if status, body := e.mustDo(d, http.MethodGet, "/readyz", ""); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failed journal: got %d %s, want 503", status, body)
	}
	d.kill()
	<-d.done
	if st := s.state(t); st.TotalRequests != 0 {
		t.Fatalf("terminal requests: got %d %v, want 0", st.TotalRequests, st.Requests)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	d = e.mustStart()
	if got := peekStatus(t, e, d, pp.id); got != "" {
		t.Fatalf("the refused charge is in the journal as %s; want no record", got)
	}
	if status, _, err := fpFirstPost(e, pos, d, pp, rng); err != nil || status != http.StatusOK || pp.status != string(payment.StatusApproved) {
		t.Fatalf("the same charge with space again: %d %q %v, want 200 approved", status, pp.status, err)
	}
	d.stop(t)
	c := newCounts()
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	if st := s.state(t); st.Requests["charge"] != 1 {
		t.Errorf("charges sent: got %d, want 1", st.Requests["charge"])
	}
}

// TestDiskFaultOutcome: the terminal approves two charges while the disk
// fills up, so their outcomes cannot be made durable. The daemon stops at
// once with a failure (no fsync retry, no draining; research §3.6
// "fsyncgate"), leaving both records pending in the journal; after a
// restart with space, recovery settles them from the terminal's history:
// the one the POS claims is approved, the one it abandons is voided.
func TestDiskFaultOutcome(t *testing.T) {
	t.Parallel()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	dataDir := fpMountTmpfs(t, "4m")
	// A long think time: the disk is filled while both charges are on the
	// terminals.
	e := newFPEnv(t, fpOptions{Lanes: 2, DataDir: dataDir, SimArgs: []string{"--think-time", "4s"}, ClaimWindow: 3 * time.Second})
	pos := newPOS(e)
	pos.noFollow = true
	d := e.mustStart()
	claimed, abandoned := fpBigPayment(pos, e.sims[0].lane, "12.50"), fpBigPayment(pos, e.sims[1].lane, "33.33")
	claimed.fate, abandoned.fate = fpClaim, fpAbandon
	var wg sync.WaitGroup
	for _, pp := range []*posPay{claimed, abandoned} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos.markSent(pp)
			pos.post(context.Background(), d, pp, rng)
		}()
	}
	deadline := time.Now().Add(fpDeadline)
	for _, pp := range []*posPay{claimed, abandoned} {
		for {
			if a := e.sim(pp.lane).state(t).Active; a != nil && a.ClientTransactionID == pp.id {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became active on %s", pp.id, pp.lane)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	filler := fpFill(t, dataDir)
	select {
	case <-d.done:
	case <-time.After(fpDeadline):
		t.Fatalf("the daemon did not stop within %s of an outcome it could not write", fpDeadline)
	}
	wg.Wait()
	if d.sigkilled() || d.state.Success() {
		t.Fatalf("the daemon ended with %s; want a failure exit of its own", d.state)
	}
	out := d.out.String()
	if !strings.Contains(out, "outcome not durable; stopping") || !strings.Contains(out, "stopping at once") {
		t.Errorf("the daemon's log does not say it stopped for an outcome it could not write:\n%s", fpTail(out, 4000))
	}
	// The outcomes never reached the journal, and nothing retried them.
	recs := e.readJournal()
	for _, pp := range []*posPay{claimed, abandoned} {
		if r := recs[pp.id]; r == nil || r.Status != payment.StatusPending {
			t.Errorf("%s after the failed commit: got %v, want pending (the intent alone)", pp.id, statusOf(r))
		}
		if en, ok := e.sim(pp.lane).ledger(t).Entry(pp.id); !ok || en.TimesTaken != 1 {
			t.Errorf("%s on the terminal: %+v, want approved once", pp.id, en)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	d = e.mustStart()
	ctx, stop := context.WithCancel(context.Background())
	waitClaimers := pos.runClaimers(ctx, 2, seed)
	defer func() {
		stop()
		waitClaimers()
	}()
	pos.settleClaims(t, seed+1)
	stop()
	waitClaimers()
	e.waitSettled(d)
	d.stop(t)
	c := newCounts()
	for _, b := range pos.check(t, c) {
		t.Error(b)
	}
	recs = e.readJournal()
	for pp, want := range map[*posPay]payment.Status{claimed: payment.StatusApproved, abandoned: payment.StatusVoided} {
		if r := recs[pp.id]; r == nil || r.Status != want {
			t.Errorf("%s (POS %s) after the restart: got %v, want %s\n%s", pp.id, pp.fate, statusOf(r), want, fpDescribe(r))
		}
	}
	c.report(t, "TestDiskFaultOutcome", 0)
}
