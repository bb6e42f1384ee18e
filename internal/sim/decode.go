package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/terminal"
)

// Decoding is strict, as a peer that posbridge's own validation is tested
// against should be: a body must be one JSON object with no duplicate keys,
// no unknown fields, no trailing data and the right types; amounts are
// checked field by field so the error names the field.

// maxDepth bounds nesting; no valid body nests deeper than 3.
const maxDepth = 16

// checkSyntax verifies that b is exactly one JSON object without duplicate
// keys at any level.
func checkSyntax(b []byte) *apiError {
	if len(bytes.TrimSpace(b)) == 0 {
		return paramErr(CodeMalformed, "", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return paramErr(CodeMalformed, "", "the body is not valid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return paramErr(CodeMalformed, "", "the body must be a JSON object")
	}
	if e := walkObject(dec, "", 1); e != nil {
		return e
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return paramErr(CodeMalformed, "", "unexpected data after the JSON object")
	}
	return nil
}

// walkObject reads the members of an object whose '{' was consumed.
func walkObject(dec *json.Decoder, path string, depth int) *apiError {
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return paramErr(CodeMalformed, path, "the body is not valid JSON")
		}
		key, _ := tok.(string)
		p := join(path, key)
		if seen[key] {
			return paramErr(CodeMalformed, p, "duplicate key %q", p)
		}
		seen[key] = true
		if e := walkValue(dec, p, depth); e != nil {
			return e
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return paramErr(CodeMalformed, path, "the body is not valid JSON")
	}
	return nil
}

func walkValue(dec *json.Decoder, path string, depth int) *apiError {
	if depth > maxDepth {
		return paramErr(CodeMalformed, path, "the body nests too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return paramErr(CodeMalformed, path, "the body is not valid JSON")
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, path, depth+1)
	case '[':
		for dec.More() {
			if e := walkValue(dec, path+"[]", depth+1); e != nil {
				return e
			}
		}
		if _, err := dec.Token(); err != nil {
			return paramErr(CodeMalformed, path, "the body is not valid JSON")
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decodeStrict decodes b (already through checkSyntax) into v, refusing
// unknown fields and wrong types.
func decodeStrict(b []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			field := te.Field
			return paramErr(CodeMalformed, field, "%s: must be of type %s", orBody(field), jsonType(te.Type.Kind()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return paramErr(CodeMalformed, name, "unknown field %q", name)
		}
		return paramErr(CodeMalformed, "", "the body does not match the endpoint's shape")
	}
	return nil
}

func orBody(field string) string {
	if field == "" {
		return "body"
	}
	return field
}

func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Bool:
		return "boolean"
	}
	return k.String()
}

// amountRule says what an endpoint's amount may hold.
type amountRule struct {
	required  bool // the amount object must be present
	tip       bool // amount.tip is required (> 0); otherwise it is refused
	extra     bool // extra_taxes are allowed
	zeroTotal bool // a total of 0 is allowed (re-authorization: extends validity)
}

// ruleFor returns an endpoint's amount rule
// (seeds/kushki-one-smartpos-payment-api.txt, "Amount Structure" and the
// endpoint reference). A void carries no amount (wire.go VoidRequest), so an
// amount there is an unknown field.
func ruleFor(ep terminal.Endpoint) amountRule {
	switch ep {
	case terminal.EndpointCharge, terminal.EndpointAuthorization:
		return amountRule{required: true, extra: true}
	case terminal.EndpointCapture:
		return amountRule{required: true}
	case terminal.EndpointReAuthorization:
		return amountRule{required: true, zeroTotal: true}
	case terminal.EndpointPosTip:
		return amountRule{required: true, tip: true, extra: true}
	}
	return amountRule{} // refund: optional
}

// checkAmount validates the raw amount object of an endpoint field by field
// in currency cur. raw is nil when the body has no amount.
func checkAmount(raw json.RawMessage, ep terminal.Endpoint, cur money.Currency) *apiError {
	rule := ruleFor(ep)
	if raw == nil || string(raw) == "null" {
		if rule.required {
			return paramErr(CodeMissing, "amount", "amount is required")
		}
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return paramErr(CodeMalformed, "amount", "amount must be an object")
	}
	if e := onlyKeys(m, "amount", "iva", "subtotal_iva", "subtotal_iva0", "tip", "extra_taxes"); e != nil {
		return e
	}
	places, _ := cur.Places()
	var total money.Decimal
	for _, k := range []string{"iva", "subtotal_iva", "subtotal_iva0"} {
		v, ok := m[k]
		if !ok {
			return paramErr(CodeMissing, "amount."+k, "amount.%s is required (use 0 when it does not apply)", k)
		}
		d, e := checkValue(v, "amount."+k, cur, places)
		if e != nil {
			return e
		}
		total = total.Add(d)
	}
	if v, ok := m["tip"]; ok {
		if !rule.tip {
			return paramErr(CodeNotAllowed, "amount.tip", "amount.tip is only allowed on /pos_tip")
		}
		d, e := checkValue(v, "amount.tip", cur, places)
		if e != nil {
			return e
		}
		if d.Sign() <= 0 {
			return paramErr(CodeNotPositive, "amount.tip", "amount.tip must be greater than 0")
		}
		total = total.Add(d)
	} else if rule.tip {
		return paramErr(CodeMissing, "amount.tip", "/pos_tip needs amount.tip")
	}
	if v, ok := m["extra_taxes"]; ok {
		if !rule.extra {
			return paramErr(CodeNotAllowed, "amount.extra_taxes", "amount.extra_taxes is only allowed on /charge, /authorization and /pos_tip")
		}
		var x map[string]json.RawMessage
		if string(v) == "null" || json.Unmarshal(v, &x) != nil {
			return paramErr(CodeMalformed, "amount.extra_taxes", "amount.extra_taxes must be an object")
		}
		if e := onlyKeys(x, "amount.extra_taxes", "airport_tax", "iac", "ice", "travel_agency"); e != nil {
			return e
		}
		for _, k := range sortedKeys(x) {
			d, e := checkValue(x[k], "amount.extra_taxes."+k, cur, places)
			if e != nil {
				return e
			}
			total = total.Add(d)
		}
	}
	if total.Cmp(money.Max) > 0 {
		return paramErr(CodeAmountValue, "amount", "the amount's total is too large")
	}
	if total.Sign() <= 0 && !rule.zeroTotal {
		return paramErr(CodeNotPositive, "amount", "Amount must be a value greater than 0")
	}
	return nil
}

func onlyKeys(m map[string]json.RawMessage, path string, allowed ...string) *apiError {
	for _, k := range sortedKeys(m) {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return paramErr(CodeMalformed, path+"."+k, "unknown field %q", path+"."+k)
		}
	}
	return nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkValue parses one amount value: a JSON number, non-negative, with at
// most places decimals.
func checkValue(raw json.RawMessage, field string, cur money.Currency, places int) (money.Decimal, *apiError) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return money.Decimal{}, paramErr(CodeMalformed, field, "%s must be a number", field)
	}
	d, err := money.Parse(s)
	switch {
	case errors.Is(err, money.ErrPrecision):
		return d, paramErr(CodeAmountValue, field, "%s has more than %d decimal places for %s", field, places, cur)
	case errors.Is(err, money.ErrRange):
		return d, paramErr(CodeAmountValue, field, "%s is out of range", field)
	case err != nil:
		return d, paramErr(CodeMalformed, field, "%s must be a number", field)
	case d.Sign() < 0:
		return d, paramErr(CodeAmountValue, field, "%s must not be negative", field)
	case d.Places() > places:
		return d, paramErr(CodeAmountValue, field, "%s has more than %d decimal places for %s", field, places, cur)
	}
	return d, nil
}

// checkID validates a client_transaction_id: a UUID in its canonical
// 36-character form (seeds: "UUID v4 identifier generated by your checkout
// system"; any version is accepted).
func checkID(id string) *apiError {
	if id == "" {
		return paramErr(CodeMissing, "client_transaction_id", "client_transaction_id is required")
	}
	if len(id) != 36 {
		return paramErr(CodeBadID, "client_transaction_id", "client_transaction_id must be a UUID")
	}
	if _, err := uuid.Parse(id); err != nil {
		return paramErr(CodeBadID, "client_transaction_id", "client_transaction_id must be a UUID")
	}
	return nil
}

// payReq is a decoded, validated payment request.
type payReq struct {
	ep     terminal.Endpoint
	id     string
	ref    string          // follow-ups: the original's transaction_reference
	amount *payment.Amount // nil: void, or a refund of the remainder
	// fingerprint identifies the request for idempotency: the endpoint and
	// the canonical re-encoding of the decoded body, so key order and number
	// spelling ("12.5", "12.50") do not matter.
	fingerprint string
}

// decodePayment decodes and validates the plaintext body of a payment
// endpoint. A body that fails is answered with the returned error and never
// reaches the terminal's state.
func decodePayment(ep terminal.Endpoint, body []byte, cur money.Currency) (*payReq, *apiError) {
	if e := checkSyntax(body); e != nil {
		return nil, e
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, paramErr(CodeMalformed, "", "the body must be a JSON object")
	}
	if ep != terminal.EndpointVoid { // a void's amount is an unknown field, named by decodeStrict
		if e := checkAmount(top["amount"], ep, cur); e != nil {
			return nil, e
		}
	}
	req := &payReq{ep: ep}
	var v any
	switch ep {
	case terminal.EndpointCharge:
		var r terminal.ChargeRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.amount, v = r.ClientTransactionID, &r.Amount, r
	case terminal.EndpointAuthorization:
		var r terminal.AuthorizationRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.amount, v = r.ClientTransactionID, &r.Amount, r
	case terminal.EndpointCapture:
		var r terminal.CaptureRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.ref, req.amount, v = r.ClientTransactionID, r.TransactionReference, &r.Amount, r
	case terminal.EndpointReAuthorization:
		var r terminal.ReAuthorizationRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.ref, req.amount, v = r.ClientTransactionID, r.TransactionReference, &r.Amount, r
	case terminal.EndpointPosTip:
		var r terminal.PosTipRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.ref, req.amount, v = r.ClientTransactionID, r.TransactionReference, &r.Amount, r
	case terminal.EndpointVoid:
		var r terminal.VoidRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.ref, v = r.ClientTransactionID, r.TransactionReference, r
	case terminal.EndpointRefund:
		var r terminal.RefundRequest
		if e := decodeStrict(body, &r); e != nil {
			return nil, e
		}
		req.id, req.ref, req.amount, v = r.ClientTransactionID, r.TransactionReference, r.Amount, r
	default:
		return nil, notFoundErr(CodeNoRoute, "", "no such endpoint")
	}
	if e := checkID(req.id); e != nil {
		return nil, e
	}
	if ep != terminal.EndpointCharge && ep != terminal.EndpointAuthorization && req.ref == "" {
		return nil, paramErr(CodeMissing, "transaction_reference", "transaction_reference is required")
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return nil, paramErr(CodeMalformed, "", "the body cannot be re-encoded: %v", err)
	}
	req.fingerprint = string(ep) + " " + string(canon)
	return req, nil
}

// decodeAbort accepts no body, or an empty JSON object (the cloud POST
// /sync/abort signs the literal {}; research §3).
func decodeAbort(body []byte) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if e := checkSyntax(body); e != nil {
		return e
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m) != 0 {
		return paramErr(CodeMalformed, "", "abort takes no parameters")
	}
	return nil
}

// searchType reports whether the online search accepts a transaction_type:
// the raw card-present API's list (research §4) plus void and refund, which
// the simulator also records.
func searchType(t string) bool {
	switch t {
	case "balanceInquiry", "capture", "charge", "checkIn", "checkout", "preAuth",
		"reAuthorization", "tip", "posTip", "void", "refund":
		return true
	}
	return false
}

// decodeSearch decodes and validates a search body.
func decodeSearch(body []byte, local bool) (*terminal.SearchRequest, *apiError) {
	if e := checkSyntax(body); e != nil {
		return nil, e
	}
	var r terminal.SearchRequest
	if e := decodeStrict(body, &r); e != nil {
		return nil, e
	}
	f := r.Filters
	switch {
	case r.Page < 1:
		return nil, paramErr(CodeSearchParam, "page", "page must be 1 or more")
	case r.Size < 1 || r.Size > terminal.MaxSearchSize:
		return nil, paramErr(CodeSearchParam, "size", "size must be between 1 and %d", terminal.MaxSearchSize)
	case f.StartDate < 0:
		return nil, paramErr(CodeSearchParam, "filters.start_date", "filters.start_date must be Unix milliseconds")
	case f.EndDate < 0:
		return nil, paramErr(CodeSearchParam, "filters.end_date", "filters.end_date must be Unix milliseconds")
	case f.StartDate != 0 && f.EndDate != 0 && f.StartDate > f.EndDate:
		return nil, paramErr(CodeSearchParam, "filters.start_date", "filters.start_date is after filters.end_date")
	case f.TransactionType != "" && local:
		// seeds/kushki-one-smartpos-payment-api.txt: the local search "Does
		// not support transaction_type as a filter".
		return nil, paramErr(CodeSearchParam, "filters.transaction_type", "transaction_search_local does not support transaction_type as a filter")
	case f.TransactionType != "" && !searchType(f.TransactionType):
		return nil, paramErr(CodeSearchParam, "filters.transaction_type", "unknown transaction_type %q", f.TransactionType)
	}
	return &r, nil
}

// errString is a short description of an *apiError for logs.
func errString(e *apiError) string {
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s", e.lf.Type, e.lf.Code)
}
