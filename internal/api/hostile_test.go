package api_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/posbridge/posbridge/internal/api"
)

// TestHostileRequests sends malformed and hostile requests to the real stack
// and checks each gets the right 4xx and code, reaches the terminal not at
// all, and matches the OpenAPI document (do and raw validate every answer).
func TestHostileRequests(t *testing.T) {
	const token = "tok-0123456789abcdef"
	b, s := startBackendAPI(t, func(c *api.Config) {
		c.Token = token
		c.MaxBodyBytes = 4096
		c.AllowedOrigins = []string{"https://pos.example"}
	})
	auth := map[string]string{"Authorization": "Bearer " + token}
	post := func(path, body string) *response {
		t.Helper()
		return s.do(t, request{Method: http.MethodPost, Path: path, Body: body, Header: auth})
	}

	// Originals the follow-ups refer to.
	chargeID := newID()
	if r := post("/v1/charges", chargeBody(chargeID, "20")); r.Status != http.StatusOK {
		t.Fatalf("charge: got %d %s", r.Status, r.Body)
	}
	authID, captured := newID(), newID()
	if r := post("/v1/authorizations", `{"client_transaction_id":"`+authID+`","amount":{"subtotal_iva0":100}}`); r.Status != http.StatusOK {
		t.Fatalf("authorization: got %d %s", r.Status, r.Body)
	}
	if r := post("/v1/authorizations", `{"client_transaction_id":"`+captured+`","amount":{"subtotal_iva0":60}}`); r.Status != http.StatusOK {
		t.Fatalf("authorization: got %d %s", r.Status, r.Body)
	}
	if r := post("/v1/transactions/"+captured+"/capture", `{"amount":{"subtotal_iva0":60}}`); r.Status != http.StatusOK {
		t.Fatalf("capture: got %d %s", r.Status, r.Body)
	}

	port := strconv.Itoa(s.port)
	valid := chargeBody(newID(), "12")
	wire := func(host string, http10 bool) string {
		proto, hostLine := "HTTP/1.1", "Host: "+host+"\r\n"
		if http10 {
			proto, hostLine = "HTTP/1.0", ""
		}
		return "POST /v1/charges " + proto + "\r\n" + hostLine + "Authorization: Bearer " + token + "\r\n" +
			"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(valid)) + "\r\nConnection: close\r\n\r\n" + valid
	}
	big := `{"amount":{"subtotal_iva0":5},"metadata":{"x":"` + strings.Repeat("x", 5000) + `"}}`
	chunked := "POST /v1/charges HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nAuthorization: Bearer " + token + "\r\n" +
		"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)
	lastByte := token[:len(token)-1] + string(token[len(token)-1]+1)
	deep := strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20)
	metadata := make([]string, 21)
	for i := range metadata {
		metadata[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	tooMany := `{"amount":{"subtotal_iva0":5},"metadata":{` + strings.Join(metadata, ",") + `}}`

	cases := []struct {
		name   string
		rq     request
		raw    string // sent as is instead of rq, when set
		status int
		code   string
		field  string
	}{
		// Bodies that cannot be read.
		{name: "bad JSON", rq: request{Body: `{"amount":`}, status: 400, code: "bad_request"},
		{name: "not an object", rq: request{Body: `[1,2]`}, status: 400, code: "bad_request"},
		{name: "null body", rq: request{Body: `null`}, status: 400, code: "bad_request"},
		{name: "id of the wrong type", rq: request{Body: `{"client_transaction_id":123,"amount":{"subtotal_iva0":5}}`}, status: 400, code: "bad_request", field: "client_transaction_id"},
		{name: "amount of the wrong type", rq: request{Body: `{"amount":"12"}`}, status: 400, code: "bad_request", field: "amount"},
		{name: "null amount", rq: request{Body: `{"amount":null}`}, status: 400, code: "bad_request", field: "amount"},
		{name: "unknown field", rq: request{Body: `{"amount":{"subtotal_iva0":5},"colour":"red"}`}, status: 400, code: "bad_request", field: "colour"},
		{name: "unknown amount field", rq: request{Body: `{"amount":{"subtotal_iva0":5,"vat":1}}`}, status: 400, code: "bad_request", field: "amount.vat"},
		{name: "duplicate key", rq: request{Body: `{"amount":{"subtotal_iva0":500},"amount":{"subtotal_iva0":5}}`}, status: 400, code: "bad_request", field: "amount"},
		{name: "duplicate nested key", rq: request{Body: `{"amount":{"subtotal_iva0":500,"subtotal_iva0":5}}`}, status: 400, code: "bad_request", field: "amount.subtotal_iva0"},
		{name: "duplicate key spelled with an escape", rq: request{Body: `{"amount":{"subtotal_iva0":5},"\u0061mount":{"subtotal_iva0":5}}`}, status: 400, code: "bad_request", field: "amount"},
		{name: "case-folded key", rq: request{Body: `{"AMOUNT":{"subtotal_iva0":5}}`}, status: 400, code: "bad_request", field: "AMOUNT"},
		{name: "case-folded nested key", rq: request{Body: `{"amount":{"Subtotal_IVA0":5}}`}, status: 400, code: "bad_request", field: "amount.Subtotal_IVA0"},
		{name: "trailing object", rq: request{Body: `{"amount":{"subtotal_iva0":5}} {}`}, status: 400, code: "bad_request"},
		{name: "trailing garbage", rq: request{Body: `{"amount":{"subtotal_iva0":5}}x`}, status: 400, code: "bad_request"},
		{name: "lone surrogate", rq: request{Body: `{"amount":{"subtotal_iva0":5},"metadata":{"n":"\ud800"}}`}, status: 400, code: "bad_request"},
		{name: "invalid UTF-8", rq: request{Body: "{\"amount\":{\"subtotal_iva0\":5},\"metadata\":{\"n\":\"\xff\"}}"}, status: 400, code: "bad_request"},
		{name: "deep nesting", rq: request{Body: deep}, status: 400, code: "bad_request"},
		{name: "metadata value not a string", rq: request{Body: `{"amount":{"subtotal_iva0":5},"metadata":{"n":1}}`}, status: 400, code: "bad_request", field: "metadata.n"},
		{name: "huge body", rq: request{Body: `{"amount":{"subtotal_iva0":5},"metadata":{"x":"` + strings.Repeat("x", 5000) + `"}}`}, status: 413, code: "request_too_large"},
		{name: "text/plain", rq: request{Body: valid, Header: map[string]string{"Content-Type": "text/plain"}}, status: 415, code: "unsupported_media_type"},
		{name: "no content type", rq: request{Body: valid, NoContentType: true}, status: 415, code: "unsupported_media_type"},
		{name: "json in latin1", rq: request{Body: valid, Header: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}}, status: 415, code: "unsupported_media_type"},

		// Browsers and DNS rebinding.
		{name: "foreign Origin", rq: request{Body: valid, Header: map[string]string{"Origin": "https://evil.example"}}, status: 403, code: "forbidden"},
		{name: "Origin null", rq: request{Body: valid, Header: map[string]string{"Origin": "null"}}, status: 403, code: "forbidden"},
		{name: "Sec-Fetch-Site cross-site", rq: request{Body: valid, Header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, status: 403, code: "forbidden"},
		{name: "Sec-Fetch-Site same-site", rq: request{Body: valid, Header: map[string]string{"Sec-Fetch-Site": "same-site"}}, status: 403, code: "forbidden"},
		{name: "private network preflight", rq: request{Method: http.MethodOptions, Path: "/v1/charges",
			Header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"}}, status: 403, code: "forbidden"},
		{name: "Host evil.example", rq: request{Body: valid, Host: "evil.example:" + port}, status: 403, code: "forbidden"},
		{name: "Host localhost.", rq: request{Body: valid, Host: "localhost.:" + port}, status: 403, code: "forbidden"},
		{name: "Host LOCALHOST", rq: request{Body: valid, Host: "LOCALHOST:" + port}, status: 403, code: "forbidden"},
		{name: "Host 127.0.0.1.nip.io", rq: request{Body: valid, Host: "127.0.0.1.nip.io:" + port}, status: 403, code: "forbidden"},
		{name: "Host IPv4-mapped IPv6", rq: request{Body: valid, Host: "[::ffff:127.0.0.1]:" + port}, status: 403, code: "forbidden"},
		{name: "Host without port", rq: request{Body: valid, Host: "127.0.0.1"}, status: 403, code: "forbidden"},
		{name: "Host other port", rq: request{Body: valid, Host: "127.0.0.1:1"}, status: 403, code: "forbidden"},
		{name: "Host :PORT", raw: wire(":"+port, false), status: 403, code: "forbidden"},
		{name: "Host empty", raw: wire("", false), status: 403, code: "forbidden"},
		{name: "no Host (HTTP/1.0)", raw: wire("", true), status: 403, code: "forbidden"},
		{name: "huge chunked body", raw: chunked, status: 413, code: "request_too_large"},

		// The bearer token.
		{name: "no token", rq: request{Body: valid, Header: map[string]string{"Authorization": ""}}, status: 401, code: "unauthorized"},
		{name: "wrong token", rq: request{Body: valid, Header: map[string]string{"Authorization": "Bearer nope"}}, status: 401, code: "unauthorized"},
		{name: "token with the last byte changed", rq: request{Body: valid, Header: map[string]string{"Authorization": "Bearer " + lastByte}}, status: 401, code: "unauthorized"},
		{name: "token as Basic", rq: request{Body: valid, Header: map[string]string{"Authorization": "Basic " + token}}, status: 401, code: "unauthorized"},
		{name: "token on a GET", rq: request{Method: http.MethodGet, Path: "/v1/transactions", Header: map[string]string{"Authorization": "Bearer x" + token}}, status: 401, code: "unauthorized"},
		{name: "token on readyz", rq: request{Method: http.MethodGet, Path: "/readyz", Header: map[string]string{"Authorization": ""}}, status: 401, code: "unauthorized"},

		// Amounts.
		{name: "3 decimals in PEN", rq: request{Body: `{"amount":{"subtotal_iva0":12.345}}`}, status: 422, code: "validation_failed", field: "amount.subtotal_iva0"},
		{name: "5 decimals", rq: request{Body: `{"amount":{"iva":1.23456,"subtotal_iva0":5}}`}, status: 422, code: "validation_failed", field: "amount.iva"},
		{name: "negative", rq: request{Body: `{"amount":{"iva":-1,"subtotal_iva0":5}}`}, status: 422, code: "validation_failed", field: "amount.iva"},
		{name: "zero", rq: request{Body: `{"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":0}}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "empty amount", rq: request{Body: `{"amount":{}}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "no amount", rq: request{Body: `{}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "string amount", rq: request{Body: `{"amount":{"subtotal_iva0":"12.50"}}`}, status: 400, code: "bad_request", field: "amount.subtotal_iva0"},
		{name: "NaN", rq: request{Body: `{"amount":{"subtotal_iva0":NaN}}`}, status: 400, code: "bad_request"},
		{name: "Infinity", rq: request{Body: `{"amount":{"subtotal_iva0":Infinity}}`}, status: 400, code: "bad_request"},
		{name: "1e999", rq: request{Body: `{"amount":{"subtotal_iva0":1e999}}`}, status: 422, code: "validation_failed", field: "amount.subtotal_iva0"},
		{name: "too large", rq: request{Body: `{"amount":{"subtotal_iva0":100000000001}}`}, status: 422, code: "validation_failed", field: "amount.subtotal_iva0"},
		{name: "boolean amount", rq: request{Body: `{"amount":{"subtotal_iva0":true}}`}, status: 400, code: "bad_request", field: "amount.subtotal_iva0"},
		{name: "tip on a charge", rq: request{Body: `{"amount":{"subtotal_iva0":10,"tip":1}}`}, status: 422, code: "validation_failed", field: "amount.tip"},
		{name: "too much metadata", rq: request{Body: tooMany}, status: 422, code: "validation_failed", field: "metadata"},

		// Lifecycle rules.
		{name: "extra_taxes on a refund", rq: request{Path: "/v1/transactions/" + chargeID + "/refund", Body: `{"amount":{"subtotal_iva0":1,"extra_taxes":{"iac":1}}}`}, status: 422, code: "validation_failed", field: "amount.extra_taxes"},
		{name: "capture over 110 %", rq: request{Path: "/v1/transactions/" + authID + "/capture", Body: `{"amount":{"subtotal_iva0":110.01}}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "capture of a charge", rq: request{Path: "/v1/transactions/" + chargeID + "/capture", Body: `{"amount":{"subtotal_iva0":1}}`}, status: 409, code: "invalid_state"},
		{name: "second capture", rq: request{Path: "/v1/transactions/" + captured + "/capture", Body: `{"amount":{"subtotal_iva0":1}}`}, status: 409, code: "invalid_state"},
		{name: "refund over what remains", rq: request{Path: "/v1/transactions/" + chargeID + "/refund", Body: `{"amount":{"subtotal_iva0":20.01}}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "void too early", rq: request{Path: "/v1/transactions/" + chargeID + "/void"}, status: 409, code: "invalid_state"},
		{name: "void with an amount", rq: request{Path: "/v1/transactions/" + chargeID + "/void", Body: `{"amount":{"subtotal_iva0":1}}`}, status: 422, code: "validation_failed", field: "amount"},
		{name: "cancel with an amount", rq: request{Path: "/v1/transactions/" + chargeID + "/cancel", Body: `{"amount":{"subtotal_iva0":1}}`}, status: 400, code: "bad_request", field: "amount"},
		{name: "terminal on a follow-up", rq: request{Path: "/v1/transactions/" + chargeID + "/refund", Body: `{"terminal":"lane1"}`}, status: 400, code: "bad_request", field: "terminal"},
		{name: "follow-up with the original's id", rq: request{Path: "/v1/transactions/" + chargeID + "/refund", Body: `{"client_transaction_id":"` + chargeID + `"}`}, status: 422, code: "validation_failed", field: "client_transaction_id"},
		{name: "unknown original", rq: request{Path: "/v1/transactions/" + newID() + "/refund"}, status: 404, code: "not_found"},
		{name: "original not a UUID", rq: request{Path: "/v1/transactions/nope/void"}, status: 404, code: "not_found"},
		{name: "unknown terminal", rq: request{Body: `{"terminal":"lane9","amount":{"subtotal_iva0":5}}`}, status: 404, code: "not_found", field: "terminal"},
		{name: "invalid client_transaction_id", rq: request{Body: `{"client_transaction_id":"abc","amount":{"subtotal_iva0":5}}`}, status: 422, code: "validation_failed", field: "client_transaction_id"},
		{name: "UUID without dashes", rq: request{Body: `{"client_transaction_id":"` + strings.ReplaceAll(newID(), "-", "") + `","amount":{"subtotal_iva0":5}}`}, status: 422, code: "validation_failed", field: "client_transaction_id"},
		{name: "same id, different body", rq: request{Body: chargeBody(chargeID, "21")}, status: 422, code: "idempotency_conflict"},
		{name: "same id, other operation", rq: request{Path: "/v1/authorizations", Body: chargeBody(chargeID, "20")}, status: 422, code: "idempotency_conflict"},

		// Other routes.
		{name: "bad wait", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID + "?wait=banana"}, status: 400, code: "bad_request", field: "wait"},
		{name: "negative wait", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID + "?wait=-5s"}, status: 400, code: "bad_request", field: "wait"},
		{name: "signed wait", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID + "?wait=%2B5s"}, status: 400, code: "bad_request", field: "wait"},
		{name: "huge wait", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID + "?wait=99999999999h"}, status: 400, code: "bad_request", field: "wait"},
		{name: "wait twice", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID + "?wait=1s&wait=2s"}, status: 400, code: "bad_request", field: "wait"},
		{name: "unknown transaction", rq: request{Method: http.MethodGet, Path: "/v1/transactions/" + newID()}, status: 404, code: "not_found"},
		{name: "unknown list filter", rq: request{Method: http.MethodGet, Path: "/v1/transactions?colour=red"}, status: 400, code: "bad_request", field: "colour"},
		{name: "bad status filter", rq: request{Method: http.MethodGet, Path: "/v1/transactions?status=paid"}, status: 422, code: "validation_failed", field: "status"},
		{name: "bad from", rq: request{Method: http.MethodGet, Path: "/v1/transactions?from=yesterday"}, status: 400, code: "bad_request", field: "from"},
		{name: "bad limit", rq: request{Method: http.MethodGet, Path: "/v1/transactions?limit=1000"}, status: 422, code: "validation_failed", field: "limit"},
		{name: "bad cursor", rq: request{Method: http.MethodGet, Path: "/v1/transactions?cursor=%%%"}, status: 400, code: "bad_request"},
		{name: "forged cursor", rq: request{Method: http.MethodGet, Path: "/v1/transactions?cursor=AAAA"}, status: 422, code: "validation_failed", field: "cursor"},
		{name: "query on a POST", rq: request{Path: "/v1/charges?debug=1", Body: valid}, status: 400, code: "bad_request", field: "debug"},
		{name: "search without source", rq: request{Path: "/v1/terminals/" + lane + "/search", Body: `{}`}, status: 422, code: "validation_failed", field: "source"},
		{name: "search with a bad source", rq: request{Path: "/v1/terminals/" + lane + "/search", Body: `{"source":"cloud"}`}, status: 422, code: "validation_failed", field: "source"},
		{name: "search size too large", rq: request{Path: "/v1/terminals/" + lane + "/search", Body: `{"source":"local","size":1000}`}, status: 422, code: "validation_failed", field: "size"},
		{name: "search page as a float", rq: request{Path: "/v1/terminals/" + lane + "/search", Body: `{"source":"local","page":1.5}`}, status: 400, code: "bad_request", field: "page"},
		{name: "search with a bad date", rq: request{Path: "/v1/terminals/" + lane + "/search", Body: `{"source":"local","from":"10/03/2026"}`}, status: 400, code: "bad_request", field: "from"},
		{name: "search of an unknown terminal", rq: request{Path: "/v1/terminals/lane9/search", Body: `{"source":"local"}`}, status: 404, code: "not_found"},
		{name: "abort with a body", rq: request{Path: "/v1/terminals/" + lane + "/abort", Body: `{"force":true}`}, status: 400, code: "bad_request", field: "force"},
		{name: "abort of an unknown terminal", rq: request{Path: "/v1/terminals/lane9/abort"}, status: 404, code: "not_found"},
		{name: "PUT a charge", rq: request{Method: http.MethodPut, Path: "/v1/charges", Body: valid}, status: 405, code: "method_not_allowed"},
		{name: "GET a charge route", rq: request{Method: http.MethodGet, Path: "/v1/charges"}, status: 405, code: "method_not_allowed"},
		{name: "PUT an escaped-slash id", rq: request{Method: http.MethodPut, Path: "/v1/transactions/a%2Fb"}, status: 405, code: "method_not_allowed"},
		{name: "unknown path", rq: request{Method: http.MethodGet, Path: "/v2/charges"}, status: 404, code: "not_found"},
	}
	if len(cases) < 30 {
		t.Fatalf("%d cases, want at least 30", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b.terminalCalls()
			var r *response
			if c.raw != "" {
				r = s.raw(t, http.MethodPost, "/v1/charges", c.raw)
			} else {
				rq := c.rq
				if rq.Method == "" {
					rq.Method = http.MethodPost
				}
				if rq.Path == "" {
					rq.Path = "/v1/charges"
				}
				h := map[string]string{"Authorization": "Bearer " + token}
				for k, v := range rq.Header {
					h[k] = v
				}
				if h["Authorization"] == "" {
					delete(h, "Authorization")
				}
				rq.Header = h
				r = s.do(t, rq)
			}
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Field   string `json:"field"`
				} `json:"error"`
			}
			r.json(t, &e)
			if r.Status != c.status || e.Error.Code != c.code {
				t.Errorf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			if c.field != "" && e.Error.Field != c.field {
				t.Errorf("field: got %q, want %q (%s)", e.Error.Field, c.field, e.Error.Message)
			}
			if e.Error.Message == "" {
				t.Error("the error has no message")
			}
			if r.Status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if r.Status == http.StatusMethodNotAllowed && r.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if after := b.terminalCalls(); after != before {
				t.Errorf("terminal calls: got %d, want %d (none)", after, before)
			}
		})
	}

	// The allowed forms still work: [::1] and localhost Hosts, an allowed
	// Origin, same-origin and none fetches, and /healthz without a token.
	for _, rq := range []request{
		{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID, Host: "localhost:" + port, Header: auth},
		{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID, Host: "[::1]:" + port, Header: auth},
		{Method: http.MethodGet, Path: "/v1/transactions/" + chargeID, Header: map[string]string{"Authorization": "bearer " + token, "Origin": "https://POS.example", "Sec-Fetch-Site": "cross-site"}},
		{Method: http.MethodGet, Path: "/v1/terminals", Header: map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "none"}},
		{Method: http.MethodGet, Path: "/v1/terminals", Header: map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "same-origin"}},
		{Method: http.MethodGet, Path: "/healthz"},
	} {
		if r := s.do(t, rq); r.Status != http.StatusOK {
			t.Errorf("%s %s (Host %q, %v): got %d %s, want 200", rq.Method, rq.Path, rq.Host, rq.Header, r.Status, r.Body)
		}
	}
}
