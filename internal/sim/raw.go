package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/terminal"
)

// Kushki's raw card-present API, POST /pos/v1/transaction, served on the same
// server for the two operations posbridge's recovery uses (research §7;
// seeds/kushki-pe-raw-card-present-void-reverse.txt):
//   - "Reverse": by the original's client_transaction_id, for an unknown
//     outcome; same day, at least VoidMinWait after the original;
//   - "Void": by transaction_reference, cardless (omit_card); after the
//     same-day cut-off it is processed as a refund, as the seed says.
//
// Authentication is the Private-Credential-Id header holding the terminal's
// credential secret. Errors use the raw API's own shapes: 401
// {"message":"Unauthorized"}, 400/404 {"code","message","details"}.

// rawRequest is the body of POST /pos/v1/transaction.
type rawRequest struct {
	Amount               *rawAmount     `json:"amount,omitempty"`
	TransactionMode      string         `json:"transaction_mode"`
	TransactionType      string         `json:"transaction_type"`
	ClientTransactionID  string         `json:"client_transaction_id"`
	TransactionReference string         `json:"transaction_reference"`
	OmitCard             bool           `json:"omit_card"`
	IsSmartVoid          bool           `json:"is_smart_void"`
	Metadata             map[string]any `json:"metadata,omitempty"`
}

// rawAmount is the raw API's amount: it names its currency.
type rawAmount struct {
	Currency     string                   `json:"currency"`
	IVA          money.Decimal            `json:"iva"`
	SubtotalIVA  money.Decimal            `json:"subtotal_iva"`
	SubtotalIVA0 money.Decimal            `json:"subtotal_iva0"`
	ExtraTaxes   map[string]money.Decimal `json:"extra_taxes,omitempty"`
}

func (a *rawAmount) total() money.Decimal {
	t := a.IVA.Add(a.SubtotalIVA).Add(a.SubtotalIVA0)
	for _, v := range a.ExtraTaxes {
		t = t.Add(v)
	}
	return t
}

// rawAnswer is the raw API's 200 answer (the seed's example).
type rawAnswer struct {
	AdditionalAmounts    rawAdditional           `json:"additional_amounts"`
	AuthorizedAmount     money.Decimal           `json:"authorized_amount"`
	CardType             string                  `json:"card_type"`
	CvmType              string                  `json:"cvm_type"`
	F11                  string                  `json:"F11"`
	Franchise            string                  `json:"franchise"`
	KushkiResponse       terminal.KushkiResponse `json:"kushki_response"`
	MessageFields        terminal.MessageFields  `json:"message_fields"`
	TransactionReference string                  `json:"transaction_reference"`
	TransactionStatus    string                  `json:"transaction_status"`
	TransactionType      string                  `json:"transaction_type"`
	TicketNumber         string                  `json:"ticket_number"`
}

type rawAdditional struct {
	AccountType  string `json:"account_type"`
	Amount       int    `json:"amount"`
	AmountType   string `json:"amount_type"`
	CardType     string `json:"card_type"`
	CurrencyCode string `json:"currency_code"`
}

// rawError is the raw API's error body (research §7 "Errors").
type rawError struct {
	status  int
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Details *rawDetails `json:"details,omitempty"`
}

type rawDetails struct {
	Origin  string `json:"Origin"`
	Message string `json:"Message"`
}

// Raw API error codes: E001, E041, E042, E048 from research §7; E016 as the
// kushki_response code for "refund not available"; E404 is our choice for a
// Reverse or Void whose original the acquirer does not know.
const (
	RawCodeInvalidBody   = "E001"
	RawCodeNotAllowed    = "E041"
	RawCodeCurrency      = "E042"
	RawCodeAlreadyDone   = "E048"
	RawCodeRefundWindow  = "E016"
	RawCodeNotFound      = "E404"
	rawOrigin            = "TransactionService"
	rawApprovedMessage   = "Approval and completed successfully Accepted and processed."
	rawUnauthorizedFixed = `{"message":"Unauthorized"}`
)

func rawErr(status int, code, message, detail string, args ...any) *rawError {
	return &rawError{status: status, Code: code, Message: message,
		Details: &rawDetails{Origin: rawOrigin, Message: fmt.Sprintf(detail, args...)}}
}

func (e *rawError) body() []byte { return mustJSON(e) }

// fromAPI converts a lifecycle refusal of the terminal rules to the raw
// API's shape.
func fromAPI(e *apiError) *rawError {
	code := e.lf.Code
	switch code {
	case CodeNoReference:
		return rawErr(http.StatusNotFound, RawCodeNotFound, "Transaction not found", "%s", e.lf.Message)
	case CodeOpNotAllowed, CodeAlreadyVoided, CodeRefundWindow:
	default:
		code = RawCodeNotAllowed
	}
	return rawErr(http.StatusBadRequest, code, "Operation not allowed", "%s", e.lf.Message)
}

func (s *Sim) rawHandler(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	s.countRequest(EndpointRaw, "raw")
	ev := s.log.Debug().Str("route", "raw").Str("endpoint", EndpointRaw)
	f := s.takeFault(EndpointRaw)
	if f != nil {
		ev = ev.Str("fault", string(f.Mode))
		switch f.Mode {
		case FaultDropBefore:
			ev.Msg("dropped before processing")
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, s.cfg.MaxBody))
			dropConn(w)
			return
		case FaultError500:
			writeJSON(w, http.StatusInternalServerError, rawErr(http.StatusInternalServerError, "E002", "Internal server error", "fault injected").body())
			ev.Msg("500 before processing")
			return
		}
	}
	if !s.credentialOK(r.Header.Get("Private-Credential-Id")) {
		s.mu.Lock()
		s.authFailures++
		s.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, []byte(rawUnauthorizedFixed))
		ev.Int("status", http.StatusUnauthorized).Msg("unauthorized")
		return
	}
	body, ae := s.readBody(w, r)
	var status int
	var resp []byte
	if ae != nil {
		e := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "%s", ae.lf.Message)
		status, resp = e.status, e.body()
	} else {
		var ok bool
		status, resp, ok = s.rawTransaction(body)
		if !ok {
			dropConn(w)
			return
		}
	}
	s.deliver(w, r, f, status, resp, func(b []byte) ([]byte, error) { return b, nil }, ev)
}

// rawTransaction runs one raw API request; ok is false when Close
// interrupted it.
func (s *Sim) rawTransaction(body []byte) (int, []byte, bool) {
	var req rawRequest
	if e := checkSyntax(body); e != nil {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "%s", e.lf.Message)
		return r.status, r.body(), true
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "the body does not match the request shape")
		return r.status, r.body(), true
	}
	if req.Amount != nil && req.Amount.Currency != "" && money.Currency(req.Amount.Currency) != s.cfg.Currency {
		r := rawErr(http.StatusBadRequest, RawCodeCurrency, "Currency differs from the original transaction",
			"the terminal works in %s", s.cfg.Currency)
		return r.status, r.body(), true
	}
	switch req.TransactionMode {
	case "Reverse":
		return s.rawReverse(&req)
	case "Void":
		return s.rawVoid(&req)
	}
	r := rawErr(http.StatusBadRequest, RawCodeNotAllowed, "Operation not allowed",
		"transaction_mode %q is not simulated (Reverse and Void are)", req.TransactionMode)
	return r.status, r.body(), true
}

// rawReverse reverses the latest approved charge or authorization made under
// the request's client_transaction_id.
func (s *Sim) rawReverse(req *rawRequest) (int, []byte, bool) {
	if checkID(req.ClientTransactionID) != nil {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "client_transaction_id must be the original's UUID")
		return r.status, r.body(), true
	}
	if req.TransactionType != "charge" && req.TransactionType != "preAuth" {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", `transaction_type must be "charge" (or "preAuth")`)
		return r.status, r.body(), true
	}
	find := func() (*txn, *rawError) {
		var seen, gone bool
		var orig *txn
		for _, t := range s.byID[req.ClientTransactionID] {
			if t.raw || (t.ep != terminal.EndpointCharge && t.ep != terminal.EndpointAuthorization) {
				continue
			}
			seen = true
			switch {
			case t.status != statusApproval:
			case t.gone():
				gone = true
			default:
				orig = t
			}
		}
		switch {
		case orig != nil:
		case gone:
			return nil, rawErr(http.StatusBadRequest, RawCodeAlreadyDone, "Transaction already reversed", "the transaction was already voided or reversed")
		case seen:
			return nil, rawErr(http.StatusBadRequest, RawCodeNotAllowed, "Operation not allowed", "the transaction was not approved: nothing to reverse")
		default:
			return nil, rawErr(http.StatusNotFound, RawCodeNotFound, "Transaction not found", "no charge with that client_transaction_id")
		}
		if e := s.voidableLocked(orig, s.cfg.Now()); e != nil {
			return nil, fromAPI(e)
		}
		return orig, nil
	}
	s.mu.Lock()
	orig, e := find()
	s.mu.Unlock()
	if e != nil {
		return e.status, e.body(), true
	}
	if delayedAmount(orig.total, true) && !s.wait(s.cfg.DelayedApproval) {
		return 0, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if orig, e = find(); e != nil {
		return e.status, e.body(), true
	}
	orig.reversed = true
	for _, tip := range orig.tips {
		tip.reversed = true
	}
	ans := s.rawApprovalLocked(orig, txnType(orig.ep), uuid.NewString())
	return http.StatusOK, mustJSON(ans), true
}

// rawVoid voids the transaction with the request's transaction_reference, or
// refunds it when the same-day cut-off has passed.
func (s *Sim) rawVoid(req *rawRequest) (int, []byte, bool) {
	if req.TransactionReference == "" {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "transaction_reference is required")
		return r.status, r.body(), true
	}
	if checkID(req.ClientTransactionID) != nil {
		r := rawErr(http.StatusBadRequest, RawCodeInvalidBody, "Invalid body", "client_transaction_id must be a UUID")
		return r.status, r.body(), true
	}
	// check returns the original and whether the void becomes a refund.
	check := func() (*txn, bool, *rawError) {
		now := s.cfg.Now()
		if len(s.byID[req.ClientTransactionID]) > 0 {
			return nil, false, rawErr(http.StatusBadRequest, RawCodeNotAllowed, "Operation not allowed", "client_transaction_id was already used")
		}
		orig := s.byRef[req.TransactionReference]
		if orig == nil {
			return nil, false, rawErr(http.StatusNotFound, RawCodeNotFound, "Transaction not found", "no transaction with that transaction_reference")
		}
		if req.Amount != nil && req.Amount.total() != orig.total {
			return nil, false, rawErr(http.StatusBadRequest, RawCodeNotAllowed, "Operation not allowed", "the amount must be the original total: partial void not allowed")
		}
		if orig.status != statusApproval {
			return nil, false, rawErr(http.StatusBadRequest, RawCodeNotAllowed, "Operation not allowed", "the original transaction was not approved")
		}
		if !s.sameDay(orig.created, now) && !orig.gone() {
			// After the cut-off the void is processed as a refund (seed).
			p := &payReq{ep: terminal.EndpointRefund, ref: orig.ref}
			if e := s.checkRules(p, orig, now); e != nil {
				return nil, false, fromAPI(e)
			}
			return orig, true, nil
		}
		if e := s.voidableLocked(orig, now); e != nil {
			return nil, false, fromAPI(e)
		}
		return orig, false, nil
	}
	s.mu.Lock()
	orig, _, e := check()
	s.mu.Unlock()
	if e != nil {
		return e.status, e.body(), true
	}
	if delayedAmount(orig.total, true) && !s.wait(s.cfg.DelayedApproval) {
		return 0, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orig, asRefund, e := check()
	if e != nil {
		return e.status, e.body(), true
	}
	now := s.cfg.Now()
	t := &txn{id: req.ClientTransactionID, ep: terminal.EndpointVoid, raw: true, status: statusApproval,
		orig: orig, origRef: orig.ref, ref: uuid.NewString(), created: now, amount: orig.amount, total: orig.total}
	if asRefund {
		t.ep = terminal.EndpointRefund
		t.total = refundable(orig)
		t.amount = payment.Amount{SubtotalIVA0: t.total}
		allocateRefund(orig, t.total)
	} else {
		voidLocked(orig)
	}
	ans := s.rawApprovalLocked(orig, txnType(orig.ep), t.ref)
	if asRefund {
		ans.TransactionType = "refund"
	}
	t.ticket, t.authCode = ans.TicketNumber, ans.MessageFields.F38
	t.reply = mustJSON(ans)
	s.recordLocked(t)
	return http.StatusOK, t.reply, true
}

// rawApprovalLocked builds an approved raw API answer about orig.
func (s *Sim) rawApprovalLocked(orig *txn, typ, ref string) rawAnswer {
	s.seq++
	now := s.cfg.Now()
	return rawAnswer{
		AuthorizedAmount:     orig.total,
		CardType:             s.cfg.Card.Type,
		CvmType:              "none",
		F11:                  fmt.Sprintf("%06d", s.seq%1_000_000),
		Franchise:            s.cfg.Card.Franchise,
		KushkiResponse:       terminal.KushkiResponse{Code: "000", Message: rawApprovedMessage},
		MessageFields:        terminal.MessageFields{F38: fmt.Sprintf("%06d", s.seq%1_000_000), F39: "00"},
		TransactionReference: ref,
		TransactionStatus:    statusApproval,
		TransactionType:      typ,
		TicketNumber:         fmt.Sprintf("%s%012d", now.In(s.cfg.Location).Format("060102"), s.seq),
	}
}

// wait sleeps d on the simulator's clock; false means Close interrupted it.
func (s *Sim) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-s.cfg.After(d):
		return true
	case <-s.done:
		return false
	}
}
