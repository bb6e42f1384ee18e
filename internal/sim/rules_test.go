package sim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

func TestAmountTable(t *testing.T) {
	cases := []struct {
		total    string
		approved bool
		code     string
		delayed  bool
	}{
		{"10", false, "01", false},
		{"40", false, "04", false},
		{"50", false, "05", false},
		{"74", true, "000", true},
		{"10.5", true, "000", false},
		{"100", true, "000", false},
	}
	for _, c := range cases {
		t.Run(c.total, func(t *testing.T) {
			f := startSim(t, func(cfg *sim.Config) { cfg.DelayedApproval = 7 * time.Second })
			id := newID()
			done := make(chan terminal.PaymentResponse, 1)
			go func() {
				done <- f.payment(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id, "amount": amount(c.total)})
			}()
			if c.delayed {
				tm := f.timers.next(t)
				if tm.d != 7*time.Second {
					t.Errorf("delay = %s, want DelayedApproval 7s", tm.d)
				}
				tm.fire()
			}
			r := <-done
			if got := r.Approved != nil && *r.Approved; got != c.approved {
				t.Fatalf("approved = %v, want %v", got, c.approved)
			}
			if r.KushkiResponse == nil || r.KushkiResponse.Code != c.code {
				t.Errorf("kushki_response = %+v, want code %s", r.KushkiResponse, c.code)
			}
			e := f.entry(t, id)
			if c.approved {
				if e.TimesTaken != 1 || e.Taken != money.MustParse(c.total) {
					t.Errorf("ledger taken %s ×%d, want %s ×1", e.Taken, e.TimesTaken, c.total)
				}
				return
			}
			if r.TransactionStatus != terminal.StatusDeclined || r.RawResponse == nil || r.RawResponse.TransactionStatus != terminal.StatusDeclined {
				t.Errorf("transaction_status = %q, want DECLINED at both levels", r.TransactionStatus)
			}
			if r.MessageFields == nil || r.MessageFields.F39 != c.code || r.TicketNumber != "" {
				t.Errorf("decline: message_fields %+v ticket %q, want F39 %s and no ticket", r.MessageFields, r.TicketNumber, c.code)
			}
			if e.TimesTaken != 0 || !e.Taken.IsZero() || e.Status != terminal.StatusDeclined {
				t.Errorf("ledger for a decline: %+v, want nothing taken", e)
			}
		})
	}
}

func TestDelayedVoidOf174(t *testing.T) {
	f := startSim(t, func(cfg *sim.Config) { cfg.DelayedApproval = 5 * time.Second })
	ch := f.charge(t, newID(), "174")
	f.clock.Advance(time.Minute)
	done := make(chan terminal.PaymentResponse, 1)
	go func() { done <- f.approved(t, terminal.EndpointVoid, followUp(newID(), ch.TransactionReference, nil)) }()
	if tm := f.timers.next(t); tm.d != 5*time.Second {
		t.Errorf("void delay = %s, want 5s", tm.d)
	} else {
		tm.fire()
	}
	<-done
	if e := f.entry(t, ch.ClientTransactionID); !e.Voided || !e.Outstanding.IsZero() {
		t.Errorf("after the void: %+v, want voided, nothing outstanding", e)
	}
}

// rule runs a payment request that must be refused with a LinkFailure.
func (f *fixture) rule(t *testing.T, ep terminal.Endpoint, body map[string]any, status int, typ, code string) {
	t.Helper()
	st, b := f.post(t, ep, body)
	failure(t, st, b, status, typ, code)
}

func (f *fixture) acquirerRefusal(t *testing.T, ep terminal.Endpoint, body map[string]any, code string) {
	t.Helper()
	f.rule(t, ep, body, http.StatusBadRequest, terminal.TypeAcquirer, code)
}

func TestCaptureRules(t *testing.T) {
	f := startSim(t, nil)
	auth := f.authorize(t, newID(), "100")
	re := f.approved(t, terminal.EndpointReAuthorization, followUp(newID(), auth.TransactionReference, amount("20")))
	// 110 % of 120 is 132.
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("132.01")), sim.CodeOpNotAllowed)
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), re.TransactionReference, amount("50")), sim.CodeOpNotAllowed)
	capID := newID()
	f.approved(t, terminal.EndpointCapture, followUp(capID, auth.TransactionReference, amount("132")))
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("1")), sim.CodeOpNotAllowed)
	f.acquirerRefusal(t, terminal.EndpointReAuthorization, followUp(newID(), auth.TransactionReference, amount("1")), sim.CodeOpNotAllowed)

	ch := f.charge(t, newID(), "30")
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), ch.TransactionReference, amount("30")), sim.CodeOpNotAllowed)
	f.rule(t, terminal.EndpointCapture, followUp(newID(), "no-such-reference", amount("30")),
		http.StatusNotFound, terminal.TypeNotFound, sim.CodeNoReference)

	l := f.sim.Ledger()
	if e, _ := l.Entry(capID); e.Taken != money.MustParse("132") || e.TimesTaken != 1 {
		t.Errorf("capture entry: %+v, want 132 taken once", e)
	}
	if e, _ := l.Entry(auth.ClientTransactionID); !e.Held.IsZero() || !e.Taken.IsZero() {
		t.Errorf("captured authorization: %+v, want nothing held or taken", e)
	}
	if l.Totals.Taken != money.MustParse("162") || !l.Totals.Held.IsZero() {
		t.Errorf("totals: taken %s held %s, want 162 and 0", l.Totals.Taken, l.Totals.Held)
	}
}

func TestReauthorizationZeroExtendsValidity(t *testing.T) {
	f := startSim(t, nil)
	auth := f.authorize(t, newID(), "80")
	if e := f.entry(t, auth.ClientTransactionID); e.Held != money.MustParse("80") {
		t.Fatalf("held = %s, want 80", e.Held)
	}
	f.clock.Advance(27 * 24 * time.Hour)
	f.approved(t, terminal.EndpointReAuthorization, followUp(newID(), auth.TransactionReference,
		map[string]any{"iva": 0, "subtotal_iva": 0, "subtotal_iva0": 0}))
	f.clock.Advance(27 * 24 * time.Hour) // 54 days after the authorization, 27 after the extension
	if e := f.entry(t, auth.ClientTransactionID); e.Held != money.MustParse("80") {
		t.Fatalf("held after the extension = %s, want 80 (amount unchanged)", e.Held)
	}
	f.approved(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("88")))

	expired := f.authorize(t, newID(), "60")
	f.clock.Advance(28 * 24 * time.Hour)
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), expired.TransactionReference, amount("60")), sim.CodeOpNotAllowed)
	if e := f.entry(t, expired.ClientTransactionID); !e.Held.IsZero() {
		t.Errorf("an expired authorization holds %s, want 0", e.Held)
	}
}

func TestDebitCardValidityIsSevenDays(t *testing.T) {
	f := startSim(t, func(c *sim.Config) {
		c.Card = sim.Card{Franchise: "MASTERCARD", Type: "debit", Masked: "555555******4444", PAN: "5555555555554444"}
	})
	auth := f.authorize(t, newID(), "60")
	if auth.Franchise != "MASTERCARD" || auth.CardType != "debit" {
		t.Errorf("card = %s %s, want MASTERCARD debit", auth.Franchise, auth.CardType)
	}
	f.clock.Advance(7 * 24 * time.Hour)
	f.acquirerRefusal(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("60")), sim.CodeOpNotAllowed)
}

func TestTipRules(t *testing.T) {
	f := startSim(t, nil)
	tip := func(v string) map[string]any {
		return map[string]any{"iva": 0, "subtotal_iva": 0, "subtotal_iva0": 0, "tip": json.Number(v)}
	}
	ch := f.charge(t, newID(), "50.5")
	tipID := newID()
	f.approved(t, terminal.EndpointPosTip, followUp(tipID, ch.TransactionReference, tip("4.5")))
	if e := f.entry(t, tipID); e.Taken != money.MustParse("4.5") || e.Operation != "pos_tip" {
		t.Errorf("tip entry %+v, want 4.5 taken by pos_tip", e)
	}

	auth := f.authorize(t, newID(), "100")
	f.approved(t, terminal.EndpointPosTip, followUp(newID(), auth.TransactionReference, tip("20")))
	if e := f.entry(t, auth.ClientTransactionID); e.Held != money.MustParse("120") {
		t.Errorf("held after a tip on the authorization = %s, want 120", e.Held)
	}
	// The tip raises the capture limit: 110 % of 120 is 132.
	f.approved(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("132")))
	f.acquirerRefusal(t, terminal.EndpointPosTip, followUp(newID(), auth.TransactionReference, tip("1")), sim.CodeOpNotAllowed)

	declined := f.payment(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": newID(), "amount": amount("10")})
	f.acquirerRefusal(t, terminal.EndpointPosTip, followUp(newID(), declined.TransactionReference, tip("1")), sim.CodeOpNotAllowed)

	f.clock.Advance(time.Minute)
	f.approved(t, terminal.EndpointVoid, followUp(newID(), ch.TransactionReference, nil))
	f.acquirerRefusal(t, terminal.EndpointPosTip, followUp(newID(), ch.TransactionReference, tip("1")), sim.CodeAlreadyVoided)
	if e := f.entry(t, tipID); !e.Voided || !e.Outstanding.IsZero() {
		t.Errorf("tip after voiding its charge: %+v, want voided with nothing outstanding", e)
	}
}

func TestVoidRules(t *testing.T) {
	f := startSim(t, nil)
	ch := f.charge(t, newID(), "20")
	f.clock.Advance(59 * time.Second)
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), ch.TransactionReference, nil), sim.CodeOpNotAllowed)
	f.clock.Advance(time.Second)
	voidID := newID()
	f.approved(t, terminal.EndpointVoid, followUp(voidID, ch.TransactionReference, nil))
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), ch.TransactionReference, nil), sim.CodeAlreadyVoided)
	f.acquirerRefusal(t, terminal.EndpointRefund, followUp(newID(), ch.TransactionReference, nil), sim.CodeAlreadyVoided)
	if e := f.entry(t, ch.ClientTransactionID); !e.Voided || e.Returned != money.MustParse("20") || !e.Outstanding.IsZero() {
		t.Errorf("voided charge entry %+v, want 20 returned", e)
	}
	if e := f.entry(t, voidID); e.Operation != "void" || e.Amount != money.MustParse("20") || e.OriginalReference != ch.TransactionReference || !e.Taken.IsZero() {
		t.Errorf("void entry %+v, want operation void, amount 20, original reference, nothing taken", e)
	}

	// Voiding an authorization releases the hold.
	auth := f.authorize(t, newID(), "70")
	f.clock.Advance(time.Minute)
	f.approved(t, terminal.EndpointVoid, followUp(newID(), auth.TransactionReference, nil))
	if e := f.entry(t, auth.ClientTransactionID); !e.Held.IsZero() || !e.Voided {
		t.Errorf("voided authorization %+v, want nothing held", e)
	}

	// A captured authorization: void the capture, not the authorization.
	auth2 := f.authorize(t, newID(), "70")
	capture := f.approved(t, terminal.EndpointCapture, followUp(newID(), auth2.TransactionReference, amount("70")))
	f.clock.Advance(time.Minute)
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), auth2.TransactionReference, nil), sim.CodeOpNotAllowed)
	f.approved(t, terminal.EndpointVoid, followUp(newID(), capture.TransactionReference, nil))
	if e := f.entry(t, capture.ClientTransactionID); e.Outstanding.Sign() != 0 || !e.Voided {
		t.Errorf("voided capture %+v, want nothing outstanding", e)
	}

	// Partly refunded: refund the rest instead.
	ch2 := f.charge(t, newID(), "30")
	f.approved(t, terminal.EndpointRefund, followUp(newID(), ch2.TransactionReference, amount("11")))
	f.clock.Advance(time.Minute)
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), ch2.TransactionReference, nil), sim.CodeOpNotAllowed)

	// Not the same day in the terminal's location: refund instead.
	late := f.charge(t, newID(), "40.4")
	f.clock.Advance(14 * time.Hour) // 10:0x → 00:0x the next day in Lima
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), late.TransactionReference, nil), sim.CodeOpNotAllowed)
}

func TestRefundRules(t *testing.T) {
	f := startSim(t, nil)
	ch := f.charge(t, newID(), "100")
	f.approved(t, terminal.EndpointPosTip, followUp(newID(), ch.TransactionReference,
		map[string]any{"iva": 0, "subtotal_iva": 0, "subtotal_iva0": 0, "tip": 12}))
	r1 := newID()
	f.approved(t, terminal.EndpointRefund, followUp(r1, ch.TransactionReference, amount("60")))
	f.acquirerRefusal(t, terminal.EndpointRefund, followUp(newID(), ch.TransactionReference, amount("52.01")), sim.CodeOpNotAllowed)
	r2 := newID()
	f.approved(t, terminal.EndpointRefund, followUp(r2, ch.TransactionReference, nil)) // the remaining 52, tip included
	f.acquirerRefusal(t, terminal.EndpointRefund, followUp(newID(), ch.TransactionReference, amount("1")), sim.CodeOpNotAllowed)
	l := f.sim.Ledger()
	if e, _ := l.Entry(r2); e.Amount != money.MustParse("52") {
		t.Errorf("refund without amount refunded %s, want the remaining 52", e.Amount)
	}
	if !l.Totals.Outstanding.IsZero() || l.Totals.Taken != money.MustParse("112") || l.Totals.Returned != money.MustParse("112") {
		t.Errorf("totals %+v, want 112 taken and returned", l.Totals)
	}

	auth := f.authorize(t, newID(), "40.4")
	f.acquirerRefusal(t, terminal.EndpointRefund, followUp(newID(), auth.TransactionReference, nil), sim.CodeOpNotAllowed)

	old := f.charge(t, newID(), "15")
	f.clock.Advance(121 * 24 * time.Hour)
	f.acquirerRefusal(t, terminal.EndpointRefund, followUp(newID(), old.TransactionReference, nil), sim.CodeRefundWindow)
}

// TestLedgerArithmetic runs a day of operations and checks every total.
func TestLedgerArithmetic(t *testing.T) {
	f := startSim(t, nil)
	a := f.charge(t, newID(), "100")                                                                                // taken 100
	b := f.charge(t, newID(), "25.25")                                                                              // taken 25.25
	f.payment(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": newID(), "amount": amount("40")}) // declined
	auth := f.authorize(t, newID(), "300")                                                                          // held 300
	auth2 := f.authorize(t, newID(), "12")                                                                          // held 12
	f.approved(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("250")))            // taken 250, hold gone
	f.approved(t, terminal.EndpointRefund, followUp(newID(), a.TransactionReference, amount("30")))                 // returned 30
	f.clock.Advance(time.Minute)
	f.approved(t, terminal.EndpointVoid, followUp(newID(), b.TransactionReference, nil)) // returned 25.25
	l := f.sim.Ledger()
	want := sim.LedgerTotals{
		Taken:       money.MustParse("375.25"),
		Returned:    money.MustParse("55.25"),
		Outstanding: money.MustParse("320"),
		Held:        money.MustParse("12"),
		Approved:    7,
		Declined:    1,
	}
	if l.Totals != want {
		t.Errorf("totals\n got %+v\nwant %+v", l.Totals, want)
	}
	if len(l.Entries) != 8 || l.Currency != "PEN" {
		t.Errorf("%d entries in %s, want 8 in PEN", len(l.Entries), l.Currency)
	}
	if e, _ := l.Entry(auth2.ClientTransactionID); e.Held != money.MustParse("12") {
		t.Errorf("auth2 held %s, want 12", e.Held)
	}
	var fromHTTP sim.Ledger
	st, body := f.do(t, http.MethodGet, "/_sim/ledger", nil)
	if err := json.Unmarshal(body, &fromHTTP); err != nil || st != 200 {
		t.Fatalf("GET /_sim/ledger: %d %s", st, body)
	}
	if fromHTTP.Totals != want || len(fromHTTP.Entries) != 8 {
		t.Errorf("HTTP ledger totals %+v, want %+v", fromHTTP.Totals, want)
	}
}

func TestBusyAndAbort(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = 20*time.Second, 5*time.Second })
	am, ap := lan(terminal.EndpointAbort)
	st, b := f.do(t, am, ap, nil)
	failure(t, st, b, http.StatusConflict, terminal.TypeTerminal, sim.CodeNothingActive)

	// Abort in the customer phase: the charge is cancelled, nothing taken.
	id := newID()
	type answer struct {
		status int
		body   []byte
	}
	done := make(chan answer, 1)
	go func() {
		st, b := f.post(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id, "amount": amount("20")})
		done <- answer{st, b}
	}()
	tm := f.timers.next(t)
	if tm.d != 15*time.Second {
		t.Errorf("customer phase = %s, want ThinkTime - ApprovalPhase = 15s", tm.d)
	}
	act := f.waitActive(t, "customer")
	if act.ClientTransactionID != id || act.Operation != "charge" {
		t.Errorf("active = %+v, want the charge", act)
	}
	// Busy for payments, searches still served.
	f.rule(t, terminal.EndpointCapture, followUp(newID(), "x", amount("1")), http.StatusConflict, terminal.TypeTerminal, sim.CodeBusy)
	f.rule(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id, "amount": amount("20")},
		http.StatusConflict, terminal.TypeTerminal, sim.CodeBusy)
	f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 5})

	st, b = f.do(t, am, ap, nil)
	if st != http.StatusOK {
		t.Fatalf("abort: %d %s, want 200", st, b)
	}
	a := <-done
	cancel := failure(t, a.status, a.body, http.StatusOK, terminal.TypeTerminalSunmi, terminal.CodeUserCancel)
	if cancel.Message == "" {
		t.Error("the cancel has no message")
	}
	if e := f.entry(t, id); e.Status != "CANCELLED" || !e.Taken.IsZero() {
		t.Errorf("aborted charge entry %+v, want CANCELLED with nothing taken", e)
	}
	if f.sim.State().Active != nil {
		t.Error("the terminal is still busy after the abort")
	}

	// Abort in the approval phase is refused, on the cloud route too; the
	// charge completes.
	id2 := newID()
	done2 := make(chan terminal.PaymentResponse, 1)
	go func() {
		done2 <- f.approved(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id2, "amount": amount("21")})
	}()
	f.timers.next(t).fire()
	approval := f.timers.next(t)
	if approval.d != 5*time.Second {
		t.Errorf("approval phase = %s, want 5s", approval.d)
	}
	f.waitActive(t, "approval")
	st, b = f.do(t, am, ap, nil)
	failure(t, st, b, http.StatusConflict, terminal.TypeTerminal, sim.CodeNothingActive)
	cm, cp := cloud(terminal.EndpointAbort)
	st, b = f.do(t, cm, cp, []byte("{}"))
	failure(t, st, b, http.StatusConflict, terminal.TypeTerminal, sim.CodeNothingActive)
	approval.fire()
	<-done2
	if e := f.entry(t, id2); e.TimesTaken != 1 {
		t.Errorf("charge after a refused abort: %+v, want taken once", e)
	}
}

func TestCloudAbortInCustomerPhase(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime = 10 * time.Second; c.Auth = "encrypted" })
	done := make(chan int, 1)
	go func() {
		st, _ := f.post(t, terminal.EndpointAuthorization, map[string]any{"client_transaction_id": newID(), "amount": amount("20")})
		done <- st
	}()
	f.timers.next(t)
	f.waitActive(t, "customer")
	cm, cp := cloud(terminal.EndpointAbort)
	st, b := f.do(t, cm, cp, nil)
	if st != http.StatusOK {
		t.Fatalf("cloud abort: %d %s", st, b)
	}
	if st := <-done; st != http.StatusOK {
		t.Errorf("aborted authorization answered %d, want 200 with a cancel body", st)
	}
}

func TestIdempotencyModes(t *testing.T) {
	body := func(id, total string) map[string]any {
		return map[string]any{"client_transaction_id": id, "amount": amount(total)}
	}
	t.Run("replay", func(t *testing.T) {
		f := startSim(t, nil)
		id := newID()
		st1, b1 := f.post(t, terminal.EndpointCharge, body(id, "12.5"))
		st2, b2 := f.post(t, terminal.EndpointCharge, body(id, "12.50")) // same amount, spelled differently
		if st1 != 200 || st2 != 200 || string(b1) != string(b2) {
			t.Fatalf("replay: %d %s / %d %s, want the same answer twice", st1, b1, st2, b2)
		}
		f.rule(t, terminal.EndpointCharge, body(id, "13"), http.StatusBadRequest, terminal.TypeParameter, sim.CodeDuplicateID)
		f.rule(t, terminal.EndpointAuthorization, body(id, "12.5"), http.StatusBadRequest, terminal.TypeParameter, sim.CodeDuplicateID)
		if e := f.entry(t, id); e.TimesTaken != 1 || e.Attempts != 1 {
			t.Errorf("entry %+v, want taken once in one attempt", e)
		}
		// A replayed decline stays a decline.
		d := newID()
		first := f.payment(t, terminal.EndpointCharge, body(d, "50"))
		again := f.payment(t, terminal.EndpointCharge, body(d, "50"))
		if again.TransactionReference != first.TransactionReference || again.TransactionStatus != terminal.StatusDeclined {
			t.Errorf("replayed decline %+v, want %+v", again, first)
		}
	})
	t.Run("reject", func(t *testing.T) {
		f := startSim(t, func(c *sim.Config) { c.Idempotency = sim.IdempotencyReject })
		id := newID()
		f.charge(t, id, "12")
		f.rule(t, terminal.EndpointCharge, body(id, "12"), http.StatusBadRequest, terminal.TypeParameter, sim.CodeDuplicateID)
		if e := f.entry(t, id); e.TimesTaken != 1 {
			t.Errorf("entry %+v, want taken once", e)
		}
	})
	t.Run("charge", func(t *testing.T) {
		f := startSim(t, func(c *sim.Config) { c.Idempotency = sim.IdempotencyCharge })
		id := newID()
		r1 := f.charge(t, id, "12")
		r2 := f.charge(t, id, "12")
		if r1.TransactionReference == r2.TransactionReference {
			t.Error("the duplicate got the same reference, want a new payment")
		}
		l := f.sim.Ledger()
		e, _ := l.Entry(id)
		if e.TimesTaken != 2 || e.Taken != money.MustParse("24") || e.Attempts != 2 || l.Totals.DoubleCharges != 1 {
			t.Errorf("entry %+v, double charges %d; want taken twice (24) and one double charge", e, l.Totals.DoubleCharges)
		}
		if e.Reference != r1.TransactionReference {
			t.Errorf("entry reference %s, want the first approval's %s", e.Reference, r1.TransactionReference)
		}
	})
}
