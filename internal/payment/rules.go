package payment

import (
	"fmt"
	"time"

	"github.com/posbridge/posbridge/internal/money"
)

// Lifecycle rules for follow-up operations, checked against the original in
// the journal before anything is written or sent. Sources: the seed
// kushki-one-smartpos-payment-api.txt ("Pre-authorization and capture",
// "Validity of pre-authorizations", "Voids and refunds") and research §1.

// captureLimitPercent: a capture may be up to 110 % of the authorization plus
// re-authorizations.
const captureLimitPercent = 110

// Validity of a pre-authorization from its approval, by card type.
const (
	debitHoldValidity  = 7 * 24 * time.Hour
	creditHoldValidity = 28 * 24 * time.Hour
)

// Policy holds the time rules for voids.
type Policy struct {
	// VoidDelay is the minimum wait after the original's approval before a
	// void (vendor: at least 1 minute).
	VoidDelay time.Duration
	// Cutoff is the processor's daily cutoff as an offset from midnight in
	// Location: a void must happen the same day before it.
	Cutoff   time.Duration
	Location *time.Location
}

// VoidWindow returns when a void of an original approved at approvedAt opens
// and closes.
func (p Policy) VoidWindow(approvedAt time.Time) (opens, closes time.Time) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	t := approvedAt.In(loc)
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	return approvedAt.Add(p.VoidDelay), midnight.Add(p.Cutoff)
}

// approvedAt returns when the record was first approved (the event that
// moved it to approved), or its creation time when no such event exists.
func approvedAt(r *Record) time.Time {
	for _, e := range r.Events {
		if e.Status == StatusApproved {
			return e.At
		}
	}
	return r.CreatedAt
}

// refundable returns what can still be refunded of a charge or capture: its
// total plus tips, minus refunds.
func refundable(o *Record) money.Decimal {
	t := o.Amount.Total()
	if o.TipAmount != nil {
		t = t.Add(*o.TipAmount)
	}
	if o.RefundedAmount != nil {
		t = t.Sub(*o.RefundedAmount)
	}
	return t
}

// authorized returns the authorization's total plus re-authorizations.
func authorized(o *Record) money.Decimal {
	if o.AuthorizedAmount != nil {
		return *o.AuthorizedAmount
	}
	return o.Amount.Total()
}

// checkFollowUp validates a follow-up request against its original at time
// now and returns the terminal request to send and the amount to record
// (they differ only for a refund of what remains, which the terminal is
// asked for without an amount). Errors are *Error with codes not_found,
// invalid_state or validation_failed.
func checkFollowUp(req Request, o *Record, now time.Time, p Policy) (TerminalRequest, *Amount, error) {
	tr, recorded, err := followUp(req, o, now, p)
	if recorded == nil {
		recorded = tr.Amount
	}
	return tr, recorded, err
}

func followUp(req Request, o *Record, now time.Time, p Policy) (tr TerminalRequest, recorded *Amount, err error) {
	tr = TerminalRequest{Operation: req.Operation, ID: req.ID, Reference: o.Reference, Amount: req.Amount}
	state := func(format string, args ...any) error {
		e := Errorf(CodeInvalidState, format, args...)
		e.ID = req.ID
		return e
	}
	if o.Reference == "" {
		return tr, nil, state("original %s has no transaction_reference (status %s)", o.ID, o.Status)
	}
	switch req.Operation {
	case OpCapture:
		if o.Operation != OpAuthorization {
			return tr, nil, state("only an authorization can be captured; %s is a %s", o.ID, o.Operation)
		}
		if o.Status == StatusCaptured {
			return tr, nil, state("authorization %s is already captured: one capture per authorization", o.ID)
		}
		if o.Status != StatusApproved {
			return tr, nil, state("authorization %s is %s, not approved", o.ID, o.Status)
		}
		validity := creditHoldValidity
		if o.Card != nil && o.Card.Type == "debit" {
			validity = debitHoldValidity
		}
		if now.After(approvedAt(o).Add(validity)) {
			return tr, nil, state("authorization %s expired on %s", o.ID, approvedAt(o).Add(validity).Format(time.RFC3339))
		}
		if req.Amount == nil {
			return tr, nil, fieldError("amount", "a capture needs an amount")
		}
		limit := authorized(o).Percent(captureLimitPercent)
		if req.Amount.Total().Cmp(limit) > 0 {
			return tr, nil, fieldError("amount", fmt.Sprintf("capture %s exceeds 110%% of the authorized %s (at most %s)",
				req.Amount.Total(), authorized(o), limit))
		}
	case OpReauthorization:
		if o.Operation != OpAuthorization || o.Status != StatusApproved {
			return tr, nil, state("only an approved, uncaptured authorization can be re-authorized; %s is a %s %s", o.ID, o.Status, o.Operation)
		}
		if req.Amount == nil {
			return tr, nil, fieldError("amount", "a re-authorization needs an amount (subtotal_iva0 0 only extends validity)")
		}
	case OpTip:
		if (o.Operation != OpCharge && o.Operation != OpAuthorization) || o.Status != StatusApproved {
			return tr, nil, state("a tip needs an approved charge or authorization; %s is a %s %s", o.ID, o.Status, o.Operation)
		}
		if req.Amount == nil {
			return tr, nil, fieldError("amount.tip", "a tip operation needs amount.tip greater than 0")
		}
	case OpVoid:
		if req.Amount != nil {
			return tr, nil, fieldError("amount", "a void takes no amount: it voids the whole original")
		}
		switch {
		case o.Operation != OpCharge && o.Operation != OpAuthorization && o.Operation != OpCapture:
			return tr, nil, state("a %s cannot be voided", o.Operation)
		case o.Status != StatusApproved:
			return tr, nil, state("%s is %s: only an approved transaction can be voided", o.ID, o.Status)
		}
		opens, closes := p.VoidWindow(approvedAt(o))
		if now.Before(opens) {
			return tr, nil, state("a void of %s is possible from %s (at least %s after approval)", o.ID, opens.Format(time.RFC3339), p.VoidDelay)
		}
		if !now.Before(closes) {
			return tr, nil, state("the void window of %s closed at the processor cutoff %s: refund it instead", o.ID, closes.Format(time.RFC3339))
		}
	case OpRefund:
		if o.Operation != OpCharge && o.Operation != OpCapture {
			return tr, nil, state("only a charge or a capture can be refunded; %s is a %s (refund its capture)", o.ID, o.Operation)
		}
		if o.Status != StatusApproved && o.Status != StatusPartiallyRefunded {
			return tr, nil, state("%s is %s: nothing to refund", o.ID, o.Status)
		}
		left := refundable(o)
		if req.Amount == nil {
			// The terminal refunds what remains when the refund carries no
			// amount (charge, tips, minus earlier refunds); the record shows
			// the original's breakdown when that is what remains.
			a := Amount{SubtotalIVA0: left}
			if left.Cmp(o.Amount.Total()) == 0 {
				a = o.Amount.clone()
			}
			return tr, &a, nil
		} else if req.Amount.Total().Cmp(left) > 0 {
			return tr, nil, fieldError("amount", fmt.Sprintf("refund %s exceeds the %s that remains of %s", req.Amount.Total(), left, o.ID))
		}
	default:
		return tr, nil, Errorf(CodeValidation, "%s is not a follow-up operation", req.Operation)
	}
	return tr, nil, nil
}

// applyFollowUp records the effect of an approved follow-up f on its original
// o (capture, re-authorization, tip, void, refund), as an event on o.
func applyFollowUp(o, f *Record, at time.Time) {
	amt := money.Decimal{}
	if f.Amount.Tip != nil && f.Operation == OpTip {
		amt = *f.Amount.Tip
	} else {
		amt = f.Amount.Total()
	}
	status := o.Status
	switch f.Operation {
	case OpCapture:
		status = StatusCaptured
		o.CapturedAmount = &amt
	case OpReauthorization:
		t := authorized(o).Add(amt)
		o.AuthorizedAmount = &t
	case OpTip:
		t := amt
		if o.TipAmount != nil {
			t = t.Add(*o.TipAmount)
		}
		o.TipAmount = &t
	case OpVoid:
		status = StatusVoided
	case OpRefund:
		t := amt
		if o.RefundedAmount != nil {
			t = t.Add(*o.RefundedAmount)
		}
		o.RefundedAmount = &t
		status = StatusPartiallyRefunded
		if refundable(o).Sign() <= 0 {
			status = StatusRefunded
		}
	}
	o.AddEvent(Event{At: at, Status: status, Route: f.Route,
		Detail: fmt.Sprintf("%s %s approved (%s)", f.Operation, f.ID, amt)})
}
