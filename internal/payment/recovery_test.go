package payment_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/payment"
)

func unknownOnce(h *harness) {
	var n atomic.Int32
	h.gw.setSend(func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		if n.Add(1) == 1 {
			return nil, fmt.Errorf("read: EOF: %w", payment.ErrOutcomeUnknown)
		}
		return approve(req), nil
	})
}

// terminalApproved makes lookups find the original approved (as the
// terminal's history would after a lost answer) and anything else not found.
func terminalApproved(h *harness, original string) {
	h.gw.mu.Lock()
	h.gw.lookup = func(id string) (*payment.Result, error) {
		if id == original {
			return approve(payment.TerminalRequest{ID: id}), nil
		}
		return nil, payment.ErrNotFound
	}
	h.gw.mu.Unlock()
}

func TestRecoveryReturnsAClaimedApproval(t *testing.T) {
	h := newHarness(t)
	unknownOnce(h)
	id := uuid.NewString()
	terminalApproved(h, id)
	if rep := mustExecute(t, h, charge(id, "12")); rep.Code != payment.CodeOutcomeUnknown {
		t.Fatalf("first answer: got %s, want outcome_unknown", rep.Code)
	}
	// The POS retries with the same id: it claims the payment and gets the truth.
	tx := decodeTx(t, mustExecute(t, h, charge(id, "12")))
	if tx.Status != payment.StatusApproved || tx.Reference != "ref-"+id {
		t.Fatalf("retry: got %s %s, want approved ref-%s", tx.Status, tx.Reference, id)
	}
	if n := len(h.gw.calls()); n != 1 {
		t.Errorf("payment calls: got %d, want 1 (never re-sent)", n)
	}
	if h.gw.aborts == 0 {
		t.Error("recovery did not abort the terminal first")
	}
	// And from now on the same reply, byte for byte.
	again := mustExecute(t, h, charge(id, "12"))
	if !again.Replayed || string(again.Body) != string(mustExecute(t, h, charge(id, "12")).Body) {
		t.Error("replies after recovery differ")
	}
}

func TestRecoveryVoidsAnAbandonedApprovalAfterTheWait(t *testing.T) {
	h := newHarness(t)
	unknownOnce(h)
	id := uuid.NewString()
	terminalApproved(h, id)
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "the approval to be found", func() bool {
		r := h.record(t, id)
		return r.Recovery != nil && r.Recovery.Found != nil
	})
	if got := h.status(id); got != payment.StatusUnknown {
		t.Fatalf("inside the claim window: got %s, want unknown", got)
	}
	h.clock.Add(2*time.Minute + time.Second) // past the claim window and the 1-minute void wait
	h.waitFor(t, "the void", func() bool { return h.status(id) == payment.StatusVoided })

	calls := h.gw.calls()
	if len(calls) != 2 || calls[1].Operation != payment.OpVoid || calls[1].Reference != "ref-"+id {
		t.Fatalf("terminal calls: got %+v, want the charge then one void of ref-%s", calls, id)
	}
	want := uuid.NewSHA1(uuid.MustParse("5b0f4c1e-8a6e-4f0e-9a57-0f8f6f1f2b3c"), []byte(id+"/void")).String()
	if calls[1].ID != want {
		t.Errorf("void id: got %s, want the derived %s", calls[1].ID, want)
	}
	// A late retry learns the truth: voided.
	tx := decodeTx(t, mustExecute(t, h, charge(id, "12")))
	if tx.Status != payment.StatusVoided {
		t.Errorf("late retry: got %s, want voided", tx.Status)
	}
}

func TestRecoveryLooksUpAnUnknownVoidBeforeSendingAgain(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	var voidID atomic.Value
	h.gw.setSend(func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		if req.Operation == payment.OpVoid {
			voidID.Store(req.ID)
		}
		return nil, fmt.Errorf("timeout: %w", payment.ErrOutcomeUnknown) // the charge and the void both lose their answer
	})
	h.gw.mu.Lock()
	h.gw.lookup = func(q string) (*payment.Result, error) {
		if q == id || q == voidID.Load() {
			return approve(payment.TerminalRequest{ID: q}), nil
		}
		return nil, payment.ErrNotFound
	}
	h.gw.mu.Unlock()
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "the approval to be found", func() bool { r := h.record(t, id); return r.Recovery != nil && r.Recovery.Found != nil })
	h.clock.Add(3 * time.Minute)
	h.waitFor(t, "the void to be sent", func() bool { return voidID.Load() != nil })
	h.clock.Add(10 * time.Second)
	h.waitFor(t, "the void to be found and the payment settled", func() bool { return h.status(id) == payment.StatusVoided })
	voids := 0
	for _, c := range h.gw.calls() {
		if c.Operation == payment.OpVoid {
			voids++
		}
	}
	if voids != 1 {
		t.Errorf("voids sent: got %d, want 1 (an unknown void is looked up, never re-sent blindly)", voids)
	}
}

func TestRecoveryClosesNotFoundOnlyAfterTheTerminalCannotStillRunIt(t *testing.T) {
	h := newHarness(t)
	h.gw.setSend(func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return nil, fmt.Errorf("connection closed: %w", payment.ErrOutcomeUnknown)
	})
	id := uuid.NewString()
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "a first search", func() bool { h.gw.mu.Lock(); defer h.gw.mu.Unlock(); return len(h.gw.lookups) > 0 })
	h.svc.Kick()
	time.Sleep(20 * time.Millisecond)
	if got := h.status(id); got != payment.StatusUnknown {
		t.Fatalf("not found while the terminal may still run it: got %s, want unknown", got)
	}
	h.clock.Add(131 * time.Second) // response timeout + grace
	h.waitFor(t, "not_charged", func() bool { return h.status(id) == payment.StatusNotCharged })
}

func TestRecoverySettlesAFoundDecline(t *testing.T) {
	h := newHarness(t)
	unknownOnce(h)
	id := uuid.NewString()
	h.gw.lookup = func(string) (*payment.Result, error) {
		return &payment.Result{Status: payment.StatusDeclined, Code: "05", Message: "processing error"}, nil
	}
	mustExecute(t, h, charge(id, "50"))
	h.waitFor(t, "declined", func() bool { return h.status(id) == payment.StatusDeclined })
}

func TestRecoveryReportPolicyNeedsAttention(t *testing.T) {
	h := newHarness(t, func(c *payment.Config) { c.Recovery.ReverseAbandoned = false })
	unknownOnce(h)
	id := uuid.NewString()
	terminalApproved(h, id)
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "found", func() bool { r := h.record(t, id); return r.Recovery != nil && r.Recovery.Found != nil })
	h.clock.Add(3 * time.Minute)
	h.waitFor(t, "needs_attention", func() bool { return h.status(id) == payment.StatusNeedsAttention })
	if why := h.svc.Health().NeedsAttention[id]; !strings.Contains(why, "nobody claimed") {
		t.Errorf("health reason: got %q", why)
	}
	for _, c := range h.gw.calls() {
		if c.Operation == payment.OpVoid {
			t.Fatal("policy report must not void")
		}
	}
}

func TestRecoveryGivesUpAfterItsBudget(t *testing.T) {
	h := newHarness(t)
	unknownOnce(h)
	h.gw.lookup = func(string) (*payment.Result, error) {
		return nil, fmt.Errorf("dial: no route to host: %w", payment.ErrNotSent)
	}
	id := uuid.NewString()
	mustExecute(t, h, charge(id, "12"))
	h.clock.Add(31 * time.Minute)
	h.waitFor(t, "needs_attention", func() bool { return h.status(id) == payment.StatusNeedsAttention })
	r := h.record(t, id)
	if r.Recovery == nil || !strings.Contains(r.Recovery.Reason, "budget") {
		t.Errorf("reason: got %+v", r.Recovery)
	}
}

func TestRecoveryResumesPendingRecordsAfterARestart(t *testing.T) {
	j := newMemJournal()
	id := uuid.NewString()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	req := charge(id, "12")
	req.Terminal = "lane1"
	pending := &payment.Record{
		Transaction: payment.Transaction{ID: id, Operation: payment.OpCharge, Terminal: "lane1", Status: payment.StatusPending,
			Currency: "PEN", Amount: *amt("12"), CreatedAt: now, UpdatedAt: now, Route: payment.RouteLAN,
			Events: []payment.Event{{At: now, Status: payment.StatusPending, Route: payment.RouteLAN}}},
		RequestHash: req.Hash(),
	}
	if err := j.Update(context.Background(), func(tx payment.Tx) error { return tx.Put(pending) }); err != nil {
		t.Fatal(err)
	}
	// A new process starts on that journal: the in-flight record is resumed.
	h := newHarness(t, func(c *payment.Config) { c.Journal = j })
	h.j = j
	terminalApproved(h, id)
	tx := decodeTx(t, mustExecute(t, h, req)) // the POS retries after the restart
	if tx.Status != payment.StatusApproved {
		t.Fatalf("after restart: got %s, want approved", tx.Status)
	}
	if n := len(h.gw.calls()); n != 0 {
		t.Errorf("payment calls after restart: got %d, want 0", n)
	}
}

func TestRecoveryAppliesAFoundFollowUp(t *testing.T) {
	h := newHarness(t)
	sale := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(sale, "40")))
	refund := uuid.NewString()
	h.gw.setSend(func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return nil, fmt.Errorf("reset: %w", payment.ErrOutcomeUnknown)
	})
	terminalApproved(h, refund)
	mustExecute(t, h, followUp(payment.OpRefund, refund, sale, amt("15")))
	h.waitFor(t, "the refund settled", func() bool { return h.status(refund) == payment.StatusApproved })
	if r := h.record(t, sale); r.Status != payment.StatusPartiallyRefunded || r.RefundedAmount.String() != "15" {
		t.Errorf("sale: got %s refunded %v, want partially_refunded 15", r.Status, r.RefundedAmount)
	}
}

type fakeReverser struct{ calls atomic.Int32 }

func (f *fakeReverser) Reverse(_ context.Context, _, id string, _ payment.Amount) (*payment.Result, error) {
	f.calls.Add(1)
	return &payment.Result{Status: payment.StatusApproved, Reference: "rev-" + id}, nil
}

func TestRecoveryReversesThroughTheRawAPIWhenTheTerminalCannotBeSearched(t *testing.T) {
	rev := &fakeReverser{}
	h := newHarness(t, func(c *payment.Config) { c.Reverser = rev })
	unknownOnce(h)
	h.gw.lookup = func(string) (*payment.Result, error) {
		return nil, fmt.Errorf("search: %w", payment.ErrNotSent)
	}
	id := uuid.NewString()
	mustExecute(t, h, charge(id, "12"))
	for i := 0; i < 6 && h.status(id) != payment.StatusReversed; i++ {
		h.clock.Add(15 * time.Second)
		h.svc.Kick()
		time.Sleep(20 * time.Millisecond)
	}
	h.waitFor(t, "reversed", func() bool { h.clock.Add(time.Second); return h.status(id) == payment.StatusReversed })
	if rev.calls.Load() != 1 {
		t.Errorf("reverse calls: got %d, want 1", rev.calls.Load())
	}
	r := h.record(t, id)
	if last := r.Events[len(r.Events)-1]; r.Reference != "" || !strings.Contains(last.Detail, "rev-"+id) {
		t.Errorf("reversed charge: got reference %q and last event %q; want no reference of its own (the terminal never gave one) and the reversal's in the event", r.Reference, last.Detail)
	}
}

func TestResolveClearsNeedsAttention(t *testing.T) {
	h := newHarness(t, func(c *payment.Config) { c.Recovery.ReverseAbandoned = false })
	unknownOnce(h)
	id := uuid.NewString()
	terminalApproved(h, id)
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "found", func() bool { r := h.record(t, id); return r.Recovery != nil && r.Recovery.Found != nil })
	h.clock.Add(3 * time.Minute)
	h.waitFor(t, "needs_attention", func() bool { return h.status(id) == payment.StatusNeedsAttention })

	ctx := context.Background()
	if _, err := h.svc.Resolve(ctx, id, payment.StatusDeclined, "x"); codeOf(err) != payment.CodeValidation {
		t.Errorf("resolve as declined: got %v, want validation_failed", err)
	}
	if _, err := h.svc.Resolve(ctx, id, payment.StatusApproved, ""); codeOf(err) != payment.CodeValidation {
		t.Errorf("resolve without a note: got %v, want validation_failed", err)
	}
	r, err := h.svc.Resolve(ctx, id, payment.StatusApproved, "customer confirmed the sale at the till")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != payment.StatusApproved || r.Reference != "ref-"+id {
		t.Errorf("resolved: got %s ref %q, want approved with the found reference", r.Status, r.Reference)
	}
	if n := len(h.svc.Health().NeedsAttention); n != 0 {
		t.Errorf("needs attention after resolve: got %d, want 0", n)
	}
	if _, err := h.svc.Resolve(ctx, id, payment.StatusNotCharged, "again"); codeOf(err) != payment.CodeInvalidState {
		t.Errorf("second resolve: got %v, want invalid_state", err)
	}
	// The POS's retry now gets the settled answer, and a refund is possible.
	tx := decodeTx(t, mustExecute(t, h, charge(id, "12")))
	if tx.Status != payment.StatusApproved {
		t.Errorf("retry after resolve: got %s", tx.Status)
	}
	h.gw.setSend(nil)
	decodeTx(t, mustExecute(t, h, followUp(payment.OpRefund, uuid.NewString(), id, nil)))
	if got := h.status(id); got != payment.StatusRefunded {
		t.Errorf("after refund: got %s, want refunded", got)
	}
}
