package sim

import (
	"time"

	"github.com/posbridge/posbridge/internal/money"
)

// Ledger is the simulator's ground truth of money, one entry per
// client_transaction_id in the order the ids were first processed. Tests use
// it to prove "no double charge" (an entry with TimesTaken > 1) and "no lost
// approval" (money Outstanding that posbridge does not know of).
type Ledger struct {
	Currency money.Currency `json:"currency"`
	Entries  []LedgerEntry  `json:"entries"`
	Totals   LedgerTotals   `json:"totals"`
}

// LedgerEntry is what happened under one client_transaction_id. Money is
// taken by an approved charge, an approved capture and an approved pos_tip on
// a charge; an approved authorization (with its re-authorizations and tips)
// only holds money until it is captured, voided or reversed.
type LedgerEntry struct {
	ClientTransactionID string `json:"client_transaction_id"`
	// Operation is the endpoint of the first processing: charge,
	// authorization, capture, re_authorization, pos_tip, void, refund.
	Operation string `json:"operation"`
	// Status is the latest processing's transaction_status: APPROVAL,
	// DECLINED or CANCELLED.
	Status string `json:"status"`
	// Amount is the first processing's amount total (a void: the
	// original's).
	Amount money.Decimal `json:"amount"`
	// Reference is the first approved processing's transaction_reference
	// (or the first one's, when none was approved).
	Reference string `json:"transaction_reference,omitempty"`
	// OriginalReference is the transaction_reference a follow-up acted on.
	OriginalReference string `json:"original_reference,omitempty"`
	// Attempts counts the times the id was processed (replayed answers do
	// not count).
	Attempts int `json:"attempts"`
	// TimesTaken counts the times money was taken under this id; more than
	// one is a double charge.
	TimesTaken int `json:"times_taken"`
	// Taken is the money taken under this id, before anything was returned.
	Taken money.Decimal `json:"taken"`
	// Returned is the part of Taken given back by a void, a reverse or
	// refunds.
	Returned money.Decimal `json:"returned"`
	// Refunded is the part of Returned given back by refunds.
	Refunded money.Decimal `json:"refunded"`
	// Outstanding is Taken minus Returned: what the customer still pays.
	Outstanding money.Decimal `json:"outstanding"`
	// Held is what an authorization under this id still holds on the card.
	Held     money.Decimal `json:"held"`
	Voided   bool          `json:"voided"`
	Reversed bool          `json:"reversed"`
	// FirstAt is when the id was first processed.
	FirstAt time.Time `json:"first_at"`
}

// LedgerTotals add up the entries.
type LedgerTotals struct {
	Taken       money.Decimal `json:"taken"`
	Returned    money.Decimal `json:"returned"`
	Outstanding money.Decimal `json:"outstanding"`
	Held        money.Decimal `json:"held"`
	// Approved, Declined and Cancelled count processings by outcome.
	Approved  int `json:"approved"`
	Declined  int `json:"declined"`
	Cancelled int `json:"cancelled"`
	// DoubleCharges counts the entries with TimesTaken > 1.
	DoubleCharges int `json:"double_charges"`
}

// Entry returns the entry for a client_transaction_id, and false when the
// simulator never processed that id.
func (l Ledger) Entry(id string) (LedgerEntry, bool) {
	for _, e := range l.Entries {
		if e.ClientTransactionID == id {
			return e, true
		}
	}
	return LedgerEntry{}, false
}

// ledgerLocked derives the ledger from the transaction history. s.mu is held.
func (s *Sim) ledgerLocked() Ledger {
	l := Ledger{Currency: s.cfg.Currency, Entries: []LedgerEntry{}}
	index := make(map[string]int)
	approvedRef := make(map[string]bool) // Reference already holds an approved processing's
	now := s.cfg.Now()
	for _, t := range s.txns {
		i, ok := index[t.id]
		if !ok {
			i = len(l.Entries)
			index[t.id] = i
			l.Entries = append(l.Entries, LedgerEntry{
				ClientTransactionID: t.id, Operation: string(t.ep), Amount: t.total,
				Reference: t.ref, OriginalReference: t.origRef, FirstAt: t.created,
			})
		}
		e := &l.Entries[i]
		e.Attempts++
		e.Status = t.status
		if t.status == statusApproval && !approvedRef[t.id] {
			e.Reference, approvedRef[t.id] = t.ref, true
		}
		switch t.status {
		case statusApproval:
			l.Totals.Approved++
		case statusDeclined:
			l.Totals.Declined++
		case statusCancelled:
			l.Totals.Cancelled++
		}
		if t.takesMoney() {
			e.TimesTaken++
			e.Taken = e.Taken.Add(t.total)
			ret := t.refunded
			if t.voided || t.reversed {
				ret = t.total
			}
			e.Returned = e.Returned.Add(ret)
			e.Refunded = e.Refunded.Add(t.refunded)
		}
		if h := t.held(now); h.Sign() > 0 {
			e.Held = e.Held.Add(h)
		}
		e.Voided = e.Voided || t.voided
		e.Reversed = e.Reversed || t.reversed
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		e.Outstanding = e.Taken.Sub(e.Returned)
		l.Totals.Taken = l.Totals.Taken.Add(e.Taken)
		l.Totals.Returned = l.Totals.Returned.Add(e.Returned)
		l.Totals.Held = l.Totals.Held.Add(e.Held)
		if e.TimesTaken > 1 {
			l.Totals.DoubleCharges++
		}
	}
	l.Totals.Outstanding = l.Totals.Taken.Sub(l.Totals.Returned)
	return l
}
