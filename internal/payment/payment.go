// Package payment is posbridge's domain: the transaction record and its states,
// the amount and lifecycle rules, the small interfaces the lifecycle needs (a
// journal, a gateway to terminals), and the Service that runs every payment
// operation from validation to durable outcome.
//
// It imports no adapter: bbolt lives in internal/journal, the vendor HTTP API in
// internal/terminal, HTTP serving in internal/api. cmd/posbridge wires them.
package payment

import (
	"encoding/json"
	"time"

	"github.com/posbridge/posbridge/internal/money"
)

// Operation is a payment operation as the local API names it.
type Operation string

// The operations posbridge runs on a terminal. Their terminal endpoints are
// charge, authorization, capture, re_authorization, pos_tip, void and refund.
const (
	OpCharge          Operation = "charge"
	OpAuthorization   Operation = "authorization"
	OpCapture         Operation = "capture"
	OpReauthorization Operation = "reauthorization"
	OpTip             Operation = "tip"
	OpVoid            Operation = "void"
	OpRefund          Operation = "refund"
)

// Operations lists every Operation, in API order.
var Operations = []Operation{OpCharge, OpAuthorization, OpCapture, OpReauthorization, OpTip, OpVoid, OpRefund}

// Valid reports whether o is one of Operations.
func (o Operation) Valid() bool {
	for _, x := range Operations {
		if o == x {
			return true
		}
	}
	return false
}

// FollowUp reports whether o acts on an earlier transaction (it needs the
// original's transaction_reference).
func (o Operation) FollowUp() bool { return o != OpCharge && o != OpAuthorization }

// Status is the state of a transaction. See DESIGN.md "The transaction object".
type Status string

// Transaction states.
const (
	// StatusPending: the intent is durable and the terminal is working.
	StatusPending Status = "pending"
	// StatusApproved: the terminal approved the operation.
	StatusApproved Status = "approved"
	// StatusDeclined: the terminal or the acquirer declined it; no money moved.
	StatusDeclined Status = "declined"
	// StatusCancelled: the customer or an abort cancelled it before approval.
	StatusCancelled Status = "cancelled"
	// StatusFailed: the terminal answered with an error (bad parameter,
	// authentication, configuration) or could not be reached at all; it did not
	// process the operation and no money moved.
	StatusFailed Status = "failed"
	// StatusUnknown: the call ended without a clear answer; recovery owns it.
	StatusUnknown Status = "unknown"
	// StatusVoided: an approval that was later voided (same day).
	StatusVoided Status = "voided"
	// StatusReversed: an approval reversed through the raw card-present API.
	StatusReversed Status = "reversed"
	// StatusRefunded and StatusPartiallyRefunded: charged money returned, in full or in part.
	StatusRefunded          Status = "refunded"
	StatusPartiallyRefunded Status = "partially_refunded"
	// StatusCaptured: an authorization that has been captured.
	StatusCaptured Status = "captured"
	// StatusNotCharged: recovery proved that no money moved.
	StatusNotCharged Status = "not_charged"
	// StatusNeedsAttention: recovery gave up; a person must look.
	StatusNeedsAttention Status = "needs_attention"
)

// Statuses lists every Status.
var Statuses = []Status{StatusPending, StatusApproved, StatusDeclined, StatusCancelled, StatusFailed,
	StatusUnknown, StatusVoided, StatusReversed, StatusRefunded, StatusPartiallyRefunded, StatusCaptured,
	StatusNotCharged, StatusNeedsAttention}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	for _, x := range Statuses {
		if s == x {
			return true
		}
	}
	return false
}

// Final reports whether s is settled. Pending, unknown and needs_attention
// are not: the first two belong to the lifecycle or recovery, the last to a
// person. The journal keeps every record that is not final in its in-flight
// index, so start-up and readiness read only those. A final status changes
// only through a later follow-up operation (void, refund, capture) recorded
// as events.
func (s Status) Final() bool {
	return s != StatusPending && s != StatusUnknown && s != StatusNeedsAttention
}

// Route is the path an operation took to its terminal.
type Route string

// Routes.
const (
	RouteLAN   Route = "lan"
	RouteCloud Route = "cloud"
)

// Card is what the terminal tells us about the card. Masked is the masked PAN
// exactly as the terminal returned it, and only if it is masked: posbridge
// never stores a full card number.
type Card struct {
	Brand  string `json:"brand,omitempty"`
	Type   string `json:"type,omitempty"`
	Masked string `json:"masked,omitempty"`
}

// Event is one entry of a transaction's append-only history.
type Event struct {
	At     time.Time `json:"at"`
	Status Status    `json:"status"`
	Route  Route     `json:"route,omitempty"`
	// Code is the terminal's response or error code, when it gave one.
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Transaction is a payment operation as the local API shows it. Field names
// are a contract with POS software: add, never rename.
type Transaction struct {
	ID                string            `json:"client_transaction_id"`
	Operation         Operation         `json:"operation"`
	OriginalID        string            `json:"original_id,omitempty"`
	Terminal          string            `json:"terminal"`
	Route             Route             `json:"route,omitempty"`
	Status            Status            `json:"status"`
	Currency          money.Currency    `json:"currency"`
	Amount            Amount            `json:"amount"`
	Reference         string            `json:"transaction_reference,omitempty"`
	TicketNumber      string            `json:"ticket_number,omitempty"`
	Card              *Card             `json:"card,omitempty"`
	AuthorizationCode string            `json:"authorization_code,omitempty"`
	TerminalResponse  json.RawMessage   `json:"terminal_response,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	// Balances of an original, kept as follow-ups succeed: the total authorized
	// (authorization plus re-authorizations), captured, tipped and refunded.
	AuthorizedAmount *money.Decimal `json:"authorized_amount,omitempty"`
	CapturedAmount   *money.Decimal `json:"captured_amount,omitempty"`
	TipAmount        *money.Decimal `json:"tip_amount,omitempty"`
	RefundedAmount   *money.Decimal `json:"refunded_amount,omitempty"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	Events           []Event        `json:"events"`
}

// Record is what the journal stores for one client_transaction_id: the
// transaction plus the bookkeeping the lifecycle and recovery need, which the
// API does not show.
type Record struct {
	Transaction

	// RequestHash fingerprints the canonical request (see Request.Hash): a retry
	// with the same id must carry the same hash.
	RequestHash string `json:"request_hash"`

	// Reply is the exact response body the POS got (or would have got) for the
	// operation once it settled, and ReplyCode its error code ("" when Reply
	// is the transaction object). A retry with the same id and body replays
	// them byte for byte; the API maps the code to the HTTP status.
	Reply     json.RawMessage `json:"reply,omitempty"`
	ReplyCode Code            `json:"reply_code,omitempty"`

	// Retryable marks a failed record whose operation certainly never ran on
	// the terminal (not sent, or refused as busy): a retry with the same id
	// and body runs it again instead of replaying the failure.
	Retryable bool `json:"retryable,omitempty"`

	// Claimed is set when the POS has seen the outcome or shown it still
	// wants it: the reply reached a waiting caller, the POS retried the id,
	// or read it by id. Recovery never reverses a claimed approval.
	Claimed bool `json:"claimed,omitempty"`

	// Recovery is the recovery worker's state for a record that is not final.
	Recovery *RecoveryState `json:"recovery,omitempty"`
}

// RecoveryState is the recovery worker's durable progress on one record.
type RecoveryState struct {
	// Since is when the outcome became unknown (or the daemon restarted with
	// it pending); the claim window runs from here.
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
	// Aborted is set once an abort was sent (or found nothing to abort).
	Aborted bool `json:"aborted,omitempty"`
	// Found is the terminal's approval found by a search, kept so a restart
	// does not search again before acting on it; FoundAt is when it was
	// found (the approval happened before).
	Found   *Result   `json:"found,omitempty"`
	FoundAt time.Time `json:"found_at,omitzero"`
	// ReversalSent is the client_transaction_id of a void or refund of an
	// abandoned approval that was sent (at ReversalAt) without a clear
	// answer: it is looked up before anything is sent again.
	ReversalSent string    `json:"reversal_sent,omitempty"`
	ReversalAt   time.Time `json:"reversal_at,omitzero"`
	// UseRefund is set when the terminal refused the void (e.g. the cutoff
	// passed): the abandoned approval is refunded instead.
	UseRefund bool `json:"use_refund,omitempty"`
	// Reason says why the record needs attention, when it does.
	Reason string `json:"reason,omitempty"`
}

// Clone returns a deep copy of r, so a copy handed to a caller can be changed
// without touching the original.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Amount = r.Amount.clone()
	if r.Card != nil {
		card := *r.Card
		c.Card = &card
	}
	c.TerminalResponse = append(json.RawMessage(nil), r.TerminalResponse...)
	c.Reply = append(json.RawMessage(nil), r.Reply...)
	if r.Metadata != nil {
		c.Metadata = make(map[string]string, len(r.Metadata))
		for k, v := range r.Metadata {
			c.Metadata[k] = v
		}
	}
	c.AuthorizedAmount = cloneDec(r.AuthorizedAmount)
	c.CapturedAmount = cloneDec(r.CapturedAmount)
	c.TipAmount = cloneDec(r.TipAmount)
	c.RefundedAmount = cloneDec(r.RefundedAmount)
	c.Events = append([]Event(nil), r.Events...)
	if r.Recovery != nil {
		rs := *r.Recovery
		if rs.Found != nil {
			f := *rs.Found
			rs.Found = &f
		}
		c.Recovery = &rs
	}
	return &c
}

func cloneDec(d *money.Decimal) *money.Decimal {
	if d == nil {
		return nil
	}
	v := *d
	return &v
}

// AddEvent appends an event and moves the record to its status. It does not
// change r.Route, which is the route of the record's own operation.
func (r *Record) AddEvent(e Event) {
	r.Status = e.Status
	r.UpdatedAt = e.At
	r.Events = append(r.Events, e)
}
