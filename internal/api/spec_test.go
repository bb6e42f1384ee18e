package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/payment"
)

// TestValidatorIsNotBlind feeds the response validator answers that break
// the document, so a passing suite means something: each must be caught.
func TestValidatorIsNotBlind(t *testing.T) {
	s := loadSpec(t)
	hdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	const txn = `{"client_transaction_id":"x","operation":"charge","terminal":"lane1","status":"approved","currency":"PEN",` +
		`"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5},"created_at":"2026-03-10T10:00:00-05:00","updated_at":"2026-03-10T10:00:00-05:00","events":[]}`
	good := []struct {
		method, path string
		r            response
	}{
		{"POST", "/v1/charges", response{200, hdr(), []byte(txn)}},
		{"POST", "/v1/charges", response{409, hdr(), []byte(`{"error":{"code":"terminal_busy","message":"m","running_id":"y"}}`)}},
		{"GET", "/nothing", response{404, hdr(), []byte(`{"error":{"code":"not_found","message":"m"}}`)}},
	}
	for _, c := range good {
		if p := s.problems(c.method, c.path, &c.r); len(p) != 0 {
			t.Errorf("%s %s %d: got problems %v, want none", c.method, c.path, c.r.Status, p)
		}
	}
	bad := []struct {
		name         string
		method, path string
		r            response
	}{
		{"undocumented status", "POST", "/v1/charges", response{418, hdr(), []byte(`{"error":{"code":"bad_request","message":"m"}}`)}},
		{"undocumented field", "POST", "/v1/charges", response{200, hdr(), []byte(strings.Replace(txn, `"status"`, `"colour":"red","status"`, 1))}},
		{"status outside the enum", "POST", "/v1/charges", response{200, hdr(), []byte(strings.Replace(txn, `"approved"`, `"paid"`, 1))}},
		{"empty currency", "POST", "/v1/charges", response{200, hdr(), []byte(strings.Replace(txn, `"PEN"`, `""`, 1))}},
		{"amount as a string", "POST", "/v1/charges", response{200, hdr(), []byte(strings.Replace(txn, `"subtotal_iva0":5`, `"subtotal_iva0":"5"`, 1))}},
		{"missing events", "POST", "/v1/charges", response{200, hdr(), []byte(strings.Replace(txn, `,"events":[]`, ``, 1))}},
		{"unknown error code", "POST", "/v1/charges", response{409, hdr(), []byte(`{"error":{"code":"busy","message":"m"}}`)}},
		{"no X-Request-Id", "GET", "/healthz", response{200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"status":"ok"}`)}},
		{"CORS header", "GET", "/healthz", response{200, hdr("Access-Control-Allow-Origin", "*"), []byte(`{"status":"ok"}`)}},
		{"stack trace", "GET", "/healthz", response{500, hdr(), []byte(`{"error":{"code":"internal_error","message":"goroutine 1 [running]: main.go:12"}}`)}},
		{"202 without Location", "POST", "/v1/charges", response{202, hdr("Preference-Applied", "respond-async"), []byte(`{"client_transaction_id":"x","location":"/v1/transactions/x"}`)}},
		{"401 without WWW-Authenticate", "GET", "/v1/terminals", response{401, hdr(), []byte(`{"error":{"code":"unauthorized","message":"m"}}`)}},
		{"text body", "GET", "/readyz", response{200, http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"r"}}, []byte("ok")}},
		{"500 on an unknown route", "GET", "/nothing", response{500, hdr(), []byte(`{"error":{"code":"internal_error","message":"m"}}`)}},
	}
	for _, c := range bad {
		if p := s.problems(c.method, c.path, &c.r); len(p) == 0 {
			t.Errorf("%s: the validator found nothing wrong", c.name)
		}
	}
}

// TestRequestValidatorIsNotBlind: the check that every accepted request
// matches the document must reject requests the document forbids.
func TestRequestValidatorIsNotBlind(t *testing.T) {
	s := loadSpec(t)
	post := func(path, body string) request { return request{Method: http.MethodPost, Path: path, Body: body} }
	for _, rq := range []request{
		post("/v1/charges", `{"amount":{"subtotal_iva0":5}}`),
		post("/v1/transactions/x/void", ""),
		post("/v1/terminals/lane1/search", `{"source":"local","size":500}`),
		{Method: http.MethodGet, Path: "/v1/transactions?limit=500&status=approved"},
		{Method: http.MethodGet, Path: "/v1/transactions/x?wait=1m30s"},
	} {
		if err := s.requestProblem(rq); err != nil {
			t.Errorf("%s %s: %v, want valid", rq.Method, rq.Path, err)
		}
	}
	for _, rq := range []request{
		post("/v1/charges", `{}`),
		post("/v1/charges", `{"amount":{"subtotal_iva0":"5"}}`),
		post("/v1/charges", `{"amount":{"subtotal_iva0":-5}}`),
		post("/v1/charges", `{"amount":{"subtotal_iva0":5},"colour":1}`),
		post("/v1/transactions/x/cancel", `{"amount":{"subtotal_iva0":5}}`),
		post("/v1/terminals/lane1/search", `{"source":"cloud"}`),
		post("/v1/terminals/lane1/abort", `{"force":true}`),
		{Method: http.MethodGet, Path: "/v1/transactions?limit=501"},
		{Method: http.MethodGet, Path: "/v1/transactions?status=paid"},
		{Method: http.MethodGet, Path: "/v1/transactions/x?wait=soon"},
	} {
		if err := s.requestProblem(rq); err == nil {
			t.Errorf("%s %s %s: the validator found nothing wrong", rq.Method, rq.Path, rq.Body)
		}
	}
}

// TestStatusTable pins the one table of HTTP statuses and checks it covers
// exactly the error codes api/openapi.yaml lists.
func TestStatusTable(t *testing.T) {
	want := map[payment.Code]int{
		"bad_request": 400, "validation_failed": 422, "idempotency_conflict": 422, "not_found": 404,
		"invalid_state": 409, "terminal_busy": 409, "nothing_to_abort": 409, "unauthorized": 401,
		"forbidden": 403, "method_not_allowed": 405, "unsupported_media_type": 415, "request_too_large": 413,
		"terminal_error": 502, "terminal_unreachable": 503, "journal_unavailable": 503, "shutting_down": 503,
		"outcome_unknown": 504, "internal_error": 500,
	}
	for code, status := range want {
		if got := api.HTTPStatus(code); got != status {
			t.Errorf("HTTPStatus(%s): got %d, want %d", code, got, status)
		}
	}
	enum := loadSpec(t).doc.Components.Schemas["ErrorCode"].Value.Enum
	if len(enum) != len(want) {
		t.Errorf("ErrorCode enum: got %d codes, want %d", len(enum), len(want))
	}
	for _, v := range enum {
		if _, ok := want[payment.Code(v.(string))]; !ok {
			t.Errorf("ErrorCode %v is in api/openapi.yaml but not in the table", v)
		}
	}
	for _, c := range []payment.Code{payment.CodeValidation, payment.CodeBadRequest, payment.CodeNotFound,
		payment.CodeInvalidState, payment.CodeTerminalBusy, payment.CodeIdempotencyConflict, payment.CodeTerminalUnreachable,
		payment.CodeTerminalError, payment.CodeOutcomeUnknown, payment.CodeNothingToAbort, payment.CodeJournalUnavailable,
		payment.CodeShuttingDown, payment.CodeUnauthorized, payment.CodeForbidden, payment.CodeUnsupportedMedia,
		payment.CodeTooLarge, payment.CodeMethodNotAllowed, payment.CodeInternal} {
		if _, ok := want[c]; !ok {
			t.Errorf("payment code %s has no HTTP status in the table", c)
		}
	}
}
