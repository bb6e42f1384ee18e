package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// Request decoding is strict, because encoding/json v1 is lenient where a
// money API must not be (research/anchors-reliability.md §5.3): it keeps the
// last of two duplicate keys, matches field names case-insensitively, replaces
// lone surrogates and invalid UTF-8 with U+FFFD, and a Decoder stops after the
// first value. So a body is first checked as a whole (checkJSON: one valid
// UTF-8 JSON value, no duplicate key at any depth, no lone surrogate escape,
// bounded depth), then read field by field with exact, case-sensitive names
// (object), every value checked for its JSON type, amounts read from their
// number literals into money.Decimal (exact; never a float).
//
// The rule for codes: a body or value that cannot be read (not JSON, wrong
// type, unknown field, not a date) is 400 bad_request; a value that is read
// but breaks a rule (too many decimals, out of range, page < 1) is 422
// validation_failed. Both name the field.

// maxDepth bounds nesting; the deepest valid body (amount.extra_taxes) has 3.
const maxDepth = 10

// maxSearchSize is the largest page a terminal search takes (the simulator's
// and terminal package's limit, internal/sim doc "Searches": size ≤ 500).
const maxSearchSize = 500

// checkJSON checks that b is exactly one JSON value in valid UTF-8, with no
// duplicate object key at any depth, no lone UTF-16 surrogate escape and at
// most maxDepth levels of nesting. It returns a bad_request error naming the
// offending key where there is one.
func checkJSON(b []byte) *payment.Error {
	if !utf8.Valid(b) {
		return badRequest("", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkValue(dec, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "unexpected data after the JSON value")
	}
	if at := loneSurrogate(b); at >= 0 {
		return badRequest("", fmt.Sprintf("a string holds a lone UTF-16 surrogate escape (at byte %d)", at))
	}
	return nil
}

func syntaxError(err error) *payment.Error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return badRequest("", fmt.Sprintf("the body is not valid JSON (at byte %d): %s", se.Offset, se.Error()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "the body is not valid JSON: it ends too early")
	}
	return badRequest("", "the body is not valid JSON")
}

func walkValue(dec *json.Decoder, path string, depth int) *payment.Error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return badRequest(path, fmt.Sprintf("the body is nested more than %d levels deep", maxDepth))
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return syntaxError(err)
			}
			key, _ := kt.(string)
			p := join(path, key)
			if seen[key] {
				return badRequest(p, fmt.Sprintf("duplicate key %q", p))
			}
			seen[key] = true
			if err := walkValue(dec, p, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(err)
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// loneSurrogate returns the offset of the first \uXXXX escape in a string of
// the valid JSON text b that is a UTF-16 surrogate without its pair, or -1.
func loneSurrogate(b []byte) int {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !in {
			in = c == '"'
			continue
		}
		switch c {
		case '"':
			in = false
		case '\\':
			if i+5 >= len(b) || b[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			r := hex4(b[i+2 : i+6])
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					if r2 := hex4(b[i+8 : i+12]); r2 >= 0xDC00 && r2 < 0xE000 {
						i += 11
						continue
					}
				}
				return i
			case r >= 0xDC00 && r < 0xE000:
				return i
			}
			i += 5
		}
	}
	return -1
}

func hex4(b []byte) rune {
	v, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil {
		return -1
	}
	return rune(v)
}

// object is a JSON object that checkJSON accepted, read field by field.
type object struct {
	path   string
	fields map[string]json.RawMessage
}

// parseObject reads raw (already checked by checkJSON) as an object.
func parseObject(raw json.RawMessage, path string) (*object, *payment.Error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, typeError(path, raw, "a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, typeError(path, raw, "a JSON object")
	}
	return &object{path: path, fields: m}, nil
}

// only rejects any field not named in allowed. Names are case-sensitive:
// "Amount" is not "amount" (encoding/json would have matched it).
func (o *object) only(allowed ...string) *payment.Error {
	for k := range o.fields {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if ok {
			continue
		}
		p := join(o.path, k)
		for _, a := range allowed {
			if strings.EqualFold(k, a) {
				return badRequest(p, fmt.Sprintf("unknown field %q: field names are case-sensitive (did you mean %q?)", p, join(o.path, a)))
			}
		}
		return badRequest(p, fmt.Sprintf("unknown field %q", p))
	}
	return nil
}

// typeError says what a value should have been.
func typeError(path string, raw json.RawMessage, want string) *payment.Error {
	got := "something else"
	if len(raw) > 0 {
		switch c := raw[0]; {
		case c == '"':
			got = "a string"
		case c == '{':
			got = "an object"
		case c == '[':
			got = "an array"
		case c == 't' || c == 'f':
			got = "a boolean"
		case c == 'n':
			got = "null"
		default:
			got = "a number"
		}
	}
	name := path
	if name == "" {
		name = "the body"
	}
	return badRequest(path, fmt.Sprintf("%s must be %s, not %s", name, want, got))
}

func (o *object) has(name string) bool { _, ok := o.fields[name]; return ok }

// str returns a string field ("" when absent).
func (o *object) str(name string) (string, *payment.Error) {
	raw, ok := o.fields[name]
	if !ok {
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", typeError(join(o.path, name), raw, "a string")
	}
	return s, nil
}

// decimal returns a number field read exactly (nil when absent).
func (o *object) decimal(name string) (*money.Decimal, *payment.Error) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, nil
	}
	p := join(o.path, name)
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return nil, typeError(p, raw, "a JSON number")
	}
	d, err := money.Parse(string(raw))
	switch {
	case errors.Is(err, money.ErrPrecision):
		return nil, invalid(p, p+": too many decimal places (at most 4, and at most the currency's)")
	case errors.Is(err, money.ErrRange):
		return nil, invalid(p, p+": out of range")
	case err != nil:
		return nil, typeError(p, raw, "a JSON number")
	}
	return &d, nil
}

// integer returns an integer field; present is false when it is absent.
func (o *object) integer(name string) (n int, present bool, perr *payment.Error) {
	raw, ok := o.fields[name]
	if !ok {
		return 0, false, nil
	}
	p := join(o.path, name)
	v, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil {
		if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
			return 0, true, badRequest(p, p+" must be an integer")
		}
		return 0, true, typeError(p, raw, "an integer")
	}
	return int(v), true, nil
}

// timestamp returns an RFC 3339 date-time field (zero when absent).
func (o *object) timestamp(name string) (time.Time, *payment.Error) {
	s, perr := o.str(name)
	if perr != nil || !o.has(name) {
		return time.Time{}, perr
	}
	p := join(o.path, name)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest(p, p+" must be an RFC 3339 date-time such as 2026-03-10T10:00:00-05:00")
	}
	return t, nil
}

// stringMap returns an object-of-strings field (nil when absent).
func (o *object) stringMap(name string) (map[string]string, *payment.Error) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, nil
	}
	m, perr := parseObject(raw, join(o.path, name))
	if perr != nil {
		return nil, perr
	}
	out := make(map[string]string, len(m.fields))
	for k := range m.fields {
		v, perr := m.str(k)
		if perr != nil {
			return nil, perr
		}
		out[k] = v
	}
	return out, nil
}

// sub returns an object field (nil when absent).
func (o *object) sub(name string) (*object, *payment.Error) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, nil
	}
	return parseObject(raw, join(o.path, name))
}

// bodyKind says which fields a POST body may carry.
type bodyKind int

const (
	// bodyPayment: POST /v1/charges and /v1/authorizations.
	bodyPayment bodyKind = iota
	// bodyFollowUp: capture, reauthorize, tip, void, refund.
	bodyFollowUp
	// bodyCancel: cancel undoes the whole original; it takes no amount.
	bodyCancel
	// bodyEmpty: abort takes nothing.
	bodyEmpty
)

// fieldsOf lists the fields each kind of body may carry.
var fieldsOf = map[bodyKind][]string{
	bodyPayment:  {"client_transaction_id", "terminal", "amount", "metadata"},
	bodyFollowUp: {"client_transaction_id", "amount", "metadata"},
	bodyCancel:   {"client_transaction_id", "metadata"},
	bodyEmpty:    {},
}

// opBody is a decoded operation request.
type opBody struct {
	ID       string
	Terminal string
	Amount   *payment.Amount
	Metadata map[string]string
}

// topObject checks b and reads it as the top-level object; an empty (or
// all-whitespace) body reads as {}.
func topObject(b []byte) (*object, *payment.Error) {
	b = bytes.Trim(b, " \t\r\n") // JSON whitespace only
	if len(b) == 0 {
		return &object{fields: map[string]json.RawMessage{}}, nil
	}
	if perr := checkJSON(b); perr != nil {
		return nil, perr
	}
	return parseObject(b, "")
}

// decodeOperation decodes an operation request body of the given kind.
func decodeOperation(b []byte, kind bodyKind) (opBody, *payment.Error) {
	var out opBody
	o, perr := topObject(b)
	if perr != nil {
		return out, perr
	}
	if perr := o.only(fieldsOf[kind]...); perr != nil {
		return out, perr
	}
	if out.ID, perr = o.str("client_transaction_id"); perr != nil {
		return out, perr
	}
	if out.Terminal, perr = o.str("terminal"); perr != nil {
		return out, perr
	}
	if out.Metadata, perr = o.stringMap("metadata"); perr != nil {
		return out, perr
	}
	a, perr := o.sub("amount")
	if perr != nil || a == nil {
		return out, perr
	}
	out.Amount, perr = decodeAmount(a)
	return out, perr
}

// decodeAmount reads the amount object. Absent iva and subtotals are 0.
func decodeAmount(o *object) (*payment.Amount, *payment.Error) {
	if perr := o.only("iva", "subtotal_iva", "subtotal_iva0", "tip", "extra_taxes"); perr != nil {
		return nil, perr
	}
	var a payment.Amount
	for _, f := range []struct {
		name string
		dst  *money.Decimal
	}{{"iva", &a.IVA}, {"subtotal_iva", &a.SubtotalIVA}, {"subtotal_iva0", &a.SubtotalIVA0}} {
		d, perr := o.decimal(f.name)
		if perr != nil {
			return nil, perr
		}
		if d != nil {
			*f.dst = *d
		}
	}
	var perr *payment.Error
	if a.Tip, perr = o.decimal("tip"); perr != nil {
		return nil, perr
	}
	x, perr := o.sub("extra_taxes")
	if perr != nil || x == nil {
		return &a, perr
	}
	if perr := x.only("airport_tax", "iac", "ice", "travel_agency"); perr != nil {
		return nil, perr
	}
	a.ExtraTaxes = &payment.ExtraTaxes{}
	for _, f := range []struct {
		name string
		dst  **money.Decimal
	}{{"airport_tax", &a.ExtraTaxes.AirportTax}, {"iac", &a.ExtraTaxes.IAC}, {"ice", &a.ExtraTaxes.ICE}, {"travel_agency", &a.ExtraTaxes.TravelAgency}} {
		if *f.dst, perr = x.decimal(f.name); perr != nil {
			return nil, perr
		}
	}
	return &a, nil
}

// decodeSearch decodes a terminal search request body.
func decodeSearch(b []byte) (payment.SearchQuery, *payment.Error) {
	var q payment.SearchQuery
	o, perr := topObject(b)
	if perr != nil {
		return q, perr
	}
	if perr := o.only("source", "client_transaction_id", "transaction_reference", "from", "to", "page", "size"); perr != nil {
		return q, perr
	}
	src, perr := o.str("source")
	if perr != nil {
		return q, perr
	}
	switch payment.SearchSource(src) {
	case payment.SearchLocal, payment.SearchOnline:
		q.Source = payment.SearchSource(src)
	case "":
		return q, invalid("source", "source is required: local (the terminal's history) or online (the acquirer's)")
	default:
		return q, invalid("source", fmt.Sprintf("source %q is not local or online", src))
	}
	if q.ClientTransactionID, perr = o.str("client_transaction_id"); perr != nil {
		return q, perr
	}
	if q.Reference, perr = o.str("transaction_reference"); perr != nil {
		return q, perr
	}
	if q.From, perr = o.timestamp("from"); perr != nil {
		return q, perr
	}
	if q.To, perr = o.timestamp("to"); perr != nil {
		return q, perr
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, invalid("to", "to is before from")
	}
	page, present, perr := o.integer("page")
	if perr != nil {
		return q, perr
	}
	if present && page < 1 {
		return q, invalid("page", "page must be 1 or more")
	}
	q.Page = page
	size, present, perr := o.integer("size")
	if perr != nil {
		return q, perr
	}
	if present && (size < 1 || size > maxSearchSize) {
		return q, invalid("size", fmt.Sprintf("size must be between 1 and %d", maxSearchSize))
	}
	q.Size = size
	return q, nil
}

// resolveBody is the body of POST /v1/transactions/{id}/resolve.
type resolveBody struct {
	Status payment.Status
	Note   string
}

// decodeResolve decodes an operator's resolution of a payment that needs
// attention.
func decodeResolve(b []byte) (resolveBody, *payment.Error) {
	var rb resolveBody
	o, perr := topObject(b)
	if perr != nil {
		return rb, perr
	}
	if perr := o.only("status", "note"); perr != nil {
		return rb, perr
	}
	s, perr := o.str("status")
	if perr != nil {
		return rb, perr
	}
	if s == "" {
		return rb, invalid("status", "status is required: approved, not_charged, voided, refunded or reversed")
	}
	rb.Status = payment.Status(s)
	if rb.Note, perr = o.str("note"); perr != nil {
		return rb, perr
	}
	return rb, nil
}
