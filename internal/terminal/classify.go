package terminal

import (
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/posbridge/posbridge/internal/payment"
)

// Classify reads the HTTP answer of a payment operation (charge,
// authorization, capture, re_authorization, pos_tip, void, refund), its body
// already decrypted. It is pure and safe for concurrent use.
//
// The rules, conservative wherever the vendor is silent (research/kushki-one.md
// §1 "Response fields seen", §2; DESIGN.md "The terminal"):
//
//   - 5xx (and any status that is neither 2xx nor 4xx): the terminal or the
//     cloud may have processed the operation: *UnclearAnswerError, which
//     matches payment.ErrOutcomeUnknown.
//   - 2xx: the body must be one JSON object, else *UnclearAnswerError. It is
//     approved ONLY on "approved": true or "transaction_status": "APPROVAL"
//     (exactly), at the top level or under "rawResponse" (an object, or a
//     string holding one). If "approved" is present but not a boolean, or
//     "transaction_status" not a string, or "rawResponse" neither, nothing is
//     concluded: *UnclearAnswerError. Then, in order: the error body
//     {"type":"TERMINAL-SUNMI","code":"-1"} (top level or wrapped in
//     "failure") is a customer cancel, Result status cancelled; code TER-003
//     is *BusyError; an explicit decline ("approved": false, or
//     transaction_status DECLINED or ERROR) is status declined, CANCELLED is
//     cancelled; any other error body (a "failure" object or a non-empty
//     "type") is a *payment.TerminalError. A 2xx body with none of these
//     (say {} or an unknown transaction_status alone) is *UnclearAnswerError:
//     posbridge calls a payment declined only when the answer says so.
//   - 4xx: the terminal refused the request and ran nothing. The LinkFailure
//     envelope {type, code, param, message, object}, at the top level or
//     wrapped in "failure", becomes a *payment.TerminalError with HTTPStatus
//     set (401 always has type AUTHENTICATION); TER-003 is *BusyError; the
//     customer-cancel body is a cancelled Result.
//
// A Result carries the reference, ticket number, authorization code
// (message_fields.F38), card (franchise, card_type, masked_card; the masked
// number only if it really is masked), code (kushki_response.code, else
// message_fields.F39) and message, each from the top level first, then
// rawResponse; and Raw, the answer with card data masked (see scrubJSON), at
// most MaxRaw bytes. Route is left empty (the Client fills it in), as are the
// Route fields of the errors.
func Classify(status int, body []byte) (*payment.Result, error) {
	switch {
	case status >= 200 && status < 300:
		return classifyOK(status, body)
	case status >= 400 && status < 500:
		m := decodeObject(body)
		env := envelopeOf(m)
		if env.cancel() {
			return cancelled(env, m), nil
		}
		return nil, refusal(status, env, m, body)
	}
	return nil, unclear(status, body, unclearStatus(status))
}

func unclearStatus(status int) string {
	if status >= 500 {
		return "server error: the operation may have been processed"
	}
	return "unexpected HTTP status"
}

func classifyOK(status int, body []byte) (*payment.Result, error) {
	m := decodeObject(body)
	if m == nil {
		return nil, unclear(status, body, "answer is not a JSON object")
	}
	a, ok := readAnswer(m)
	if !ok {
		return nil, unclear(status, body, "answer fields have unexpected types")
	}
	switch {
	case a.approved:
		return a.result(payment.StatusApproved, m), nil
	case a.env.cancel():
		return cancelled(a.env, m), nil
	case a.env.Code == CodeBusy:
		return nil, busy(status, a.env)
	case a.decision != "":
		return a.result(a.decision, m), nil
	case a.env.present:
		return nil, terminalError(status, a.env, scrubDecoded(m, MaxRaw))
	}
	return nil, unclear(status, body, "answer has no approval, decline or error")
}

// answer is what Classify read from a 2xx body.
type answer struct {
	top, raw map[string]any
	approved bool
	// decision is declined or cancelled when the body says so explicitly.
	decision payment.Status
	env      envelope
}

// readAnswer reads the decision fields at both levels; ok is false when one
// of them has a type that leaves the answer open.
func readAnswer(m map[string]any) (a answer, ok bool) {
	a.top = m
	raw, ok := objectField(m, "rawResponse")
	if !ok {
		return a, false
	}
	if raw != nil {
		m["rawResponse"] = raw // a string holding an object: scrub it as one
	}
	a.raw = raw
	declined, cancelledToo := false, false
	for _, l := range []map[string]any{a.top, a.raw} {
		if l == nil {
			continue
		}
		ap, ok1 := boolField(l, "approved")
		st, ok2 := stringField(l, "transaction_status")
		if !ok1 || !ok2 {
			return a, false
		}
		if (ap != nil && *ap) || st == StatusApproval {
			a.approved = true
		}
		if ap != nil && !*ap {
			declined = true
		}
		switch st {
		case StatusDeclined, StatusError:
			declined = true
		case StatusCancelled, "CANCELED":
			cancelledToo = true
		}
	}
	switch {
	case cancelledToo:
		a.decision = payment.StatusCancelled
	case declined:
		a.decision = payment.StatusDeclined
	}
	a.env = envelopeOf(m)
	return a, true
}

// Field limits: a terminal that stuffs a huge value into a field gets it cut.
const (
	maxField   = 256
	maxMessage = 1024
)

// result builds a Result from both levels, then scrubs m for Raw.
func (a answer) result(st payment.Status, m map[string]any) *payment.Result {
	levels := []map[string]any{a.top, a.raw}
	r := &payment.Result{
		Status:            st,
		Reference:         clip(first(levels, "transaction_reference"), maxField),
		TicketNumber:      clip(first(levels, "ticket_number"), maxField),
		AuthorizationCode: clip(firstOf(levels, path{"message_fields", "F38"}, path{"authorization_code"}), maxField),
		Code:              clip(firstOf(levels, path{"kushki_response", "code"}, path{"message_fields", "F39"}), maxField),
		Message: clip(scrubText(firstOf(levels, path{"message"}, path{"kushki_response", "message"})),
			maxMessage),
		Card: card(
			firstOf(levels, path{"franchise"}, path{"payment_brand"}),
			first(levels, "card_type"),
			first(levels, "masked_card"),
		),
	}
	if r.Code == "" && a.env.Code != "" {
		r.Code = clip(a.env.Code, maxField)
	}
	r.Raw = scrubDecoded(m, MaxRaw)
	return r
}

// card returns the card fields worth keeping, or nil.
func card(brand, typ, masked string) *payment.Card {
	c := payment.Card{Brand: clip(scrubText(brand), maxField), Type: clip(scrubText(typ), maxField)}
	if masked != "" && maskedPAN(masked) {
		c.Masked = masked
	}
	if c == (payment.Card{}) {
		return nil
	}
	return &c
}

// cancelled is the customer-cancel answer.
func cancelled(env envelope, m map[string]any) *payment.Result {
	return &payment.Result{
		Status:  payment.StatusCancelled,
		Code:    clip(env.Code, maxField),
		Message: clip(scrubText(env.Message), maxMessage),
		Raw:     scrubDecoded(m, MaxRaw),
	}
}

// refusal is the error of a 4xx answer (or a 2xx error body of a control
// operation): busy, or a TerminalError.
func refusal(status int, env envelope, m map[string]any, body []byte) error {
	if status == http.StatusUnauthorized {
		env.Type = TypeAuthentication
	}
	if env.Code == CodeBusy {
		return busy(status, env)
	}
	if env.Type == "" && env.Code == "" {
		env.Type = "HTTP"
	}
	if env.Code == "" {
		env.Code = strconv.Itoa(status)
	}
	if env.Message == "" {
		env.Message = http.StatusText(status)
	}
	return terminalError(status, env, rawOf(m, body))
}

// rawOf is the scrubbed raw answer: m when the body decoded to an object,
// else the body itself.
func rawOf(m map[string]any, body []byte) json.RawMessage {
	if m != nil {
		return scrubDecoded(m, MaxRaw)
	}
	return scrubJSON(body, MaxRaw)
}

func terminalError(status int, env envelope, raw json.RawMessage) error {
	return &payment.TerminalError{
		HTTPStatus: status,
		Type:       clip(env.Type, maxField),
		Code:       clip(env.Code, maxField),
		Param:      clip(env.Param, maxField),
		Message:    clip(scrubText(env.Message), maxMessage),
		Raw:        raw,
	}
}

func busy(status int, env envelope) error {
	return &BusyError{HTTPStatus: status, Code: env.Code, Message: clip(scrubText(env.Message), maxMessage)}
}

func unclear(status int, body []byte, reason string) error {
	return &UnclearAnswerError{HTTPStatus: status, Reason: reason, Raw: scrubJSON(body, MaxRaw)}
}

// classifyAbort reads the answer of an abort: nil when something was
// aborted; *NothingToAbortError on 409 (seeds: "after it has completed …
// it returns 409 Conflict") or on an error body with code TER-004; a
// TerminalError (or BusyError) for other refusals; *UnclearAnswerError for
// 5xx. Any other 2xx answer, the customer-cancel body included, means the
// abort was taken.
func classifyAbort(status int, body []byte) error {
	switch {
	case status == http.StatusConflict:
		env := envelopeOf(decodeObject(body))
		return &NothingToAbortError{Code: env.Code, Message: clip(scrubText(env.Message), maxMessage)}
	case status >= 200 && status < 300:
		m := decodeObject(body)
		env := envelopeOf(m)
		if !env.present || env.cancel() {
			// The cancel body is what an aborted operation answers
			// (research §1): the abort was taken.
			return nil
		}
		if env.Code == CodeNothingActive {
			return &NothingToAbortError{Code: env.Code, Message: clip(scrubText(env.Message), maxMessage)}
		}
		return refusal(status, env, m, body)
	case status >= 400 && status < 500:
		m := decodeObject(body)
		return refusal(status, envelopeOf(m), m, body)
	}
	return unclear(status, body, unclearStatus(status))
}

// classifySearch reads the answer of a search: the body when it is a JSON
// answer, else the error.
func classifySearch(status int, body []byte) ([]byte, error) {
	switch {
	case status >= 200 && status < 300:
		v, ok := decodeAny(body)
		if !ok {
			return nil, unclear(status, body, "answer is not JSON")
		}
		if m, _ := v.(map[string]any); m != nil {
			if env := envelopeOf(m); env.present {
				return nil, refusal(status, env, m, body)
			}
		}
		return body, nil
	case status >= 400 && status < 500:
		m := decodeObject(body)
		return nil, refusal(status, envelopeOf(m), m, body)
	}
	return nil, unclear(status, body, unclearStatus(status))
}

// envelope is the LinkFailure error envelope (research §2).
type envelope struct {
	Type, Code, Param, Message string
	// present: the body is an error body (a "failure" object, or a
	// non-empty top-level type).
	present bool
}

func (e envelope) cancel() bool { return e.Type == TypeTerminalSunmi && e.Code == CodeUserCancel }

// envelopeOf reads the envelope at the top of m or under "failure". Its
// fields are read leniently (a number code is taken as its text).
func envelopeOf(m map[string]any) envelope {
	if m == nil {
		return envelope{}
	}
	src, wrapped := m, false
	if f, ok := m["failure"].(map[string]any); ok {
		src, wrapped = f, true
	}
	e := envelope{
		Type:    text(src["type"]),
		Code:    text(src["code"]),
		Param:   text(src["param"]),
		Message: text(src["message"]),
	}
	e.present = wrapped || e.Type != ""
	return e
}

// decodeObject returns body as a JSON object, or nil.
func decodeObject(body []byte) map[string]any {
	v, ok := decodeAny(body)
	if !ok {
		return nil
	}
	m, _ := v.(map[string]any)
	return m
}

// boolField reads a boolean; absent and null are nil, other types not ok.
func boolField(m map[string]any, k string) (*bool, bool) {
	switch v := m[k].(type) {
	case nil:
		return nil, true
	case bool:
		return &v, true
	}
	return nil, false
}

// stringField reads a string strictly; absent and null are "".
func stringField(m map[string]any, k string) (string, bool) {
	switch v := m[k].(type) {
	case nil:
		return "", true
	case string:
		return v, true
	}
	return "", false
}

// objectField reads an object, or a string holding one (some clients see
// rawResponse serialised); absent and null are nil.
func objectField(m map[string]any, k string) (map[string]any, bool) {
	switch v := m[k].(type) {
	case nil:
		return nil, true
	case map[string]any:
		return v, true
	case string:
		if o := decodeObject([]byte(v)); o != nil {
			return o, true
		}
	}
	return nil, false
}

// text reads a string or a number leniently; anything else is "".
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	}
	return ""
}

// path is a chain of keys into nested objects.
type path []string

func (p path) in(m map[string]any) string {
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return ""
		}
		m = next
	}
	return text(m[p[len(p)-1]])
}

// first returns key's value at the first level that has it.
func first(levels []map[string]any, key string) string {
	return firstOf(levels, path{key})
}

// firstOf tries each level in order and, within a level, each path.
func firstOf(levels []map[string]any, paths ...path) string {
	for _, l := range levels {
		if l == nil {
			continue
		}
		for _, p := range paths {
			if s := p.in(l); s != "" {
				return s
			}
		}
	}
	return ""
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
