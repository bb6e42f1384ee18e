package payment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Journal is the durable store of records (internal/journal implements it on
// bbolt). All methods are safe for concurrent use. Records handed out are
// copies: changing them changes nothing until they are Put in an Update.
type Journal interface {
	// Update runs fn in one read-write transaction and returns nil only once
	// the changes are durable (fsync). Concurrent Updates may be committed
	// together (group commit), so fn may run more than once and must have no
	// effect outside tx. If fn or the commit fails, nothing fn wrote is kept
	// and the error is returned (wrapped); a commit error means the disk
	// failed and the caller must not assume anything was written.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// Get returns the record for a client_transaction_id, or an error
	// wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)

	// ByReference returns the record that carries a transaction_reference, or
	// an error wrapping ErrNotFound.
	ByReference(ctx context.Context, ref string) (*Record, error)

	// InFlight returns every record whose status is not final (pending or
	// unknown), read from an index: its cost does not grow with the journal.
	InFlight(ctx context.Context) ([]*Record, error)

	// List returns records that match f, newest first, at most f.Limit of
	// them, and a cursor for the next page ("" when there is none).
	List(ctx context.Context, f Filter) ([]*Record, string, error)
}

// Tx is a read-write view of the journal inside one Journal.Update.
type Tx interface {
	// Get returns a copy of a record, or an error wrapping ErrNotFound.
	Get(id string) (*Record, error)
	// Put inserts or replaces a record by its ID and keeps every index (by
	// reference, by time, the in-flight set) in step with it.
	Put(r *Record) error
}

// Filter selects records for Journal.List. Zero fields do not filter.
type Filter struct {
	Status    Status
	Operation Operation
	Terminal  string
	// From and To bound created_at: From ≤ created_at < To.
	From, To time.Time
	// Cursor continues a previous List; Limit caps the page (the journal
	// applies its own maximum).
	Cursor string
	Limit  int
}

// TerminalRequest is one operation as the gateway sends it to a terminal.
type TerminalRequest struct {
	Operation Operation
	// ID is this operation's client_transaction_id.
	ID string
	// Reference is the original's transaction_reference (follow-ups only).
	Reference string
	// Amount is nil only for a void, which the terminal runs on the whole
	// original.
	Amount   *Amount
	Metadata map[string]string
}

// Result is a terminal's answer to an operation, or what a search found.
type Result struct {
	Route Route `json:"route,omitempty"`
	// Status is approved, declined or cancelled. A search that finds a
	// transaction reports it the same way.
	Status            Status          `json:"status"`
	Reference         string          `json:"transaction_reference,omitempty"`
	TicketNumber      string          `json:"ticket_number,omitempty"`
	AuthorizationCode string          `json:"authorization_code,omitempty"`
	Card              *Card           `json:"card,omitempty"`
	Code              string          `json:"code,omitempty"`
	Message           string          `json:"message,omitempty"`
	Raw               json.RawMessage `json:"raw,omitempty"` // card data already masked
}

// TerminalError is a terminal's error answer, the Kushki ONE LinkFailure
// envelope {type, code, param, message}: the terminal did not run the
// operation. A busy terminal is reported as ErrBusy, not as a TerminalError.
type TerminalError struct {
	HTTPStatus int             `json:"http_status"`
	Type       string          `json:"type"`
	Code       string          `json:"code"`
	Param      string          `json:"param,omitempty"`
	Message    string          `json:"message"`
	Route      Route           `json:"route,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
}

func (e *TerminalError) Error() string {
	return "terminal error " + e.Type + "/" + e.Code + ": " + e.Message
}

// SearchSource picks a terminal's transaction history.
type SearchSource string

// Search sources: the terminal's own history, or the acquirer's.
const (
	SearchLocal  SearchSource = "local"
	SearchOnline SearchSource = "online"
)

// SearchQuery is a transaction search on a terminal. Zero fields do not filter.
type SearchQuery struct {
	Source              SearchSource `json:"source"`
	ClientTransactionID string       `json:"client_transaction_id,omitempty"`
	Reference           string       `json:"transaction_reference,omitempty"`
	From                time.Time    `json:"from,omitzero"`
	To                  time.Time    `json:"to,omitzero"`
	Page                int          `json:"page,omitempty"`
	Size                int          `json:"size,omitempty"`
}

// Gateway reaches terminals by name over the best route (internal/terminal
// implements it: LAN first, cloud as fallback). All methods are safe for
// concurrent use; the caller runs at most one operation per terminal at a time.
type Gateway interface {
	// Send delivers req to the terminal and waits for its answer, up to the
	// configured response deadline. Before it writes anything on a route it
	// calls beforeSend with that route; if beforeSend fails nothing is sent
	// and Send returns that error. When a route cannot connect, Send may try
	// the next one, calling beforeSend again. It never re-sends a request
	// whose outcome is unknown.
	//
	// Errors: wrapping ErrNotSent when no route connected (nothing reached
	// the terminal); wrapping ErrOutcomeUnknown when the request may have
	// reached it but no complete answer came back; wrapping ErrBusy on 409
	// TER-003; a *TerminalError for any other error answer.
	Send(ctx context.Context, terminal string, req TerminalRequest, beforeSend func(Route) error) (*Result, error)

	// Abort cancels the transaction in progress on the terminal. It returns
	// nil when something was aborted and an error wrapping ErrNothingToAbort
	// when nothing was running (409).
	Abort(ctx context.Context, terminal string) (Route, error)

	// Lookup finds a transaction by client_transaction_id: the terminal's
	// local history first, then the online one. It returns an error wrapping
	// ErrNotFound when every source that answered says it does not exist, and
	// another error when no source could answer.
	Lookup(ctx context.Context, terminal, id string) (*Result, error)

	// Search runs a terminal transaction search and returns the terminal's
	// answer as JSON (card data masked).
	Search(ctx context.Context, terminal string, q SearchQuery) (json.RawMessage, Route, error)
}

// Reverser reverses a charge whose outcome is unknown by its
// client_transaction_id, through Kushki's raw card-present API
// (POST /pos/v1/transaction, transaction_mode "Reverse"; research §7).
// internal/cloud implements it where that credential is configured.
type Reverser interface {
	Reverse(ctx context.Context, terminal, id string, amount Amount) (*Result, error)
}

// Request is an operation the POS asks for, after decoding and defaults.
type Request struct {
	Operation  Operation
	ID         string // client_transaction_id
	OriginalID string // follow-ups: the original's client_transaction_id
	Terminal   string
	Amount     *Amount // nil where the operation allows it (void; capture and refund default to the balance)
	Metadata   map[string]string
}

// Hash fingerprints the canonical request: the parsed fields, not the raw
// bytes, so key order and number spelling ("12.5" or "12.50") do not matter.
// Two requests with one ID must have the same hash.
func (r Request) Hash() string {
	canon := struct {
		Operation  Operation         `json:"o"`
		OriginalID string            `json:"r,omitempty"`
		Terminal   string            `json:"t"`
		Amount     *Amount           `json:"a,omitempty"`
		Metadata   map[string]string `json:"m,omitempty"`
	}{r.Operation, r.OriginalID, r.Terminal, r.Amount, r.Metadata}
	b, err := json.Marshal(canon)
	if err != nil {
		panic("payment: hash request: " + err.Error()) // plain data cannot fail to encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
