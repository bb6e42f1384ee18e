package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/posbridge/posbridge/internal/payment"
)

// statusOf is the one table that maps an error code of the local API to its
// HTTP status (STYLE.md §4). Every error response goes through it, whether the
// code came from the payment service, a stored reply, or this package.
//
// idempotency_conflict is 422 as the IETF Idempotency-Key draft has it
// (research/anchors-reliability.md §1.4): the request is well-formed but
// cannot be processed under that key. terminal_busy is 409, the draft's
// "retry while the original is still running". outcome_unknown is 504: the
// upstream (the terminal) did not answer in time; the POS retries with the
// same client_transaction_id or reads the transaction.
var statusOf = map[payment.Code]int{
	payment.CodeBadRequest:          http.StatusBadRequest,
	payment.CodeValidation:          http.StatusUnprocessableEntity,
	payment.CodeIdempotencyConflict: http.StatusUnprocessableEntity,
	payment.CodeNotFound:            http.StatusNotFound,
	payment.CodeInvalidState:        http.StatusConflict,
	payment.CodeTerminalBusy:        http.StatusConflict,
	payment.CodeNothingToAbort:      http.StatusConflict,
	payment.CodeUnauthorized:        http.StatusUnauthorized,
	payment.CodeForbidden:           http.StatusForbidden,
	payment.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	payment.CodeUnsupportedMedia:    http.StatusUnsupportedMediaType,
	payment.CodeTooLarge:            http.StatusRequestEntityTooLarge,
	payment.CodeTerminalError:       http.StatusBadGateway,
	payment.CodeTerminalUnreachable: http.StatusServiceUnavailable,
	payment.CodeJournalUnavailable:  http.StatusServiceUnavailable,
	payment.CodeShuttingDown:        http.StatusServiceUnavailable,
	payment.CodeOutcomeUnknown:      http.StatusGatewayTimeout,
	payment.CodeInternal:            http.StatusInternalServerError,
}

// HTTPStatus returns the HTTP status of an error code, and 500 for a code
// the table does not know (which a test forbids).
func HTTPStatus(c payment.Code) int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Messages the API uses instead of an error's own text, where that text may
// carry internal details (file paths of the journal, Go error chains). The
// details go to the log.
const (
	msgJournal  = "the journal could not be read or written, so nothing was sent to the terminal; see the posbridge log"
	msgInternal = "internal error; see the posbridge log"
)

// coded turns any error from the service into the *payment.Error the POS
// sees. Coded errors pass through, except that journal and internal errors
// get a fixed message (the original is logged by the caller). Gateway
// sentinels from Abort and Search are mapped to their codes. ctx errors are
// not expected here (the caller checks them first).
func coded(err error) *payment.Error {
	var pe *payment.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case payment.CodeJournalUnavailable:
			c := *pe
			c.Message = msgJournal
			return &c
		case payment.CodeInternal:
			c := *pe
			c.Message = msgInternal
			return &c
		}
		if _, known := statusOf[pe.Code]; !known {
			return &payment.Error{Code: payment.CodeInternal, Message: msgInternal, ID: pe.ID}
		}
		return pe
	}
	var te *payment.TerminalError
	switch {
	case errors.Is(err, payment.ErrNothingToAbort):
		return &payment.Error{Code: payment.CodeNothingToAbort, Message: "the terminal has no transaction in progress that can be aborted"}
	case errors.Is(err, payment.ErrBusy):
		return &payment.Error{Code: payment.CodeTerminalBusy, Message: "the terminal is busy with another transaction"}
	case errors.As(err, &te):
		return &payment.Error{Code: payment.CodeTerminalError, TerminalCode: te.Code,
			Message: "the terminal refused the request: " + te.Message}
	case errors.Is(err, payment.ErrNotSent):
		return &payment.Error{Code: payment.CodeTerminalUnreachable, Message: "the terminal could not be reached on any route; nothing was sent"}
	case errors.Is(err, payment.ErrOutcomeUnknown):
		return &payment.Error{Code: payment.CodeOutcomeUnknown, Message: "the terminal gave no clear answer in time"}
	case errors.Is(err, context.DeadlineExceeded):
		return &payment.Error{Code: payment.CodeOutcomeUnknown, Message: "the terminal did not answer in time"}
	}
	return &payment.Error{Code: payment.CodeInternal, Message: msgInternal}
}

// badRequest returns a bad_request error naming field ("" for the whole body).
func badRequest(field, msg string) *payment.Error {
	return &payment.Error{Code: payment.CodeBadRequest, Field: field, Message: msg}
}

// invalid returns a validation_failed error naming field.
func invalid(field, msg string) *payment.Error {
	return &payment.Error{Code: payment.CodeValidation, Field: field, Message: msg}
}
