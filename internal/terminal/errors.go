package terminal

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/posbridge/posbridge/internal/payment"
)

// TransportError is a request that got no HTTP answer. Sent tells the two
// cases apart, which is what keeps a customer from being charged twice:
//
//   - Sent false: no connection to the terminal (or the cloud) was ever
//     obtained (connection refused, no route, connect timeout, TLS or proxy
//     handshake failure), or the request could not even be prepared. Not a
//     byte of it was written, so it may be sent again on any route. Is
//     matches payment.ErrNotSent.
//   - Sent true: a connection was obtained, so the request may have been
//     written and run (write or read error, connection closed, response
//     deadline, truncated body). It must never be re-sent blindly. Is matches
//     payment.ErrOutcomeUnknown.
type TransportError struct {
	Endpoint Endpoint
	Route    payment.Route
	Sent     bool
	Err      error
}

func (e *TransportError) Error() string {
	what := "not sent"
	if e.Sent {
		what = "outcome unknown"
	}
	return "terminal: " + string(e.Route) + " " + string(e.Endpoint) + ": " + what + ": " + e.Err.Error()
}

// Unwrap returns the underlying network or context error.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches payment.ErrOutcomeUnknown when Sent, payment.ErrNotSent otherwise.
func (e *TransportError) Is(target error) bool {
	if e.Sent {
		return target == payment.ErrOutcomeUnknown
	}
	return target == payment.ErrNotSent
}

// UnclearAnswerError is an HTTP answer that settles nothing: a 5xx (the
// terminal or the cloud may have processed the operation before failing), a
// redirect, or a 2xx whose body cannot be read as a payment answer (not JSON,
// cannot be decrypted, no approval or decline in it, decision fields of the
// wrong type). Is matches payment.ErrOutcomeUnknown.
type UnclearAnswerError struct {
	Endpoint   Endpoint
	Route      payment.Route
	HTTPStatus int
	Reason     string
	// Raw is the answer, card data masked, at most MaxRaw bytes.
	Raw json.RawMessage
}

func (e *UnclearAnswerError) Error() string {
	return "terminal: " + string(e.Route) + " " + string(e.Endpoint) + ": outcome unknown: HTTP " +
		strconv.Itoa(e.HTTPStatus) + ": " + e.Reason
}

// Is matches payment.ErrOutcomeUnknown.
func (e *UnclearAnswerError) Is(target error) bool { return target == payment.ErrOutcomeUnknown }

// BusyError is the terminal saying it is running another transaction (409
// TER-003, research §2): it did not run this one. Is matches payment.ErrBusy.
type BusyError struct {
	Endpoint   Endpoint
	Route      payment.Route
	HTTPStatus int
	Code       string
	Message    string
}

func (e *BusyError) Error() string {
	return "terminal: " + string(e.Route) + " " + string(e.Endpoint) + ": terminal busy: " + e.Code + ": " + e.Message
}

// Is matches payment.ErrBusy.
func (e *BusyError) Is(target error) bool { return target == payment.ErrBusy }

// NothingToAbortError is an abort answered with 409: no transaction was in
// progress (seeds/kushki-one-smartpos-payment-api.txt, "Abort"). Is matches
// payment.ErrNothingToAbort.
type NothingToAbortError struct {
	Route   payment.Route
	Code    string
	Message string
}

func (e *NothingToAbortError) Error() string {
	return "terminal: " + string(e.Route) + " abort: nothing to abort: " + e.Code + ": " + e.Message
}

// Is matches payment.ErrNothingToAbort.
func (e *NothingToAbortError) Is(target error) bool { return target == payment.ErrNothingToAbort }

// stamp fills the endpoint and route into the errors Classify returns,
// which knows neither.
func stamp(err error, e Endpoint, r payment.Route) error {
	var (
		te *payment.TerminalError
		ue *UnclearAnswerError
		be *BusyError
		ne *NothingToAbortError
	)
	switch {
	case errors.As(err, &te):
		te.Route = r
	case errors.As(err, &ue):
		ue.Endpoint, ue.Route = e, r
	case errors.As(err, &be):
		be.Endpoint, be.Route = e, r
	case errors.As(err, &ne):
		ne.Route = r
	}
	return err
}
