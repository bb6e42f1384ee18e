package payment

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code of the local API. Codes are a
// contract with POS software: add, never rename. The HTTP status for each code
// is decided in one table at the API edge (internal/api).
type Code string

// Error codes.
const (
	CodeValidation          Code = "validation_failed"    // the request breaks a rule; nothing was sent
	CodeBadRequest          Code = "bad_request"          // the body is not acceptable JSON
	CodeNotFound            Code = "not_found"            // no such transaction or terminal
	CodeInvalidState        Code = "invalid_state"        // the original cannot take this operation now
	CodeTerminalBusy        Code = "terminal_busy"        // the terminal is running another operation
	CodeIdempotencyConflict Code = "idempotency_conflict" // same client_transaction_id, different request
	CodeTerminalUnreachable Code = "terminal_unreachable" // no route could connect; nothing was sent
	CodeTerminalError       Code = "terminal_error"       // the terminal refused the request; nothing charged
	CodeOutcomeUnknown      Code = "outcome_unknown"      // no clear answer; recovery is settling it
	CodeNothingToAbort      Code = "nothing_to_abort"     // abort found no transaction in progress
	CodeJournalUnavailable  Code = "journal_unavailable"  // the intent could not be made durable; nothing was sent
	CodeShuttingDown        Code = "shutting_down"        // the daemon is stopping
	CodeUnauthorized        Code = "unauthorized"         // missing or wrong bearer token
	CodeForbidden           Code = "forbidden"            // Host or Origin not allowed
	CodeUnsupportedMedia    Code = "unsupported_media_type"
	CodeTooLarge            Code = "request_too_large"
	CodeMethodNotAllowed    Code = "method_not_allowed"
	CodeInternal            Code = "internal_error"
)

// Error is the one coded error type that crosses the API. Its fields are
// rendered as {"error": {"code", "message", "field"?, "client_transaction_id"?,
// "running_id"?}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Field names the offending request field, for validation errors.
	Field string `json:"field,omitempty"`
	// ID is the client_transaction_id the error is about, when there is one.
	ID string `json:"client_transaction_id,omitempty"`
	// RunningID names the operation holding a busy terminal.
	RunningID string `json:"running_id,omitempty"`
	// TerminalCode is the terminal's own error code, for terminal_error.
	TerminalCode string `json:"terminal_code,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of the first *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Sentinel errors of the gateway and journal contracts. Adapters wrap them
// (or return errors whose Is method matches them) so the lifecycle can tell
// the cases apart with errors.Is.
var (
	// ErrNotSent: the operation never reached the terminal (connect refused, no
	// route, connect timeout). It is safe to send it again, on any route.
	ErrNotSent = errors.New("not sent")
	// ErrOutcomeUnknown: the request may have reached the terminal but no
	// complete answer came back. It must never be re-sent blindly.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrBusy: the terminal said it is running another transaction (409 TER-003).
	ErrBusy = errors.New("terminal busy")
	// ErrNothingToAbort: an abort found no transaction in progress (409).
	ErrNothingToAbort = errors.New("nothing to abort")
	// ErrNotFound: no such record (journal) or transaction (terminal search).
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that id is already in the journal.
	ErrExists = errors.New("already exists")
)
