package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// RawTransactionPath is the raw card-present API's void and reverse endpoint
// (research/kushki-one.md §7; seeds/kushki-pe-raw-card-present-void-reverse.txt).
const RawTransactionPath = "/pos/v1/transaction"

// DefaultRawTimeout bounds one raw API call when the caller's context allows
// longer.
const DefaultRawTimeout = 60 * time.Second

// maxAnswer caps the raw API answer read into memory.
const maxAnswer = 1 << 20

// CodeAlreadyReversed is the raw API's 400 code for a transaction already
// reversed (research/kushki-one.md §7, "Errors").
const CodeAlreadyReversed = "E048"

// rawErrorType is the payment.TerminalError Type of raw API refusals.
const rawErrorType = "RAW-API"

// RawConfig configures a RawClient.
type RawConfig struct {
	// BaseURL is the API host, from RawBaseURL
	// ("https://api-uat.kushkipagos.com").
	BaseURL string
	// Credential is the Private-Credential-Id. It is sent in its header and
	// never put in an error, a log line or a String form.
	Credential string
	// Currencies gives each terminal's currency by terminal name: the raw
	// API wants the currency in the amount, and the original's amount does
	// not carry one.
	Currencies map[string]money.Currency
	// ConnectTimeout bounds the TCP connect and the TLS handshake
	// (DefaultConnectTimeout when 0).
	ConnectTimeout time.Duration
	// Timeout bounds a whole call (DefaultRawTimeout when 0).
	Timeout time.Duration
	// HTTPClient replaces HTTPClient(ConnectTimeout), for tests. Its
	// transport should not reuse connections (see HTTPTransport).
	HTTPClient *http.Client
}

// String describes the configuration without the credential.
func (c RawConfig) String() string {
	return fmt.Sprintf("cloud.RawConfig{BaseURL:%q Credential:[redacted] Currencies:%v}", c.BaseURL, c.Currencies)
}

// GoString is String: %#v must not print the credential either.
func (c RawConfig) GoString() string { return c.String() }

// RawClient calls Kushki's raw card-present API. It implements
// payment.Reverser. It is safe for concurrent use and holds no connection
// between calls.
type RawClient struct {
	base       string
	credential string
	currencies map[string]money.Currency
	timeout    time.Duration
	http       *http.Client
}

var _ payment.Reverser = (*RawClient)(nil)

// NewRawClient returns a RawClient for cfg. It fails, without naming the
// credential, when the base URL is not absolute http(s), the credential is
// empty or holds spaces or control characters, a currency is unknown, or a
// timeout is negative. It does no I/O.
func NewRawClient(cfg RawConfig) (*RawClient, error) {
	if err := checkURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("cloud: raw API base URL: %w", err)
	}
	if cfg.Credential == "" {
		return nil, errors.New("cloud: raw API: no Private-Credential-Id")
	}
	if strings.ContainsFunc(cfg.Credential, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("cloud: raw API: the Private-Credential-Id holds spaces or control characters")
	}
	cur := make(map[string]money.Currency, len(cfg.Currencies))
	for name, c := range cfg.Currencies {
		if _, ok := c.Places(); !ok {
			return nil, fmt.Errorf("cloud: raw API: terminal %q: unknown currency %q", name, c)
		}
		cur[name] = c
	}
	if cfg.ConnectTimeout < 0 || cfg.Timeout < 0 {
		return nil, errors.New("cloud: raw API: negative timeout")
	}
	c := &RawClient{
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		credential: cfg.Credential,
		currencies: cur,
		timeout:    cfg.Timeout,
		http:       cfg.HTTPClient,
	}
	if c.timeout == 0 {
		c.timeout = DefaultRawTimeout
	}
	if c.http == nil {
		c.http = HTTPClient(cfg.ConnectTimeout)
	}
	return c, nil
}

// String describes the client without the credential.
func (c *RawClient) String() string { return "cloud.RawClient{" + c.base + "}" }

// Error is a raw API call that ended without a definite answer: nothing was
// sent (it matches payment.ErrNotSent; sending again is safe), or the request
// may have been processed (it matches payment.ErrOutcomeUnknown).
type Error struct {
	Op string // "reverse"
	ID string // the client_transaction_id concerned
	// Sent is true once a connection to the API was made for the request.
	Sent bool
	// HTTPStatus, Code and Message come from an answer that was not a
	// definite one (a 5xx, say); zero when no answer came.
	HTTPStatus int
	Code       string
	Message    string
	// Err is the transport error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloud: raw API %s %s: ", e.Op, e.ID)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(" " + e.Message)
		}
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Sent {
		b.WriteString(" (outcome unknown)")
	} else {
		b.WriteString(" (not sent)")
	}
	return b.String()
}

// Unwrap returns the transport error and payment.ErrOutcomeUnknown or
// payment.ErrNotSent, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	s := payment.ErrNotSent
	if e.Sent {
		s = payment.ErrOutcomeUnknown
	}
	if e.Err == nil {
		return []error{s}
	}
	return []error{e.Err, s}
}

// rawAmount is the raw API amount: the Kushki ONE fields plus the currency
// (seed: "amount": {"currency", "iva", "subtotal_iva", "subtotal_iva0"}).
type rawAmount struct {
	Currency     money.Currency      `json:"currency"`
	IVA          money.Decimal       `json:"iva"`
	SubtotalIVA  money.Decimal       `json:"subtotal_iva"`
	SubtotalIVA0 money.Decimal       `json:"subtotal_iva0"`
	ExtraTaxes   *payment.ExtraTaxes `json:"extra_taxes,omitempty"`
}

// rawRequest is a cardless reverse (seed, "Make reverses" and "Cardless
// operations"): transaction_mode Reverse, transaction_type charge, the
// original's client_transaction_id, omit_card true.
type rawRequest struct {
	Amount              rawAmount `json:"amount"`
	TransactionMode     string    `json:"transaction_mode"`
	TransactionType     string    `json:"transaction_type"`
	ClientTransactionID string    `json:"client_transaction_id"`
	OmitCard            bool      `json:"omit_card"`
}

// rawAnswer is the documented 200 answer and the documented 400/401/500
// error body, read together: the fields of the one that came are set.
type rawAnswer struct {
	TransactionStatus    flexString `json:"transaction_status"`
	TransactionReference flexString `json:"transaction_reference"`
	TransactionType      flexString `json:"transaction_type"`
	TicketNumber         flexString `json:"ticket_number"`
	AuthorizedAmount     flexString `json:"authorized_amount"`
	Franchise            flexString `json:"franchise"`
	CardType             flexString `json:"card_type"`
	CVMType              flexString `json:"cvm_type"`
	F11                  flexString `json:"F11"`
	MessageFields        struct {
		F38 flexString `json:"F38"` // authorization code
		F39 flexString `json:"F39"` // ISO 8583 response code
	} `json:"message_fields"`
	KushkiResponse struct {
		Code    flexString `json:"code"`
		Message flexString `json:"message"`
	} `json:"kushki_response"`

	Code    flexString `json:"code"`
	Message flexString `json:"message"`
	Details struct {
		Origin  flexString `json:"Origin"`
		Message flexString `json:"Message"`
	} `json:"details"`
}

// kept is what of an answer goes into Result.Raw or TerminalError.Raw: the
// documented, card-free fields only. message_fields.F55 (EMV data) and
// anything undocumented are left out, so no card data is ever kept.
type kept struct {
	TransactionStatus    string         `json:"transaction_status,omitempty"`
	TransactionReference string         `json:"transaction_reference,omitempty"`
	TransactionType      string         `json:"transaction_type,omitempty"`
	TicketNumber         string         `json:"ticket_number,omitempty"`
	AuthorizedAmount     string         `json:"authorized_amount,omitempty"`
	Franchise            string         `json:"franchise,omitempty"`
	CardType             string         `json:"card_type,omitempty"`
	CVMType              string         `json:"cvm_type,omitempty"`
	F11                  string         `json:"F11,omitempty"`
	MessageFields        *keptFields    `json:"message_fields,omitempty"`
	KushkiResponse       *keptCodeMsg   `json:"kushki_response,omitempty"`
	Code                 string         `json:"code,omitempty"`
	Message              string         `json:"message,omitempty"`
	Details              *keptOriginMsg `json:"details,omitempty"`
	HTTPStatus           int            `json:"http_status"`
}

type keptFields struct {
	F38 string `json:"F38,omitempty"`
	F39 string `json:"F39,omitempty"`
}

type keptCodeMsg struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

type keptOriginMsg struct {
	Origin  string `json:"Origin,omitempty"`
	Message string `json:"Message,omitempty"`
}

func (a *rawAnswer) kept(status int) json.RawMessage {
	k := kept{
		TransactionStatus:    string(a.TransactionStatus),
		TransactionReference: string(a.TransactionReference),
		TransactionType:      string(a.TransactionType),
		TicketNumber:         string(a.TicketNumber),
		AuthorizedAmount:     string(a.AuthorizedAmount),
		Franchise:            string(a.Franchise),
		CardType:             string(a.CardType),
		CVMType:              string(a.CVMType),
		F11:                  string(a.F11),
		Code:                 string(a.Code),
		Message:              string(a.Message),
		HTTPStatus:           status,
	}
	if f := a.MessageFields; f.F38 != "" || f.F39 != "" {
		k.MessageFields = &keptFields{F38: string(f.F38), F39: string(f.F39)}
	}
	if r := a.KushkiResponse; r.Code != "" || r.Message != "" {
		k.KushkiResponse = &keptCodeMsg{Code: string(r.Code), Message: string(r.Message)}
	}
	if d := a.Details; d.Origin != "" || d.Message != "" {
		k.Details = &keptOriginMsg{Origin: string(d.Origin), Message: string(d.Message)}
	}
	b, err := json.Marshal(k)
	if err != nil {
		return nil // plain strings cannot fail to encode
	}
	return b
}

// flexString reads a JSON string or number as text; null is "". Vendor
// samples show codes and ticket numbers as strings, amounts as numbers; this
// accepts either for every field.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("not a string or number: %s", b)
	}
	*f = flexString(n)
	return nil
}

// Reverse reverses the charge with client_transaction_id id on terminal by
// Kushki's raw card-present API: POST {base}/pos/v1/transaction with
// transaction_mode "Reverse", transaction_type "charge", the original's
// client_transaction_id, its amount with the terminal's currency, and
// omit_card true (research/kushki-one.md §7; seeds/kushki-pe-raw-card-
// present-void-reverse.txt, "Make reverses"). The vendor asks for a wait of at
// least 1 minute after the original and allows it until the day's cutoff;
// the caller keeps those windows.
//
// Answers:
//   - 200 with transaction_status APPROVAL: a Result with Status approved
//     (the reversal went through), its reference, ticket number,
//     authorization code (F38), response code and card brand;
//   - 200 with DECLINED: a Result with Status declined;
//   - 400 with code E048 ("already reversed"): a Result with Status approved
//     and Code E048. The goal — the charge undone — holds, typically because
//     an earlier Reverse whose answer was lost went through. Treating it as
//     success makes Reverse safe to repeat;
//   - any other 400 and 401, 403, 404 and the other 4xx but 408: a
//     *payment.TerminalError (Type "RAW-API", the vendor's code and message):
//     the API refused the request and did nothing;
//   - 408, 5xx, a 200 without a known transaction_status, an answer that is
//     not JSON, or a connection lost after it was made: an *Error matching
//     payment.ErrOutcomeUnknown;
//   - no connection made (refused, DNS, TLS handshake or certificate, proxy,
//     connect timeout, context ended first): an *Error matching
//     payment.ErrNotSent.
//
// It also fails, sending nothing, for an unknown terminal (no currency), an
// empty id, or an amount with a tip (the raw API amount has none). Errors
// never contain the credential.
func (c *RawClient) Reverse(ctx context.Context, terminal, id string, amount payment.Amount) (*payment.Result, error) {
	cur, ok := c.currencies[terminal]
	if !ok {
		return nil, fmt.Errorf("cloud: raw API reverse %s: no currency configured for terminal %q", id, terminal)
	}
	if id == "" {
		return nil, errors.New("cloud: raw API reverse: empty client_transaction_id")
	}
	if amount.Tip != nil && !amount.Tip.IsZero() {
		return nil, fmt.Errorf("cloud: raw API reverse %s: the amount has a tip; the raw API amount has no tip field", id)
	}
	body, err := json.Marshal(rawRequest{
		Amount: rawAmount{
			Currency:     cur,
			IVA:          amount.IVA,
			SubtotalIVA:  amount.SubtotalIVA,
			SubtotalIVA0: amount.SubtotalIVA0,
			ExtraTaxes:   amount.ExtraTaxes,
		},
		TransactionMode:     "Reverse",
		TransactionType:     "charge",
		ClientTransactionID: id,
		OmitCard:            true,
	})
	if err != nil {
		return nil, fmt.Errorf("cloud: raw API reverse %s: encode: %w", id, err)
	}
	status, b, err := c.post(ctx, "reverse", id, body)
	if err != nil {
		return nil, err
	}
	return reverseAnswer(id, status, b)
}

// reverseAnswer maps the raw API's answer to a Reverse (see Reverse).
func reverseAnswer(id string, status int, b []byte) (*payment.Result, error) {
	ans, raw, err := decodeAnswer("reverse", id, status, b)
	if err != nil {
		return nil, err
	}
	if status == http.StatusBadRequest && string(ans.Code) == CodeAlreadyReversed {
		return &payment.Result{
			Route:   payment.RouteCloud,
			Status:  payment.StatusApproved,
			Code:    CodeAlreadyReversed,
			Message: joinMessage(string(ans.Message), string(ans.Details.Message)),
			Raw:     raw,
		}, nil
	}
	return result("reverse", id, status, ans, raw)
}

// result maps an answer of the transaction endpoint.
func result(op, id string, status int, ans *rawAnswer, raw json.RawMessage) (*payment.Result, error) {
	switch {
	case status == http.StatusOK || status == http.StatusCreated:
		res := &payment.Result{
			Route:             payment.RouteCloud,
			Reference:         string(ans.TransactionReference),
			TicketNumber:      string(ans.TicketNumber),
			AuthorizationCode: string(ans.MessageFields.F38),
			Code:              string(ans.KushkiResponse.Code),
			Message:           string(ans.KushkiResponse.Message),
			Raw:               raw,
		}
		if res.Code == "" {
			res.Code = string(ans.MessageFields.F39)
		}
		if ans.Franchise != "" || ans.CardType != "" {
			res.Card = &payment.Card{Brand: string(ans.Franchise), Type: string(ans.CardType)}
		}
		// Approved only on transaction_status APPROVAL (DESIGN.md, "The
		// terminal"; research §7 "Response (200)").
		switch strings.ToUpper(string(ans.TransactionStatus)) {
		case "APPROVAL":
			res.Status = payment.StatusApproved
		case "DECLINED":
			res.Status = payment.StatusDeclined
		default:
			return nil, &Error{Op: op, ID: id, Sent: true, HTTPStatus: status,
				Message: fmt.Sprintf("answer without a known transaction_status (%q)", string(ans.TransactionStatus))}
		}
		return res, nil
	case status < 400 || status == http.StatusRequestTimeout || status >= 500:
		// 1xx, other 2xx, 3xx (redirects are not followed), 408, 5xx: the
		// request may have been processed.
		return nil, &Error{Op: op, ID: id, Sent: true, HTTPStatus: status,
			Code: string(ans.Code), Message: joinMessage(string(ans.Message), string(ans.Details.Message))}
	}
	// 4xx: a refusal; nothing was done.
	te := &payment.TerminalError{
		HTTPStatus: status,
		Type:       rawErrorType,
		Code:       string(ans.Code),
		Message:    joinMessage(string(ans.Message), string(ans.Details.Message)),
		Route:      payment.RouteCloud,
		Raw:        raw,
	}
	if te.Code == "" {
		te.Code = fmt.Sprintf("HTTP%d", status)
	}
	if te.Message == "" {
		te.Message = http.StatusText(status)
	}
	return nil, te
}

func joinMessage(msg, detail string) string {
	switch {
	case detail == "" || detail == msg:
		return msg
	case msg == "":
		return detail
	}
	return msg + ": " + detail
}

// post sends body to the transaction endpoint and returns the answer's
// status and body. A non-nil error is an *Error: no answer came.
func (c *RawClient) post(ctx context.Context, op, id string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// connected turns true once net/http has a connection for this
	// request (always a new one, see HTTPTransport): from then on a failure
	// may come after Kushki read the request.
	var connected atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost,
		c.base+RawTransactionPath, bytes.NewReader(body))
	if err != nil {
		return 0, nil, &Error{Op: op, ID: id, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "posbridge")
	req.Header.Set("Private-Credential-Id", c.credential)

	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &Error{Op: op, ID: id, Sent: connected.Load(), Err: c.scrub(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, nil, &Error{Op: op, ID: id, Sent: true, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("read answer: %w", c.scrub(err))}
	}
	return resp.StatusCode, b, nil
}

// decodeAnswer parses an answer of the transaction endpoint and returns it
// with its card-free copy for Raw. An answer that cannot be parsed is an
// *Error (outcome unknown), except for a 4xx refusal other than 408, which
// gives an empty rawAnswer (a refusal is a refusal even when its body cannot
// be read) and for a 5xx, unknown either way.
func decodeAnswer(op, id string, status int, b []byte) (*rawAnswer, json.RawMessage, error) {
	refusal := status >= 400 && status < 500 && status != http.StatusRequestTimeout
	var ans rawAnswer
	switch {
	case len(b) > maxAnswer:
		if !refusal {
			return nil, nil, &Error{Op: op, ID: id, Sent: true, HTTPStatus: status, Message: "answer longer than 1 MiB"}
		}
	case json.Unmarshal(b, &ans) != nil:
		if !refusal && status < 500 {
			return nil, nil, &Error{Op: op, ID: id, Sent: true, HTTPStatus: status, Message: "answer is not the documented JSON"}
		}
		ans = rawAnswer{}
	}
	return &ans, ans.kept(status), nil
}

// scrub makes sure an error never carries the credential (net/http errors
// name the URL, never headers, but this does not rely on it).
func (c *RawClient) scrub(err error) error {
	if err == nil || !strings.Contains(err.Error(), c.credential) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.credential, "[redacted]"))
}
