package payment_test

// Regression tests for recovery bugs the crash sweep of cmd/posbridge found
// (crash_test.go, faults_test.go):
//   - a void (or refund) of an abandoned approval went out without a clear
//     answer and the POS then claimed the payment: recovery settled it
//     approved without looking the void up, though the terminal had voided
//     it (the POS and the journal said approved, the customer had the money
//     back);
//   - past the processor cutoff an abandoned authorization was "refunded",
//     which a terminal refuses (an authorization took no money), again and
//     again until the budget ran out;
//   - a retryable failure (terminal busy) sent again with the same id long
//     after its creation, and the daemon killed while the terminal worked
//     on it: recovery measured "the terminal can no longer be running it"
//     from the creation, searched too early, found nothing and closed it
//     not_charged, and the terminal then approved it (a lost approval);
//   - the void wait of an abandoned approval ran from the start of the
//     recovery step that found it, which may precede the approval itself
//     (the terminal finished during the abort and search): the terminal
//     refused the void as too early, and recovery refunded instead.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/payment"
)

// voidAnswerLost makes the charge's and the void's answers get lost, and
// lookups find the original approved and the void as voidHappened says.
func voidAnswerLost(h *harness, original string, voidHappened bool) (voidID func() string) {
	var mu sync.Mutex
	var vid string
	h.gw.setSend(func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		if req.Operation == payment.OpVoid {
			mu.Lock()
			vid = req.ID
			mu.Unlock()
		}
		return nil, fmt.Errorf("read: EOF: %w", payment.ErrOutcomeUnknown)
	})
	h.gw.mu.Lock()
	h.gw.lookup = func(id string) (*payment.Result, error) {
		mu.Lock()
		v := vid
		mu.Unlock()
		switch {
		case id == original, id == v && voidHappened:
			return approve(payment.TerminalRequest{ID: id}), nil
		}
		return nil, payment.ErrNotFound
	}
	h.gw.mu.Unlock()
	return func() string { mu.Lock(); defer mu.Unlock(); return vid }
}

func countOps(h *harness, op payment.Operation) int {
	n := 0
	for _, c := range h.gw.calls() {
		if c.Operation == op {
			n++
		}
	}
	return n
}

func TestRecoveryLooksUpASentVoidBeforeKeepingAClaim(t *testing.T) {
	for _, tc := range []struct {
		name         string
		voidHappened bool
		want         payment.Status
	}{
		{"the void happened: voided", true, payment.StatusVoided},
		{"the void never ran: the claim keeps the sale", false, payment.StatusApproved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := uuid.NewString()
			voidID := voidAnswerLost(h, id, tc.voidHappened)
			mustExecute(t, h, charge(id, "12"))
			h.waitFor(t, "the approval to be found", func() bool {
				r := h.record(t, id)
				return r.Recovery != nil && r.Recovery.Found != nil
			})
			h.clock.Add(3 * time.Minute) // past the claim window and the void wait
			h.waitFor(t, "the void to be sent", func() bool { return voidID() != "" })
			h.waitFor(t, "the void's unknown outcome to be recorded", func() bool {
				r := h.record(t, id)
				last := r.Events[len(r.Events)-1].Detail
				return strings.HasPrefix(last, "void "+voidID()+" outcome unknown")
			})
			// The POS claims the payment now.
			if _, err := h.svc.Get(context.Background(), id, 0, true); err != nil {
				t.Fatal(err)
			}
			h.clock.Add(3 * time.Minute) // past the response timeout and not-found grace of the void
			h.waitFor(t, "the payment to settle", func() bool { return h.status(id).Final() })
			if got := h.status(id); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if n := countOps(h, payment.OpVoid); n != 1 {
				t.Errorf("voids sent: got %d, want 1", n)
			}
		})
	}
}

func TestRecoveryVoidsAnAbandonedAuthorizationPastTheCutoff(t *testing.T) {
	// The cutoff is a minute after the approval (the harness's clock starts
	// at 12:00).
	h := newHarness(t, func(c *payment.Config) { c.Policy.Cutoff = 12*time.Hour + time.Minute })
	unknownOnce(h)
	id := uuid.NewString()
	terminalApproved(h, id)
	req := payment.Request{Operation: payment.OpAuthorization, ID: id, Terminal: "lane1", Amount: amt("12")}
	mustExecute(t, h, req)
	h.waitFor(t, "the approval to be found", func() bool {
		r := h.record(t, id)
		return r.Recovery != nil && r.Recovery.Found != nil
	})
	h.clock.Add(3 * time.Minute) // past the claim window, the void wait and the cutoff
	h.waitFor(t, "the authorization to be voided", func() bool { return h.status(id) == payment.StatusVoided })
	if n, m := countOps(h, payment.OpVoid), countOps(h, payment.OpRefund); n != 1 || m != 0 {
		t.Errorf("voids %d and refunds %d sent, want 1 and 0", n, m)
	}
}

func TestRecoveryWaitsFromTheLastSendNotTheCreation(t *testing.T) {
	j := newMemJournal()
	id := uuid.NewString()
	sent := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) // the harness clock's start
	created := sent.Add(-10 * time.Minute)
	req := charge(id, "12")
	// Refused as busy ten minutes ago, sent again just now, and the daemon
	// died while the terminal worked on it.
	pending := &payment.Record{
		Transaction: payment.Transaction{ID: id, Operation: payment.OpCharge, Terminal: "lane1", Status: payment.StatusPending,
			Currency: "PEN", Amount: *amt("12"), CreatedAt: created, UpdatedAt: sent, Route: payment.RouteLAN,
			Events: []payment.Event{
				{At: created, Status: payment.StatusPending, Route: payment.RouteLAN, Detail: "sending to terminal"},
				{At: created, Status: payment.StatusFailed, Route: payment.RouteLAN, Code: "TER-003", Detail: "terminal busy"},
				{At: sent, Status: payment.StatusPending, Route: payment.RouteLAN, Detail: "sending to terminal"},
			}},
		RequestHash: req.Hash(),
	}
	if err := j.Update(context.Background(), func(tx payment.Tx) error { return tx.Put(pending) }); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *payment.Config) { c.Journal = j })
	h.j = j
	h.waitFor(t, "a first search", func() bool { h.gw.mu.Lock(); defer h.gw.mu.Unlock(); return len(h.gw.lookups) > 0 })
	h.svc.Kick()
	time.Sleep(20 * time.Millisecond)
	if got := h.status(id); got != payment.StatusUnknown {
		t.Fatalf("not found within the response timeout of the last send: got %s, want unknown", got)
	}
	h.gw.mu.Lock()
	aborts := h.gw.aborts
	h.gw.mu.Unlock()
	if aborts == 0 {
		t.Error("recovery did not abort the terminal, which may still run the operation")
	}
	terminalApproved(h, id) // the terminal finishes it
	h.clock.Add(131 * time.Second)
	h.waitFor(t, "the approval to be found", func() bool {
		r := h.record(t, id)
		return r.Recovery != nil && r.Recovery.Found != nil
	})
}

func TestRecoveryVoidWaitRunsFromWhenTheApprovalWasFound(t *testing.T) {
	h := newHarness(t)
	unknownOnce(h)
	id := uuid.NewString()
	var mu sync.Mutex
	var answered time.Time
	h.gw.mu.Lock()
	h.gw.lookup = func(q string) (*payment.Result, error) {
		if q != id {
			return nil, payment.ErrNotFound
		}
		h.clock.Add(5 * time.Second) // the terminal approves while the search runs
		mu.Lock()
		answered = h.clock.Now()
		mu.Unlock()
		return approve(payment.TerminalRequest{ID: q}), nil
	}
	h.gw.mu.Unlock()
	mustExecute(t, h, charge(id, "12"))
	h.waitFor(t, "the approval to be found", func() bool {
		r := h.record(t, id)
		return r.Recovery != nil && r.Recovery.Found != nil
	})
	mu.Lock()
	want := answered
	mu.Unlock()
	if got := h.record(t, id).Recovery.FoundAt; got.Before(want) {
		t.Errorf("found at %s, before the search answered at %s: the void would go out too early", got, want)
	}
}
