package payment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

func amt(s string) *payment.Amount {
	return &payment.Amount{SubtotalIVA0: money.MustParse(s)}
}

func charge(id, amount string) payment.Request {
	return payment.Request{Operation: payment.OpCharge, ID: id, Terminal: "lane1", Amount: amt(amount)}
}

func followUp(op payment.Operation, id, original string, a *payment.Amount) payment.Request {
	return payment.Request{Operation: op, ID: id, OriginalID: original, Amount: a}
}

func mustExecute(t *testing.T, h *harness, req payment.Request) *payment.Reply {
	t.Helper()
	rep, err := h.svc.Execute(context.Background(), req, false)
	if err != nil {
		t.Fatalf("Execute %s %s: %v", req.Operation, req.ID, err)
	}
	return rep
}

func decodeTx(t *testing.T, rep *payment.Reply) payment.Transaction {
	t.Helper()
	if rep.Code != "" {
		t.Fatalf("reply: got error %s %s, want a transaction", rep.Code, rep.Body)
	}
	var tx payment.Transaction
	if err := json.Unmarshal(rep.Body, &tx); err != nil {
		t.Fatalf("decode reply: %v", err)
	}
	return tx
}

func codeOf(err error) payment.Code { return payment.CodeOf(err) }

func TestChargeApprovedIsJournaledBeforeAndAfter(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	var pendingBeforeSend payment.Status
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		pendingBeforeSend = h.status(req.ID) // what the journal holds while the terminal works
		return approve(req), nil
	}
	rep := mustExecute(t, h, charge(id, "12.50"))
	tx := decodeTx(t, rep)
	if pendingBeforeSend != payment.StatusPending {
		t.Errorf("journal during the terminal call: got %q, want pending", pendingBeforeSend)
	}
	if tx.Status != payment.StatusApproved || tx.Reference != "ref-"+id || tx.Route != payment.RouteLAN {
		t.Errorf("reply: got status %s ref %s route %s, want approved ref-%s lan", tx.Status, tx.Reference, tx.Route, id)
	}
	r := h.record(t, id)
	if r.Status != payment.StatusApproved || len(r.Events) != 2 || r.Events[0].Status != payment.StatusPending {
		t.Errorf("record: got %s with events %+v, want approved after pending", r.Status, r.Events)
	}
	if !bytes.Equal(r.Reply, rep.Body) {
		t.Errorf("stored reply differs from the reply sent")
	}
	if r.Card == nil || r.Card.Masked != "424242******4242" || r.AuthorizationCode != "123456" {
		t.Errorf("card/auth: got %+v %q", r.Card, r.AuthorizationCode)
	}
}

func TestDeclineIsAnOutcomeNotAnError(t *testing.T) {
	h := newHarness(t)
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return &payment.Result{Status: payment.StatusDeclined, Code: "01", Message: "contact issuer"}, nil
	}
	tx := decodeTx(t, mustExecute(t, h, charge(uuid.NewString(), "10")))
	if tx.Status != payment.StatusDeclined {
		t.Errorf("status: got %s, want declined", tx.Status)
	}
}

func TestReplayIsByteIdenticalAndSendsNothing(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	first := mustExecute(t, h, charge(id, "12.50"))
	again := mustExecute(t, h, charge(id, "12.5")) // same amount, other spelling
	if !again.Replayed || !bytes.Equal(first.Body, again.Body) {
		t.Errorf("replay: got replayed=%v body %s, want the first body %s", again.Replayed, again.Body, first.Body)
	}
	if n := len(h.gw.calls()); n != 1 {
		t.Errorf("terminal calls: got %d, want 1", n)
	}
}

func TestSameIDDifferentBodyIsAConflict(t *testing.T) {
	h := newHarness(t)
	id := uuid.NewString()
	mustExecute(t, h, charge(id, "12.50"))
	_, err := h.svc.Execute(context.Background(), charge(id, "13.00"), false)
	if codeOf(err) != payment.CodeIdempotencyConflict {
		t.Fatalf("got %v, want idempotency_conflict", err)
	}
	if n := len(h.gw.calls()); n != 1 {
		t.Errorf("terminal calls: got %d, want 1", n)
	}
}

func TestParallelRetriesJoinOneTerminalCall(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		<-release
		return approve(req), nil
	}
	id := uuid.NewString()
	const n = 50
	bodies := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rep, err := h.svc.Execute(context.Background(), charge(id, "20"), false)
			errs[i] = err
			if rep != nil {
				bodies[i] = rep.Body
			}
		}(i)
	}
	h.waitFor(t, "the terminal call", func() bool { return len(h.gw.calls()) == 1 })
	close(release)
	wg.Wait()
	for i := range bodies {
		if errs[i] != nil || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("request %d: got %v %s, want the shared outcome", i, errs[i], bodies[i])
		}
	}
	if got := len(h.gw.calls()); got != 1 {
		t.Errorf("terminal calls: got %d, want exactly 1", got)
	}
}

func TestSecondOperationOnABusyTerminalIsRefusedAtOnce(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		<-release
		return approve(req), nil
	}
	first := uuid.NewString()
	done := make(chan struct{})
	go func() { defer close(done); mustExecute(t, h, charge(first, "20")) }()
	h.waitFor(t, "the first call to hold the terminal", func() bool { return h.svc.Busy("lane1") == first })
	_, err := h.svc.Execute(context.Background(), charge(uuid.NewString(), "30"), false)
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Code != payment.CodeTerminalBusy || pe.RunningID != first {
		t.Fatalf("got %v, want terminal_busy naming %s", err, first)
	}
	// Another terminal is free.
	h.gw.setSend(nil)
	close(release)
	<-done
	if n := len(h.gw.calls()); n != 1 {
		t.Errorf("terminal calls: got %d, want 1", n)
	}
}

func TestValidationFailuresSendNothingAndWriteNothing(t *testing.T) {
	h := newHarness(t)
	neg := money.MustParse("-1")
	tests := []struct {
		name string
		req  payment.Request
		want payment.Code
	}{
		{"bad id", payment.Request{Operation: payment.OpCharge, ID: "not-a-uuid", Amount: amt("1")}, payment.CodeValidation},
		{"no amount", payment.Request{Operation: payment.OpCharge, ID: uuid.NewString()}, payment.CodeValidation},
		{"zero", charge(uuid.NewString(), "0"), payment.CodeValidation},
		{"negative", payment.Request{Operation: payment.OpCharge, ID: uuid.NewString(), Amount: &payment.Amount{SubtotalIVA0: money.MustParse("5"), IVA: neg}}, payment.CodeValidation},
		{"three decimals PEN", charge(uuid.NewString(), "1.005"), payment.CodeValidation},
		{"decimals in CLP", payment.Request{Operation: payment.OpCharge, ID: uuid.NewString(), Terminal: "lane2", Amount: amt("100.5")}, payment.CodeValidation},
		{"tip on charge", payment.Request{Operation: payment.OpCharge, ID: uuid.NewString(), Amount: &payment.Amount{SubtotalIVA0: money.MustParse("5"), Tip: &neg}}, payment.CodeValidation},
		{"unknown terminal", payment.Request{Operation: payment.OpCharge, ID: uuid.NewString(), Terminal: "lane9", Amount: amt("1")}, payment.CodeNotFound},
		{"unknown original", followUp(payment.OpVoid, uuid.NewString(), uuid.NewString(), nil), payment.CodeNotFound},
		{"follow-up without original", payment.Request{Operation: payment.OpRefund, ID: uuid.NewString()}, payment.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.svc.Execute(context.Background(), tt.req, false)
			if got := codeOf(err); got != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
	if n := len(h.gw.calls()); n != 0 {
		t.Errorf("terminal calls: got %d, want 0", n)
	}
	if h.j.updates != 0 {
		t.Errorf("journal updates: got %d, want 0", h.j.updates)
	}
}

func TestIntentNotDurableMeansNothingSent(t *testing.T) {
	h := newHarness(t)
	h.j.setFail(func(*payment.Record) error { return errors.New("no space left on device") })
	id := uuid.NewString()
	_, err := h.svc.Execute(context.Background(), charge(id, "12"), false)
	if codeOf(err) != payment.CodeJournalUnavailable {
		t.Fatalf("got %v, want journal_unavailable", err)
	}
	if n := len(h.gw.calls()); n != 0 {
		t.Errorf("terminal calls: got %d, want 0 (fail closed)", n)
	}
	if h.status(id) != "" {
		t.Errorf("record: got status %q, want none", h.status(id))
	}
}

func TestOutcomeNotDurableStopsTheDaemon(t *testing.T) {
	h := newHarness(t)
	h.j.setFail(func(r *payment.Record) error {
		if r.Status == payment.StatusApproved {
			return errors.New("input/output error")
		}
		return nil
	})
	id := uuid.NewString()
	rep := mustExecute(t, h, charge(id, "12"))
	if rep.Code != payment.CodeOutcomeUnknown {
		t.Errorf("reply: got %s, want outcome_unknown", rep.Code)
	}
	select {
	case err := <-h.fatal:
		if !strings.Contains(err.Error(), id) {
			t.Errorf("fatal: got %v, want it to name %s", err, id)
		}
	default:
		t.Fatal("Fatal was not called")
	}
	if h.status(id) != payment.StatusPending {
		t.Errorf("record: got %s, want pending (recovery settles it after the restart)", h.status(id))
	}
}

func TestUnknownOutcomeIsRecordedTruthfully(t *testing.T) {
	h := newHarness(t)
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return nil, fmt.Errorf("read: connection reset: %w", payment.ErrOutcomeUnknown)
	}
	id := uuid.NewString()
	rep := mustExecute(t, h, charge(id, "12"))
	if rep.Code != payment.CodeOutcomeUnknown {
		t.Fatalf("reply: got %s %s, want outcome_unknown", rep.Code, rep.Body)
	}
	r := h.record(t, id)
	if r.Status != payment.StatusUnknown && r.Status != payment.StatusNeedsAttention && !r.Status.Final() {
		t.Errorf("record: got %s, want unknown (or settled by recovery)", r.Status)
	}
	if len(h.gw.calls()) != 1 {
		t.Errorf("terminal payment calls: got %d, want 1 (never re-sent)", len(h.gw.calls()))
	}
}

func TestNotSentIsRetryableWithTheSameID(t *testing.T) {
	h := newHarness(t)
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return nil, fmt.Errorf("dial: connection refused: %w", payment.ErrNotSent)
	}
	id := uuid.NewString()
	rep := mustExecute(t, h, charge(id, "12"))
	if rep.Code != payment.CodeTerminalUnreachable {
		t.Fatalf("reply: got %s, want terminal_unreachable", rep.Code)
	}
	if r := h.record(t, id); r.Status != payment.StatusFailed || !r.Retryable {
		t.Fatalf("record: got %s retryable=%v, want failed and retryable", r.Status, r.Retryable)
	}
	h.gw.setSend(nil)
	tx := decodeTx(t, mustExecute(t, h, charge(id, "12")))
	if tx.Status != payment.StatusApproved {
		t.Errorf("retry: got %s, want approved", tx.Status)
	}
	if r := h.record(t, id); len(r.Events) != 4 {
		t.Errorf("events: got %d (%+v), want pending, failed, pending, approved", len(r.Events), r.Events)
	}
}

func TestTerminalErrorIsFinalAndReplayed(t *testing.T) {
	h := newHarness(t)
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		return nil, &payment.TerminalError{HTTPStatus: 400, Type: "PARAMETER", Code: "PAR-003", Message: "Amount must be a value greater than 0"}
	}
	id := uuid.NewString()
	first := mustExecute(t, h, charge(id, "12"))
	if first.Code != payment.CodeTerminalError || !strings.Contains(string(first.Body), "PAR-003") {
		t.Fatalf("reply: got %s %s, want terminal_error naming PAR-003", first.Code, first.Body)
	}
	again := mustExecute(t, h, charge(id, "12"))
	if !again.Replayed || !bytes.Equal(again.Body, first.Body) || len(h.gw.calls()) != 1 {
		t.Errorf("retry: got replayed=%v, %d terminal calls; want the stored error and 1 call", again.Replayed, len(h.gw.calls()))
	}
}

func TestPOSHangUpDoesNotStopTheOperation(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		<-release
		return approve(req), nil
	}
	id := uuid.NewString()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := h.svc.Execute(ctx, charge(id, "12"), false); errc <- err }()
	h.waitFor(t, "the terminal call", func() bool { return len(h.gw.calls()) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("hung-up caller: got %v, want context.Canceled", err)
	}
	close(release)
	h.waitFor(t, "the outcome", func() bool { return h.status(id) == payment.StatusApproved })
}

func TestAsyncReturnsOnceTheIntentIsDurable(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	h.gw.send = func(_ context.Context, req payment.TerminalRequest) (*payment.Result, error) {
		<-release
		return approve(req), nil
	}
	id := uuid.NewString()
	rep, err := h.svc.Execute(context.Background(), charge(id, "12"), true)
	if err != nil || !rep.Accepted {
		t.Fatalf("async: got %+v %v, want accepted", rep, err)
	}
	if h.status(id) != payment.StatusPending {
		t.Errorf("record when accepted: got %q, want pending", h.status(id))
	}
	close(release)
	r, err := h.svc.Get(context.Background(), id, 20*time.Second, true)
	if err != nil || r.Status != payment.StatusApproved {
		t.Fatalf("Get ?wait: got %v %v, want approved", r, err)
	}
}

func TestFollowUpRules(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	auth := uuid.NewString()
	decodeTx(t, mustExecute(t, h, payment.Request{Operation: payment.OpAuthorization, ID: auth, Terminal: "lane1", Amount: amt("100")}))

	// Capture above 110 % is refused before anything is sent.
	_, err := h.svc.Execute(ctx, followUp(payment.OpCapture, uuid.NewString(), auth, amt("110.01")), false)
	if codeOf(err) != payment.CodeValidation {
		t.Fatalf("capture 110.01 of 100: got %v, want validation_failed", err)
	}
	// A re-authorization raises the limit.
	decodeTx(t, mustExecute(t, h, followUp(payment.OpReauthorization, uuid.NewString(), auth, amt("10"))))
	if r := h.record(t, auth); r.AuthorizedAmount == nil || r.AuthorizedAmount.String() != "110" {
		t.Fatalf("authorized after re-authorization: got %v, want 110", r.AuthorizedAmount)
	}
	capID := uuid.NewString()
	decodeTx(t, mustExecute(t, h, followUp(payment.OpCapture, capID, auth, amt("121"))))
	if r := h.record(t, auth); r.Status != payment.StatusCaptured {
		t.Fatalf("authorization after capture: got %s, want captured", r.Status)
	}
	_, err = h.svc.Execute(ctx, followUp(payment.OpCapture, uuid.NewString(), auth, amt("1")), false)
	if codeOf(err) != payment.CodeInvalidState {
		t.Fatalf("second capture: got %v, want invalid_state", err)
	}

	// Refunds of the capture: partial, then no more than what remains.
	decodeTx(t, mustExecute(t, h, followUp(payment.OpRefund, uuid.NewString(), capID, amt("100"))))
	if r := h.record(t, capID); r.Status != payment.StatusPartiallyRefunded {
		t.Fatalf("capture after partial refund: got %s", r.Status)
	}
	_, err = h.svc.Execute(ctx, followUp(payment.OpRefund, uuid.NewString(), capID, amt("21.01")), false)
	if codeOf(err) != payment.CodeValidation {
		t.Fatalf("refund over the remainder: got %v, want validation_failed", err)
	}
	decodeTx(t, mustExecute(t, h, followUp(payment.OpRefund, uuid.NewString(), capID, amt("21"))))
	if r := h.record(t, capID); r.Status != payment.StatusRefunded {
		t.Fatalf("capture after full refund: got %s, want refunded", r.Status)
	}

	// Voids wait one minute after approval and close at the cutoff.
	sale := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(sale, "50.00")))
	_, err = h.svc.Execute(ctx, followUp(payment.OpVoid, uuid.NewString(), sale, nil), false)
	if codeOf(err) != payment.CodeInvalidState {
		t.Fatalf("void after 0s: got %v, want invalid_state", err)
	}
	h.clock.Add(61 * time.Second)
	decodeTx(t, mustExecute(t, h, followUp(payment.OpVoid, uuid.NewString(), sale, nil)))
	if r := h.record(t, sale); r.Status != payment.StatusVoided {
		t.Fatalf("sale after void: got %s, want voided", r.Status)
	}
	late := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(late, "5")))
	h.clock.Add(12 * time.Hour) // past 23:30
	_, err = h.svc.Execute(ctx, followUp(payment.OpVoid, uuid.NewString(), late, nil), false)
	if err == nil || !strings.Contains(err.Error(), "refund it instead") {
		t.Fatalf("void after the cutoff: got %v, want a refund hint", err)
	}

	// A tip needs an approved sale and a positive tip.
	tip := money.MustParse("3")
	decodeTx(t, mustExecute(t, h, followUp(payment.OpTip, uuid.NewString(), late, &payment.Amount{Tip: &tip})))
	if r := h.record(t, late); r.TipAmount == nil || r.TipAmount.String() != "3" {
		t.Fatalf("tip: got %v, want 3", r.TipAmount)
	}
	// The terminal got the original's reference on every follow-up.
	for _, c := range h.gw.calls() {
		if c.Operation.FollowUp() && !strings.HasPrefix(c.Reference, "ref-") {
			t.Errorf("%s sent without the original's reference: %+v", c.Operation, c)
		}
	}
}

func TestCancelVoidsInsideTheWindowAndRefundsAfterIt(t *testing.T) {
	h := newHarness(t)
	early := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(early, "30")))
	h.clock.Add(2 * time.Minute)
	c1 := uuid.NewString()
	rep, err := h.svc.Cancel(context.Background(), payment.Request{ID: c1, OriginalID: early}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tx := decodeTx(t, rep); tx.Operation != payment.OpVoid {
		t.Fatalf("cancel inside the window: got %s, want void", tx.Operation)
	}
	late := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(late, "30")))
	h.clock.Add(12 * time.Hour) // past the cutoff
	c2 := uuid.NewString()
	rep, err = h.svc.Cancel(context.Background(), payment.Request{ID: c2, OriginalID: late}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tx := decodeTx(t, rep); tx.Operation != payment.OpRefund || tx.Amount.Total().String() != "30" {
		t.Fatalf("cancel after the cutoff: got %s of %s, want a full refund", tx.Operation, tx.Amount.Total())
	}
	// A retry repeats the first choice, byte for byte.
	again, err := h.svc.Cancel(context.Background(), payment.Request{ID: c2, OriginalID: late}, false)
	if err != nil || !again.Replayed || !bytes.Equal(again.Body, rep.Body) {
		t.Fatalf("cancel retry: got %v %v, want the stored reply", again, err)
	}
}

func TestRefundWithoutAmountRefundsWhatRemains(t *testing.T) {
	h := newHarness(t)
	sale := uuid.NewString()
	decodeTx(t, mustExecute(t, h, charge(sale, "30")))
	tip := money.MustParse("4.5")
	decodeTx(t, mustExecute(t, h, followUp(payment.OpTip, uuid.NewString(), sale, &payment.Amount{Tip: &tip})))
	decodeTx(t, mustExecute(t, h, followUp(payment.OpRefund, uuid.NewString(), sale, amt("10"))))

	// cancel after the cutoff: a refund of what remains (30 + 4.5 - 10), asked of the terminal without an amount.
	h.clock.Add(12 * time.Hour)
	rep, err := h.svc.Cancel(context.Background(), payment.Request{ID: uuid.NewString(), OriginalID: sale}, false)
	if err != nil {
		t.Fatal(err)
	}
	tx := decodeTx(t, rep)
	if tx.Operation != payment.OpRefund || tx.Amount.Total().String() != "24.5" {
		t.Fatalf("cancel: got %s of %s, want a refund of 24.5", tx.Operation, tx.Amount.Total())
	}
	calls := h.gw.calls()
	if last := calls[len(calls)-1]; last.Operation != payment.OpRefund || last.Amount != nil {
		t.Errorf("terminal refund: got %+v, want no amount (refund what remains)", last)
	}
	if r := h.record(t, sale); r.Status != payment.StatusRefunded || r.RefundedAmount.String() != "34.5" {
		t.Errorf("sale: got %s refunded %v, want refunded 34.5", r.Status, r.RefundedAmount)
	}
}
