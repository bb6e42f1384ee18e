package sim

import (
	"fmt"
	"net/http"

	"github.com/posbridge/posbridge/internal/terminal"
)

// Error codes the simulator answers with. Kushki's catalog tables were not
// visible (research/kushki-one.md §2 "Not found"), so apart from PAR-003
// (the catalog's own example), TER-003 (a third-party client's comment) and
// the acquirer codes E016/E041/E048 (research §7), these are posbridge's
// choices. Every error body is a terminal.LinkFailure.
const (
	// PARAMETER, HTTP 400.
	CodeMalformed     = "PAR-001"                  // not JSON, not an object, wrong type, unknown or duplicate key, trailing data, too large
	CodeMissing       = "PAR-002"                  // a required field is absent or empty
	CodeNotPositive   = "PAR-003"                  // the amount's total must be greater than 0
	CodeAmountValue   = "PAR-004"                  // negative, too many decimals for the currency, or out of range
	CodeNotAllowed    = "PAR-005"                  // a field this endpoint does not take (tip, extra_taxes) or lacks (pos_tip without tip)
	CodeBadID         = "PAR-006"                  // client_transaction_id is not a UUID
	CodeSearchParam   = "PAR-007"                  // page, size, dates or transaction_type of a search
	CodeDuplicateID   = "PAR-008"                  // client_transaction_id already used (reject mode, or replay with a different request)
	CodeNoRoute       = "NF-001"                   // NOT_FOUND 404: no such path, or a cloud path with another serial
	CodeNoReference   = "NF-002"                   // NOT_FOUND 404: no transaction with that transaction_reference
	CodeMethod        = "NF-003"                   // NOT_FOUND 405: the path exists with another method
	CodeBusy          = terminal.CodeBusy          // TERMINAL 409: another transaction is running
	CodeNothingActive = terminal.CodeNothingActive // TERMINAL 409: abort found nothing it can abort
	CodeInternal      = "TER-999"                  // TERMINAL 500: the error_500 and approve_then_500 faults
	// ACQUIRER, HTTP 400: lifecycle refusals, as the acquirer would give them.
	CodeOpNotAllowed  = "E041" // the original's state does not allow the operation (research §7 "E041 operation not allowed")
	CodeAlreadyVoided = "E048" // the original was already voided or reversed (research §7 "E048 already reversed")
	CodeRefundWindow  = "E016" // refund after 120 days (research §7 "E016 refund not available")
)

// apiError is an error answer: an HTTP status and a LinkFailure body.
type apiError struct {
	status int
	lf     terminal.LinkFailure
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s/%s: %s", e.status, e.lf.Type, e.lf.Code, e.lf.Message)
}

func newErr(status int, typ, code, param, format string, args ...any) *apiError {
	return &apiError{status: status, lf: terminal.LinkFailure{
		Type: typ, Code: code, Param: param, Message: fmt.Sprintf(format, args...),
	}}
}

func paramErr(code, param, format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, terminal.TypeParameter, code, param, format, args...)
}

func acquirerErr(code, param, format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, terminal.TypeAcquirer, code, param, format, args...)
}

func busyErr() *apiError {
	return newErr(http.StatusConflict, terminal.TypeTerminal, CodeBusy, "", "another transaction is in progress on the terminal")
}

func notFoundErr(code, param, format string, args ...any) *apiError {
	return newErr(http.StatusNotFound, terminal.TypeNotFound, code, param, format, args...)
}
