package main

// The POS model the crash and fault tests drive payments with, and the
// invariant check of a test's journal file against its simulators' ledgers
// (research/anchors-reliability.md §6): I1 no double charge, I2 no lost
// approval, I3 no orphans, I4 stable replay, I5 store integrity.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// fpFate is what the POS does with a payment left without an answer (the
// daemon died, or answered outcome_unknown).
type fpFate string

const (
	fpClaim   fpFate = "claim"   // retries the same request with the same id and body
	fpPoll    fpFate = "poll"    // reads it with GET /v1/transactions/{id}?wait=
	fpAbandon fpFate = "abandon" // never asks again: recovery must reverse an approval
)

// posPay is one operation the POS asked for.
type posPay struct {
	id, lane, op string
	path, body   string // the exact request; a retry sends the same bytes
	origID       string // for follow-ups

	// Guarded by posModel.mu.
	fate       fpFate
	sent       bool   // the POS sent it at least once
	unanswered bool   // a request ended without a final answer
	final      bool   // the POS holds a final answer
	status     string // status of the final answer ("" for an error body)
	code       string // error code of the final answer
	reply      []byte // the first final answer to a POST, byte for byte
	replyHTTP  int
	followed   bool
}

// posTask is a request the POS still has to make.
type posTask struct {
	p         *posPay
	poll      bool // GET ?wait= instead of the POST again
	notBefore time.Time
}

// posStats count what the POS did and saw.
type posStats struct {
	payments   int // operations started (new payments and follow-ups)
	followUps  int
	unanswered int
	fates      map[fpFate]int
	busy       int // 409 terminal_busy answers
	replays    int // final answers compared with an earlier one, byte for byte
	replayDiff []string
	unexpected []string
}

// posModel is the POS: per lane a worker sending payments and follow-ups,
// and claimers retrying and polling the payments left without an answer.
type posModel struct {
	env *fpEnv

	mu       sync.Mutex
	all      []*posPay
	laneQ    map[string][]posTask
	claimQ   []posTask
	inFlight int // claim tasks being worked on
	stats    posStats
	faults   bool // arm a link fault on a lane from time to time (crash tests)
	noFollow bool // never follow an approval up (link-fault tests)
	// foreign are ids a test sent to a terminal itself, past posbridge; the
	// check leaves them out.
	foreign map[string]bool
}

func newPOS(e *fpEnv) *posModel {
	return &posModel{env: e, laneQ: map[string][]posTask{},
		stats: posStats{fates: map[fpFate]int{}}}
}

// runClaimers starts only the claimers (the caller sends the first
// requests itself); the returned function waits for them after ctx ends.
func (p *posModel) runClaimers(ctx context.Context, n int, seed uint64) (wait func()) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.claimer(ctx, rand.New(rand.NewPCG(seed, uint64(3000+i))))
		}()
	}
	return wg.Wait
}

// newPayment makes a new charge (three in four) or authorization on lane,
// of a random amount: mostly approvals, the simulator's declines 10, 40 and
// 50 (research/kushki-one.md §7 test amounts), and 74, approved after a
// delay.
func (p *posModel) newPayment(lane string, rng *rand.Rand) *posPay {
	amounts := []string{"12.50", "7.30", "33.33", "99.99", "1.01", "250.00", "18.40", "5.55", "10", "40", "50", "74"}
	op := "charge"
	if rng.IntN(4) == 0 {
		op = "authorization"
	}
	return p.payment(lane, op, amounts[rng.IntN(len(amounts))], fmt.Sprint(rng.IntN(100000)))
}

// payment makes a new charge or authorization of amount on lane.
func (p *posModel) payment(lane, op, amount, order string) *posPay {
	path := "/v1/charges"
	if op == "authorization" {
		path = "/v1/authorizations"
	}
	id := uuid.NewString()
	body := fmt.Sprintf(`{"client_transaction_id":%q,"terminal":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s},"metadata":{"order":%q}}`,
		id, lane, amount, order)
	return p.register(&posPay{id: id, lane: lane, op: op, path: path, body: body})
}

// register adds an operation the test built itself.
func (p *posModel) register(pp *posPay) *posPay {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, pp)
	return pp
}

// followUp queues, for an approved original, one follow-up the POS makes
// later: a partial refund, a tip or a cancel of a charge; a capture or a
// cancel of an authorization. p.mu is held.
func (p *posModel) followUpLocked(o *posPay, rng *rand.Rand) {
	o.followed = true
	id := uuid.NewString()
	f := &posPay{id: id, lane: o.lane, origID: o.id}
	delay := time.Duration(0)
	var total money.Decimal
	var v struct {
		Amount payment.Amount `json:"amount"`
	}
	if json.Unmarshal([]byte(o.body), &v) == nil {
		total = v.Amount.Total()
	}
	kind := rng.IntN(3)
	switch {
	case o.op == "charge" && kind == 0:
		half := total
		if cents, ok := total.Minor(2); ok && cents > 1 {
			half = money.New(cents/2, 2)
		}
		f.op, f.body = "refund", fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s}}`, id, half)
	case o.op == "charge" && kind == 1:
		f.op, f.body = "tip", fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":0,"tip":1.50}}`, id)
	case o.op == "authorization" && kind != 2:
		f.op, f.body = "capture", fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s}}`, id, total)
	default:
		// A cancel voids inside the void window, which opens reverse_delay
		// after the approval.
		f.op, f.body = "cancel", fmt.Sprintf(`{"client_transaction_id":%q}`, id)
		delay = fpReverseDelay + time.Second
	}
	f.path = "/v1/transactions/" + o.id + "/" + f.op
	p.all = append(p.all, f)
	p.laneQ[o.lane] = append(p.laneQ[o.lane], posTask{p: f, notBefore: time.Now().Add(delay)})
}

// nextLaneTask returns a due follow-up or retry for lane, or nil.
func (p *posModel) nextLaneTask(lane string) *posPay {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.laneQ[lane]
	now := time.Now()
	for i, t := range q {
		if !now.Before(t.notBefore) {
			p.laneQ[lane] = append(q[:i:i], q[i+1:]...)
			return t.p
		}
	}
	return nil
}

// run starts the POS workers: one per lane for new payments and
// follow-ups, and claimers for the unanswered ones. They stop when ctx
// ends; the returned function waits for them.
func (p *posModel) run(ctx context.Context, claimers int, seed uint64) (wait func()) {
	var wg sync.WaitGroup
	for i, s := range p.env.sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.laneWorker(ctx, s.lane, rand.New(rand.NewPCG(seed, uint64(i))))
		}()
	}
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.claimer(ctx, rand.New(rand.NewPCG(seed, uint64(1000+i))))
		}()
	}
	return wg.Wait
}

func (p *posModel) laneWorker(ctx context.Context, lane string, rng *rand.Rand) {
	minLife := 0
	for ctx.Err() == nil {
		d, err := p.env.current(ctx, minLife)
		if err != nil {
			return
		}
		pp := p.nextLaneTask(lane)
		if pp == nil {
			pp = p.newPayment(lane, rng)
			if p.faults && rng.IntN(3) == 0 {
				p.armRandomFault(lane, rng)
			}
		}
		p.markSent(pp)
		p.env.paymentStarted()
		if !p.post(ctx, d, pp, rng) {
			minLife = d.life + 1
		}
		fpSleep(ctx, time.Duration(5+rng.IntN(30))*time.Millisecond)
	}
}

// markSent counts an operation the first time the POS sends it.
func (p *posModel) markSent(pp *posPay) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp.sent {
		return
	}
	pp.sent = true
	p.stats.payments++
	if pp.origID != "" {
		p.stats.followUps++
	}
}

// armRandomFault arms one link fault for lane's next charge or
// authorization, so that unknown outcomes (and recovery work) arise between
// the kills too.
func (p *posModel) armRandomFault(lane string, rng *rand.Rand) {
	modes := []sim.FaultMode{sim.FaultDropAfterApprove, sim.FaultDropBefore, sim.FaultApproveThen500, sim.FaultError500}
	f := sim.Fault{Mode: modes[rng.IntN(len(modes))], Endpoints: []string{"charge", "authorization"}}
	if err := p.env.sim(lane).control(http.MethodPost, "faults", f, nil); err != nil {
		p.unexpected("arm fault: %v", err)
	}
}

func (p *posModel) claimer(ctx context.Context, rng *rand.Rand) {
	minLife := 0
	for ctx.Err() == nil {
		t, ok := p.popClaim()
		if !ok {
			fpSleep(ctx, 20*time.Millisecond)
			continue
		}
		d, err := p.env.current(ctx, minLife)
		if err != nil {
			p.requeue(t)
			p.doneClaim()
			return
		}
		var answered bool
		if t.poll {
			answered = p.poll(ctx, d, t.p)
		} else {
			answered = p.post(ctx, d, t.p, rng)
		}
		if !answered {
			minLife = d.life + 1
		}
		p.doneClaim()
	}
}

func (p *posModel) popClaim() (posTask, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for i, t := range p.claimQ {
		if !now.Before(t.notBefore) {
			p.claimQ = append(p.claimQ[:i:i], p.claimQ[i+1:]...)
			p.inFlight++
			return t, true
		}
	}
	return posTask{}, false
}

func (p *posModel) doneClaim() {
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
}

func (p *posModel) requeue(t posTask) {
	p.mu.Lock()
	p.claimQ = append(p.claimQ, t)
	p.mu.Unlock()
}

// pendingClaims counts claim tasks queued or running.
func (p *posModel) pendingClaims() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.claimQ) + p.inFlight
}

// post sends pp's request and acts on the answer. It returns false when no
// answer came (transport error).
func (p *posModel) post(ctx context.Context, d *fpDaemon, pp *posPay, rng *rand.Rand) bool {
	status, body, err := p.env.do(ctx, d, http.MethodPost, pp.path, pp.body)
	if err != nil {
		p.noAnswer(pp, rng)
		return false
	}
	p.answer(pp, status, body, rng)
	return true
}

// answer acts on the answer to a POST of pp: a final answer is kept (and
// compared with the first one, byte for byte); an unknown outcome goes to
// pp's fate; a busy or shutting-down refusal is tried again later.
func (p *posModel) answer(pp *posPay, status int, body []byte, rng *rand.Rand) {
	var v struct {
		Status string `json:"status"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &v)
	code := ""
	if v.Error != nil {
		code = v.Error.Code
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case status == http.StatusOK || (status == http.StatusBadGateway && code == string(payment.CodeTerminalError)):
		if pp.reply != nil {
			p.stats.replays++
			if !bytes.Equal(pp.reply, body) || pp.replyHTTP != status {
				p.stats.replayDiff = append(p.stats.replayDiff,
					fmt.Sprintf("%s: first %d %s\n  later %d %s", pp.id, pp.replyHTTP, pp.reply, status, body))
			}
			return
		}
		pp.final, pp.status, pp.code, pp.reply, pp.replyHTTP = true, v.Status, code, body, status
		if v.Status == string(payment.StatusApproved) && pp.origID == "" && !pp.followed && !p.noFollow && rng.IntN(3) == 0 {
			p.followUpLocked(pp, rng)
		}
	case status == http.StatusGatewayTimeout && code == string(payment.CodeOutcomeUnknown):
		p.noAnswerLocked(pp, rng)
	case status == http.StatusConflict && code == string(payment.CodeTerminalBusy):
		// Nothing was sent (the lane was held, or the terminal still ran an
		// earlier request): the POS tries again later, or gives up.
		p.stats.busy++
		if pp.fate == fpClaim || pp.fate == fpPoll {
			p.claimQ = append(p.claimQ, posTask{p: pp, notBefore: time.Now().Add(100 * time.Millisecond)})
		} else if rng.IntN(3) != 0 {
			p.laneQ[pp.lane] = append(p.laneQ[pp.lane], posTask{p: pp, notBefore: time.Now().Add(50 * time.Millisecond)})
		}
	case status == http.StatusServiceUnavailable && (code == string(payment.CodeShuttingDown) || code == string(payment.CodeTerminalUnreachable)):
		p.claimQ = append(p.claimQ, posTask{p: pp, notBefore: time.Now().Add(100 * time.Millisecond)})
	default:
		p.stats.unexpected = append(p.stats.unexpected, fmt.Sprintf("POST %s (%s): %d %s", pp.path, pp.id, status, body))
	}
}

// poll reads pp with GET ?wait= (which also claims it).
func (p *posModel) poll(ctx context.Context, d *fpDaemon, pp *posPay) bool {
	status, body, err := p.env.do(ctx, d, http.MethodGet, "/v1/transactions/"+pp.id+"?wait=3s", "")
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.claimQ = append(p.claimQ, posTask{p: pp, poll: true})
		return false
	case status == http.StatusNotFound:
		pp.final, pp.status = true, "absent" // the request never reached the journal
	case status == http.StatusOK:
		var v struct {
			Status payment.Status `json:"status"`
		}
		_ = json.Unmarshal(body, &v)
		if v.Status.Final() || v.Status == payment.StatusNeedsAttention {
			pp.final, pp.status = true, string(v.Status)
			return true
		}
		p.claimQ = append(p.claimQ, posTask{p: pp, poll: true})
	default:
		p.stats.unexpected = append(p.stats.unexpected, fmt.Sprintf("GET %s: %d %s", pp.id, status, body))
	}
	return true
}

func (p *posModel) noAnswer(pp *posPay, rng *rand.Rand) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noAnswerLocked(pp, rng)
}

// noAnswerLocked decides, once, what the POS does about a payment left
// without an answer, and queues its next request. p.mu is held.
func (p *posModel) noAnswerLocked(pp *posPay, rng *rand.Rand) {
	if pp.final {
		return
	}
	if pp.fate == "" {
		switch n := rng.IntN(20); {
		case n < 7:
			pp.fate = fpClaim
		case n < 12:
			pp.fate = fpPoll
		default:
			pp.fate = fpAbandon
		}
	}
	if !pp.unanswered {
		pp.unanswered = true
		p.stats.unanswered++
		p.stats.fates[pp.fate]++
	}
	switch pp.fate {
	case fpClaim:
		p.claimQ = append(p.claimQ, posTask{p: pp})
	case fpPoll:
		p.claimQ = append(p.claimQ, posTask{p: pp, poll: true})
	}
}

func (p *posModel) unexpected(format string, args ...any) {
	p.mu.Lock()
	p.stats.unexpected = append(p.stats.unexpected, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// settleClaims runs claimers against the current daemon until every
// retry and poll has a final answer.
func (p *posModel) settleClaims(t testing.TB, seed uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.claimer(ctx, rand.New(rand.NewPCG(seed, uint64(2000+i))))
		}()
	}
	deadline := time.Now().Add(fpDeadline)
	for p.pendingClaims() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := p.pendingClaims(); n > 0 {
		t.Errorf("%d POS retries and polls got no final answer within %s", n, fpDeadline)
	}
}

// replaySample sends again the requests of up to n payments with a final
// answer and compares the answers with the first ones (I4).
func (p *posModel) replaySample(t testing.TB, d *fpDaemon, n int, rng *rand.Rand) {
	t.Helper()
	p.mu.Lock()
	var done []*posPay
	for _, pp := range p.all {
		if pp.reply != nil {
			done = append(done, pp)
		}
	}
	p.mu.Unlock()
	rng.Shuffle(len(done), func(i, j int) { done[i], done[j] = done[j], done[i] })
	for _, pp := range done[:min(n, len(done))] {
		ctx, cancel := context.WithTimeout(context.Background(), fpDeadline)
		if !p.post(ctx, d, pp, rng) {
			t.Errorf("replay of %s: no answer", pp.id)
		}
		cancel()
	}
}

func fpSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// fpCounts are a test's figures.
type fpCounts struct {
	Lives        int
	Kills        map[string]int // by failpoint, "random" for the harness's SIGKILLs
	Missed       map[string]int // failpoint lives that ended without the failpoint firing
	Approvals    int            // approvals on the simulators' ledgers
	Settled      map[string]int // recovery settlements: search, void, refund, reverse, needs_attention
	Double       int            // I1: money taken more than once, or more than the amount
	Resent       int            // ids the terminal processed more than once
	Lost         int            // I2
	Orphans      int            // I3
	Attention    int            // needs_attention records
	Mismatch     int            // journal and ledger (or POS) disagree
	ClaimedKept  int            // unanswered payments the POS claimed that ended approved
	ClaimedLate  int            // … that were reversed because the claim came after the claim window
	Replays      int            // I4: answers compared byte for byte
	ReplayDiffs  int
	Notes        []string // unusual but correct settlements, for the log
	POS          posStats
	JournalCount int
}

var fpUUIDRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// fpApproved reports whether a journal status says the terminal approved
// the operation (whatever happened to it since).
func fpApproved(s payment.Status) bool {
	switch s {
	case payment.StatusApproved, payment.StatusCaptured, payment.StatusPartiallyRefunded, payment.StatusRefunded,
		payment.StatusVoided, payment.StatusReversed:
		return true
	}
	return false
}

// fpEventIndex returns the index of the first event whose detail starts with
// prefix, or -1.
func fpEventIndex(r *payment.Record, prefix string) int {
	for i, ev := range r.Events {
		if strings.HasPrefix(ev.Detail, prefix) {
			return i
		}
	}
	return -1
}

// fpRecovered reports whether r went through recovery (it was unknown at
// some point).
func fpRecovered(r *payment.Record) bool {
	for _, ev := range r.Events {
		if ev.Status == payment.StatusUnknown {
			return true
		}
	}
	return false
}

// fpDescribe renders a journal record and its events for a failure
// message.
func fpDescribe(r *payment.Record) string {
	if r == nil {
		return "no journal record"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "journal %s %s %s ref %q claimed=%v:", r.Operation, r.Status, r.Amount.Total(), r.Reference, r.Claimed)
	for _, ev := range r.Events {
		fmt.Fprintf(&b, "\n      %s %-12s %s %s", ev.At.Format("15:04:05.000"), ev.Status, ev.Code, ev.Detail)
	}
	return b.String()
}

// fpReversed reports whether recovery reversed r as an abandoned
// approval (a void or refund it sent was approved, or the raw-API reverse).
func fpReversed(r *payment.Record) bool {
	return r.Status == payment.StatusReversed || fpEventIndex(r, "abandoned approval voided") >= 0 ||
		fpEventIndex(r, "abandoned approval refunded") >= 0
}

// check reads the journal (the daemon must have stopped) and the ledgers
// and returns the figures and every violation found.
func (p *posModel) check(t testing.TB, c *fpCounts) []string {
	t.Helper()
	e := p.env
	recs := e.readJournal()
	ledgers := e.ledgers()
	var bad []string
	violation := func(kind *int, format string, args ...any) {
		*kind++
		bad = append(bad, fmt.Sprintf(format, args...))
	}

	// The ids of recovery's own voids and refunds, named in the events of
	// the record they reverse.
	reversalOf := map[string]*payment.Record{}
	for _, r := range recs {
		for _, ev := range r.Events {
			if !strings.Contains(ev.Detail, "abandoned approval") {
				continue
			}
			for _, id := range fpUUIDRE.FindAllString(ev.Detail, -1) {
				if recs[id] == nil {
					reversalOf[id] = r
				}
			}
		}
	}

	inLedger := map[string]bool{}
	for lane, l := range ledgers {
		for _, en := range l.Entries {
			id := en.ClientTransactionID
			if p.foreign[id] {
				continue
			}
			inLedger[id] = true
			r := recs[id]
			if en.Attempts > 1 {
				violation(&c.Resent, "%s %s %s: the terminal processed it %d times\n    %s", lane, en.Operation, id, en.Attempts, fpDescribe(r))
			}
			if en.TimesTaken > 1 || en.Outstanding.Cmp(en.Amount) > 0 {
				violation(&c.Double, "DOUBLE CHARGE %s %s %s: taken %d times, outstanding %s of %s\n    %s",
					lane, en.Operation, id, en.TimesTaken, en.Outstanding, en.Amount, fpDescribe(r))
			}
			if en.Status != terminal.StatusApproval {
				if r != nil && fpApproved(r.Status) {
					violation(&c.Mismatch, "%s %s: the terminal says %s, the journal %s\n    %s", lane, id, en.Status, r.Status, fpDescribe(r))
				}
				continue
			}
			c.Approvals++
			if r == nil {
				if o := reversalOf[id]; o != nil && (o.Status == payment.StatusVoided || o.Status == payment.StatusRefunded) {
					continue // recovery's reversal of o, checked with o
				}
				violation(&c.Lost, "LOST APPROVAL %s %s %s %s ref %s: approved on the terminal, unknown to the journal",
					lane, en.Operation, id, en.Amount, en.Reference)
				continue
			}
			if !r.Status.Final() {
				continue // an orphan or needs_attention, counted below
			}
			// A charge reversed through the raw API without ever being found
			// has no reference of its own (the reversal's is in its last
			// event): the charge's was never learned.
			if r.Reference != en.Reference && !(r.Status == payment.StatusReversed && en.Reversed) {
				violation(&c.Lost, "LOST APPROVAL %s %s: terminal reference %s\n    %s", lane, id, en.Reference, fpDescribe(r))
				continue
			}
			ok := true
			switch r.Status {
			case payment.StatusDeclined, payment.StatusCancelled, payment.StatusNotCharged, payment.StatusFailed:
				violation(&c.Lost, "LOST APPROVAL %s %s: approved on the terminal\n    %s", lane, id, fpDescribe(r))
				continue
			case payment.StatusVoided:
				ok = en.Voided || en.Reversed
			case payment.StatusReversed:
				ok = en.Reversed
			case payment.StatusRefunded:
				ok = en.Operation != "charge" || en.Returned.Cmp(en.Taken) == 0
			case payment.StatusPartiallyRefunded:
				ok = en.Returned.Sign() > 0 && en.Returned.Cmp(en.Taken) < 0
			case payment.StatusApproved:
				ok = !en.Voided && !en.Reversed && en.Returned.IsZero()
			case payment.StatusCaptured:
				ok = !en.Voided && !en.Reversed
			}
			if !ok {
				violation(&c.Mismatch, "%s %s: journal %s, terminal voided=%v reversed=%v returned %s of %s\n    %s",
					lane, id, r.Status, en.Voided, en.Reversed, en.Returned, en.Taken, fpDescribe(r))
			}
		}
	}

	c.JournalCount = len(recs)
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := recs[id]
		switch r.Status {
		case payment.StatusPending, payment.StatusUnknown:
			violation(&c.Orphans, "ORPHAN %s left %s after recovery\n    %s", id, r.Status, fpDescribe(r))
		case payment.StatusNeedsAttention:
			violation(&c.Attention, "NEEDS ATTENTION %s\n    %s", id, fpDescribe(r))
		}
		if fpApproved(r.Status) && r.Reference != "" && !inLedger[id] {
			violation(&c.Mismatch, "%s: the journal says %s with reference %s; the terminal never processed it\n    %s", id, r.Status, r.Reference, fpDescribe(r))
		}
		if fpRecovered(r) {
			switch {
			case r.Status == payment.StatusNeedsAttention:
				c.Settled["needs_attention"]++
			case !r.Status.Final():
			case r.Status == payment.StatusReversed:
				c.Settled["reverse"]++
			case fpEventIndex(r, "abandoned approval voided") >= 0:
				c.Settled["void"]++
			case fpEventIndex(r, "abandoned approval refunded") >= 0:
				c.Settled["refund"]++
				c.Notes = append(c.Notes, "settled by a refund (a void was refused): "+id+"\n    "+fpDescribe(r))
			default:
				c.Settled["search"]++
			}
		}
		// A claim made before the approval was found keeps it.
		claim, found := fpEventIndex(r, "claimed:"), fpEventIndex(r, "found approved on the terminal")
		if claim >= 0 && found >= 0 && claim < found && fpReversed(r) {
			violation(&c.Mismatch, "CLAIMED BUT REVERSED %s: the POS claimed it before the approval was found\n    %s", id, fpDescribe(r))
		}
	}

	// What the POS was told agrees with the journal.
	p.mu.Lock()
	pays := append([]*posPay(nil), p.all...)
	c.POS = p.stats
	c.POS.fates = map[fpFate]int{}
	for k, v := range p.stats.fates {
		c.POS.fates[k] = v
	}
	p.mu.Unlock()
	for _, pp := range pays {
		r := recs[pp.id]
		if pp.fate == fpClaim || pp.fate == fpPoll {
			if r != nil && r.Status == payment.StatusApproved && fpEventIndex(r, "found approved") >= 0 {
				c.ClaimedKept++
			}
			if r != nil && fpReversed(r) {
				c.ClaimedLate++
			}
		}
		if !pp.final || pp.status == "absent" {
			continue
		}
		switch {
		case r == nil:
			violation(&c.Mismatch, "%s %s: the POS was answered %s %s; the journal has no record", pp.op, pp.id, pp.status, pp.code)
		case pp.code == string(payment.CodeTerminalError):
			if r.Status != payment.StatusFailed {
				violation(&c.Mismatch, "%s: the POS was answered terminal_error\n    %s", pp.id, fpDescribe(r))
			}
		case pp.status == string(payment.StatusApproved):
			if !fpApproved(r.Status) || fpReversed(r) {
				violation(&c.Mismatch, "%s: the POS was answered approved\n    %s", pp.id, fpDescribe(r))
			}
		case pp.status != string(r.Status) && !(pp.status == string(payment.StatusNeedsAttention) && r.Status.Final()):
			violation(&c.Mismatch, "%s: the POS was answered %s\n    %s", pp.id, pp.status, fpDescribe(r))
		}
	}
	c.Replays = c.POS.replays
	c.ReplayDiffs = len(c.POS.replayDiff)
	for _, d := range c.POS.replayDiff {
		bad = append(bad, "REPLAY DIFFERS "+d)
	}
	for _, u := range c.POS.unexpected {
		bad = append(bad, "UNEXPECTED ANSWER "+u)
	}
	return bad
}

// report logs a test's figures in one block.
func (c *fpCounts) report(t testing.TB, title string, took time.Duration) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)\n", title, took.Round(time.Second))
	fmt.Fprintf(&b, "  daemon lives %d; kills:", c.Lives)
	total := 0
	names := make([]string, 0, len(c.Kills))
	for k := range c.Kills {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%d", k, c.Kills[k])
		total += c.Kills[k]
	}
	fmt.Fprintf(&b, " (total %d)\n", total)
	if len(c.Missed) > 0 {
		fmt.Fprintf(&b, "  failpoint lives ended by the harness (point not reached in time): %v\n", c.Missed)
	}
	fmt.Fprintf(&b, "  POS: operations %d (follow-ups %d), left without an answer %d (claimed %d, polled %d, abandoned %d), busy answers %d\n",
		c.POS.payments, c.POS.followUps, c.POS.unanswered, c.POS.fates[fpClaim], c.POS.fates[fpPoll], c.POS.fates[fpAbandon], c.POS.busy)
	fmt.Fprintf(&b, "  approvals on the ledgers %d; journal records %d\n", c.Approvals, c.JournalCount)
	fmt.Fprintf(&b, "  settled by recovery (from the journal's events): search %d, void %d, refund %d, reverse %d, needs_attention %d\n",
		c.Settled["search"], c.Settled["void"], c.Settled["refund"], c.Settled["reverse"], c.Settled["needs_attention"])
	fmt.Fprintf(&b, "  claimed or polled approvals kept %d, reversed after a late claim %d\n", c.ClaimedKept, c.ClaimedLate)
	fmt.Fprintf(&b, "  double charges %d, re-sent ids %d, lost approvals %d, orphans %d, needs_attention %d, disagreements %d, replays compared %d (differing %d)",
		c.Double, c.Resent, c.Lost, c.Orphans, c.Attention, c.Mismatch, c.Replays, c.ReplayDiffs)
	for _, n := range c.Notes[:min(len(c.Notes), 5)] {
		fmt.Fprintf(&b, "\n  %s", n)
	}
	t.Log(b.String())
}

func newCounts() *fpCounts {
	return &fpCounts{Kills: map[string]int{}, Missed: map[string]int{}, Settled: map[string]int{}}
}
