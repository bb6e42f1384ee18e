package sim

import (
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/terminal"
)

// Transaction statuses in the history: the wire's APPROVAL and DECLINED, and
// CANCELLED for a customer cancel or an abort (local history only).
const (
	statusApproval  = terminal.StatusApproval
	statusDeclined  = terminal.StatusDeclined
	statusCancelled = terminal.StatusCancelled
)

// Validity of a pre-authorization by card type
// (seeds/kushki-one-smartpos-payment-api.txt "Validity of pre-authorizations"),
// and how long a charge can be refunded (research §7 "Refund … up to 120
// days").
const (
	validityCredit = 28 * 24 * time.Hour
	validityDebit  = 7 * 24 * time.Hour
	refundWindow   = 120 * 24 * time.Hour
)

// phase is where the active transaction is.
type phase string

const (
	// phaseCustomer: the customer is presenting the card; abort works.
	phaseCustomer phase = "customer"
	// phaseApproval: the terminal asked the acquirer; abort no longer works
	// (research §5: abort only works before APPROVAL_REQUESTED).
	phaseApproval phase = "approval"
)

// activeTxn is the one transaction the terminal is running.
type activeTxn struct {
	id      string
	ep      terminal.Endpoint
	phase   phase
	since   time.Time
	abort   chan struct{} // closed by a successful abort
	aborted bool
}

// txn is one processed operation in the terminal's history. Fields below
// "state" change as follow-ups act on it; s.mu guards them.
type txn struct {
	id          string
	ep          terminal.Endpoint
	raw         bool // made through the raw card-present API: the acquirer saw it, the terminal did not
	status      string
	amount      payment.Amount
	total       money.Decimal
	ref         string
	origRef     string
	orig        *txn
	ticket      string
	authCode    string
	created     time.Time
	fingerprint string
	reply       []byte // the plaintext answer, replayed for a duplicate id

	// state
	authorized money.Decimal // authorization: authorized + re-authorizations + tips
	expires    time.Time     // authorization: end of validity
	captured   *txn          // authorization: its capture
	tips       []*txn        // charge: approved tips
	refunded   money.Decimal // charge, capture, tip: refunded so far
	voided     bool
	reversed   bool
}

// takesMoney reports whether t took money from the card: an approved charge,
// capture, or tip on a charge.
func (t *txn) takesMoney() bool {
	if t.status != statusApproval {
		return false
	}
	switch t.ep {
	case terminal.EndpointCharge, terminal.EndpointCapture:
		return true
	case terminal.EndpointPosTip:
		return t.orig != nil && t.orig.ep == terminal.EndpointCharge
	}
	return false
}

// held is what an authorization still holds on the card at now.
func (t *txn) held(now time.Time) money.Decimal {
	if t.ep != terminal.EndpointAuthorization || t.status != statusApproval || t.voided || t.reversed ||
		t.captured != nil || !now.Before(t.expires) {
		return money.Decimal{}
	}
	return t.authorized
}

// gone reports whether t's money went back through a void or reverse.
func (t *txn) gone() bool { return t.voided || t.reversed }

// online reports whether t reached the acquirer (approved or declined): all
// but a transaction cancelled before approval.
func (t *txn) online() bool { return t.status != statusCancelled }

// txnType names an operation as answers and searches do (the raw card-present
// API's transaction_type values, research §4).
func txnType(ep terminal.Endpoint) string {
	switch ep {
	case terminal.EndpointAuthorization:
		return "preAuth"
	case terminal.EndpointReAuthorization:
		return "reAuthorization"
	case terminal.EndpointPosTip:
		return "posTip"
	}
	return string(ep) // charge, capture, void, refund
}

// verdict is the acquirer's decision on an amount (research §7 "Test data",
// docs.kushki.com/cl/en/card-present-payments/get-card-info/testing-your-integration).
type verdict struct {
	approved bool
	code     string // kushki_response.code
	message  string
	iso      string // F39
}

func decide(total money.Decimal) verdict {
	switch {
	case total == money.New(10, 0):
		return verdict{code: "01", iso: "01", message: "Transaction declined. Please contact your card issuer."}
	case total == money.New(40, 0):
		return verdict{code: "04", iso: "04", message: "The entered card has been reported."}
	case total == money.New(50, 0):
		return verdict{code: "05", iso: "05", message: "An error occurred while processing the transaction."}
	case total == money.New(74, 0):
		return verdict{approved: true, code: "000", iso: "00", message: "Approval (transaction approved with delay)."}
	}
	return verdict{approved: true, code: "000", iso: "00", message: "Transacción aprobada."}
}

// delayedAmount reports whether an operation on total is "approved with
// delay": 74 on any operation with an amount, 174 as the original of a void
// or reverse.
func delayedAmount(total money.Decimal, voidOf bool) bool {
	if voidOf {
		return total == money.New(174, 0)
	}
	return total == money.New(74, 0)
}

// pay runs one payment operation: the idempotency check, the busy check, the
// think time (charge and authorization), the lifecycle rules and the
// acquirer's decision. ok is false when Close interrupted it (no answer).
func (s *Sim) pay(req *payReq, cancel bool) (status int, resp []byte, ok bool) {
	s.mu.Lock()
	if s.active != nil && s.active.id == req.id {
		s.mu.Unlock()
		return s.errWithID(busyErr(), req.id)
	}
	if prior := s.byID[req.id]; len(prior) > 0 {
		switch s.cfg.Idempotency {
		case IdempotencyReplay:
			first := prior[0]
			s.mu.Unlock()
			if first.fingerprint == req.fingerprint {
				s.log.Debug().Str("id", req.id).Msg("replaying the first answer")
				return http.StatusOK, first.reply, true
			}
			return s.errWithID(paramErr(CodeDuplicateID, "client_transaction_id",
				"client_transaction_id was already used for a different request"), req.id)
		case IdempotencyReject:
			s.mu.Unlock()
			return s.errWithID(paramErr(CodeDuplicateID, "client_transaction_id",
				"client_transaction_id was already used"), req.id)
		}
	}
	if s.active != nil {
		s.mu.Unlock()
		return s.errWithID(busyErr(), req.id)
	}
	var customer, approval time.Duration
	if req.ep == terminal.EndpointCharge || req.ep == terminal.EndpointAuthorization {
		customer = s.cfg.ThinkTime - s.cfg.ApprovalPhase
		approval = s.cfg.ApprovalPhase
	}
	if req.ep == terminal.EndpointVoid {
		if o := s.byRef[req.ref]; o != nil && delayedAmount(o.total, true) {
			approval += s.cfg.DelayedApproval
		}
	} else if req.amount != nil && delayedAmount(req.amount.Total(), false) {
		approval += s.cfg.DelayedApproval
	}
	a := &activeTxn{id: req.id, ep: req.ep, phase: phaseApproval, since: s.cfg.Now(), abort: make(chan struct{})}
	if customer > 0 || cancel {
		a.phase = phaseCustomer
	}
	s.active = a
	s.mu.Unlock()

	defer func() {
		s.mu.Lock()
		if s.active == a {
			s.active = nil
		}
		s.mu.Unlock()
	}()

	if customer > 0 {
		select {
		case <-s.cfg.After(customer):
		case <-a.abort:
		case <-s.done:
			return 0, nil, false
		}
	}
	s.mu.Lock()
	if a.aborted || cancel {
		t := s.cancelLocked(req, a.aborted)
		s.active = nil
		s.mu.Unlock()
		return http.StatusOK, t.reply, true
	}
	a.phase = phaseApproval
	s.mu.Unlock()

	if approval > 0 {
		select {
		case <-s.cfg.After(approval):
		case <-s.done:
			return 0, nil, false
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, e := s.applyLocked(req)
	s.active = nil
	if e != nil {
		return s.errWithID(e, req.id)
	}
	return http.StatusOK, t.reply, true
}

func (s *Sim) errWithID(e *apiError, id string) (int, []byte, bool) {
	e.lf.Object = &terminal.ErrorObject{ClientTransactionID: id, SerialNumber: s.cfg.Serial, TerminalID: s.cfg.Serial}
	return e.status, s.errorBody(e), true
}

// cancelLocked records a cancelled transaction (customer cancel or abort) in
// the local history. Nothing reached the acquirer and no money moved.
func (s *Sim) cancelLocked(req *payReq, aborted bool) *txn {
	msg := "User cancel the process" // research §1, TS-MESA
	if aborted {
		msg = "Transaction aborted"
	}
	t := s.newTxn(req)
	t.status = statusCancelled
	t.reply = mustJSON(terminal.LinkFailure{Type: terminal.TypeTerminalSunmi, Code: terminal.CodeUserCancel, Message: msg})
	s.recordLocked(t)
	return t
}

func (s *Sim) newTxn(req *payReq) *txn {
	t := &txn{id: req.id, ep: req.ep, origRef: req.ref, created: s.cfg.Now(), fingerprint: req.fingerprint}
	if req.amount != nil {
		t.amount = *req.amount
		t.total = req.amount.Total()
	}
	return t
}

func (s *Sim) recordLocked(t *txn) {
	s.txns = append(s.txns, t)
	s.byID[t.id] = append(s.byID[t.id], t)
	if t.ref != "" {
		s.byRef[t.ref] = t
	}
}

// applyLocked checks the lifecycle rules against the original, asks the
// acquirer (the amount table), records the transaction and applies its
// effects. A rule violation is returned and nothing is recorded.
func (s *Sim) applyLocked(req *payReq) (*txn, *apiError) {
	now := s.cfg.Now()
	t := s.newTxn(req)
	var orig *txn
	if req.ref != "" {
		orig = s.byRef[req.ref]
		if orig == nil {
			return nil, notFoundErr(CodeNoReference, "transaction_reference", "no transaction with that transaction_reference")
		}
		if e := s.checkRules(req, orig, now); e != nil {
			return nil, e
		}
		t.orig = orig
	}
	var v verdict
	switch req.ep {
	case terminal.EndpointVoid:
		t.amount, t.total = orig.amount, orig.total
		v = verdict{approved: true, code: "000", iso: "00", message: "Transacción aprobada."}
		if delayedAmount(orig.total, true) {
			v.message = "Approval (transaction approved with delay)."
		}
	case terminal.EndpointRefund:
		if req.amount == nil {
			t.total = refundable(orig)
			t.amount = payment.Amount{SubtotalIVA0: t.total}
		}
		v = decide(t.total)
	default:
		v = decide(t.total)
	}
	t.ref = uuid.NewString()
	if v.approved {
		t.status = statusApproval
		s.seq++ // the ticket and authorization code come from the sequence
		t.ticket = fmt.Sprintf("%s%012d", now.In(s.cfg.Location).Format("060102"), s.seq)
		t.authCode = fmt.Sprintf("%06d", s.seq%1_000_000)
		s.effectLocked(t, orig, now)
	} else {
		t.status = statusDeclined
	}
	t.reply = mustJSON(s.paymentResponse(t, v))
	s.recordLocked(t)
	return t, nil
}

// checkRules applies the terminal-side lifecycle rules of a follow-up on
// orig. Sources: seeds/kushki-one-smartpos-payment-api.txt (capture ≤ 110 %,
// one capture per cycle, re-authorization, void same day ≥ 1 minute after,
// refund of settled money) and research §1 (capture cites the authorization's
// reference) and §7 (refund up to 120 days).
func (s *Sim) checkRules(req *payReq, orig *txn, now time.Time) *apiError {
	const ref = "transaction_reference"
	if orig.status != statusApproval {
		return acquirerErr(CodeOpNotAllowed, ref, "the original transaction was not approved")
	}
	if orig.gone() {
		return acquirerErr(CodeAlreadyVoided, ref, "the original transaction was already voided or reversed")
	}
	total := money.Decimal{}
	if req.amount != nil {
		total = req.amount.Total()
	}
	switch req.ep {
	case terminal.EndpointCapture, terminal.EndpointReAuthorization:
		if orig.ep == terminal.EndpointReAuthorization {
			return acquirerErr(CodeOpNotAllowed, ref, "cite the authorization's transaction_reference, not a re-authorization's")
		}
		if orig.ep != terminal.EndpointAuthorization {
			return acquirerErr(CodeOpNotAllowed, ref, "only an authorization can be captured or re-authorized")
		}
		if orig.captured != nil {
			return acquirerErr(CodeOpNotAllowed, ref, "the authorization was already captured (one capture per authorization)")
		}
		if !now.Before(orig.expires) {
			return acquirerErr(CodeOpNotAllowed, ref, "the authorization expired")
		}
		if limit := orig.authorized.Percent(110); req.ep == terminal.EndpointCapture && total.Cmp(limit) > 0 {
			return acquirerErr(CodeOpNotAllowed, "amount", "the capture exceeds 110%% of the authorized total (%s)", limit)
		}
	case terminal.EndpointPosTip:
		switch orig.ep {
		case terminal.EndpointCharge:
			if orig.refunded.Sign() > 0 {
				return acquirerErr(CodeOpNotAllowed, ref, "the charge was refunded")
			}
		case terminal.EndpointAuthorization:
			if orig.captured != nil {
				return acquirerErr(CodeOpNotAllowed, ref, "the authorization was already captured")
			}
			if !now.Before(orig.expires) {
				return acquirerErr(CodeOpNotAllowed, ref, "the authorization expired")
			}
		default:
			return acquirerErr(CodeOpNotAllowed, ref, "a tip goes on a charge or an authorization")
		}
	case terminal.EndpointVoid:
		if e := s.voidableLocked(orig, now); e != nil {
			return e
		}
	case terminal.EndpointRefund:
		switch orig.ep {
		case terminal.EndpointCharge, terminal.EndpointCapture:
		case terminal.EndpointAuthorization:
			return acquirerErr(CodeOpNotAllowed, ref, "an authorization holds no money: refund its capture, or void it")
		default:
			return acquirerErr(CodeOpNotAllowed, ref, "only a charge or a capture can be refunded")
		}
		if now.Sub(orig.created) > refundWindow {
			return acquirerErr(CodeRefundWindow, ref, "Refund not available: more than 120 days after the original")
		}
		left := refundable(orig)
		if left.Sign() <= 0 {
			return acquirerErr(CodeOpNotAllowed, ref, "nothing is left to refund")
		}
		if total.Cmp(left) > 0 {
			return acquirerErr(CodeOpNotAllowed, "amount", "the refund exceeds what remains refundable (%s)", left)
		}
	}
	return nil
}

// voidableLocked checks the void (and raw Void/Reverse) rules: same day in
// the configured location, at least VoidMinWait after the original, nothing
// refunded or captured on it.
func (s *Sim) voidableLocked(orig *txn, now time.Time) *apiError {
	const ref = "transaction_reference"
	switch orig.ep {
	case terminal.EndpointCharge, terminal.EndpointAuthorization, terminal.EndpointCapture, terminal.EndpointPosTip:
	default:
		return acquirerErr(CodeOpNotAllowed, ref, "a %s cannot be voided", orig.ep)
	}
	if orig.gone() {
		return acquirerErr(CodeAlreadyVoided, ref, "the original transaction was already voided or reversed")
	}
	if e := s.voidWindow(orig, now); e != nil {
		return e
	}
	if orig.refunded.Sign() > 0 {
		return acquirerErr(CodeOpNotAllowed, ref, "the original was partly refunded: refund the rest instead")
	}
	if orig.captured != nil {
		return acquirerErr(CodeOpNotAllowed, ref, "the authorization was captured: void the capture instead")
	}
	return nil
}

// voidWindow is the timing part of the void rules.
func (s *Sim) voidWindow(orig *txn, now time.Time) *apiError {
	if !s.sameDay(orig.created, now) {
		return acquirerErr(CodeOpNotAllowed, "transaction_reference", "void is only possible the same day, before the processor cut-off: refund instead")
	}
	if now.Sub(orig.created) < s.cfg.VoidMinWait {
		return acquirerErr(CodeOpNotAllowed, "transaction_reference", "wait at least %s after the original before voiding it", s.cfg.VoidMinWait)
	}
	return nil
}

// sameDay reports whether a and b fall on the same day in Config.Location
// (the processor's cut-off is at midnight).
func (s *Sim) sameDay(a, b time.Time) bool {
	y1, m1, d1 := a.In(s.cfg.Location).Date()
	y2, m2, d2 := b.In(s.cfg.Location).Date()
	return y1 == y2 && m1 == m2 && d1 == d2
}

// refundable is what can still be refunded of a charge (with its tips) or a
// capture.
func refundable(orig *txn) money.Decimal {
	left := orig.total.Sub(orig.refunded)
	for _, tip := range orig.tips {
		if !tip.gone() {
			left = left.Add(tip.total.Sub(tip.refunded))
		}
	}
	return left
}

// effectLocked applies an approved follow-up to its original.
func (s *Sim) effectLocked(t, orig *txn, now time.Time) {
	switch t.ep {
	case terminal.EndpointAuthorization:
		t.authorized = t.total
		t.expires = now.Add(s.validity())
	case terminal.EndpointCapture:
		orig.captured = t
	case terminal.EndpointReAuthorization:
		orig.authorized = orig.authorized.Add(t.total)
		orig.expires = now.Add(s.validity()) // seeds: "extends … the validity"
	case terminal.EndpointPosTip:
		if orig.ep == terminal.EndpointCharge {
			orig.tips = append(orig.tips, t)
		} else {
			orig.authorized = orig.authorized.Add(t.total)
		}
	case terminal.EndpointVoid:
		voidLocked(orig)
	case terminal.EndpointRefund:
		allocateRefund(orig, t.total)
	}
}

// voidLocked marks orig (and a charge's tips) voided.
func voidLocked(orig *txn) {
	orig.voided = true
	for _, tip := range orig.tips {
		tip.voided = true
	}
}

// allocateRefund books a refund on the charge first, then on its tips.
func allocateRefund(orig *txn, amount money.Decimal) {
	parts := append([]*txn{orig}, orig.tips...)
	for _, p := range parts {
		if amount.Sign() <= 0 {
			return
		}
		if p.gone() {
			continue
		}
		left := p.total.Sub(p.refunded)
		take := amount
		if take.Cmp(left) > 0 {
			take = left
		}
		p.refunded = p.refunded.Add(take)
		amount = amount.Sub(take)
	}
}

func (s *Sim) validity() time.Duration {
	if s.cfg.Card.Type == "debit" {
		return validityDebit
	}
	return validityCredit
}

// paymentResponse is the answer to a processed operation decided by v: the
// fields posbridge reads at the top level, and the same fields again under
// rawResponse, as third-party clients saw them (research §1).
func (s *Sim) paymentResponse(t *txn, v verdict) terminal.PaymentResponse {
	approved := t.status == statusApproval
	k := terminal.KushkiResponse{Code: v.code, Message: v.message}
	inner := terminal.PaymentResponse{
		Approved:             &approved,
		Message:              v.message,
		ClientTransactionID:  t.id,
		TransactionStatus:    t.status,
		TransactionReference: t.ref,
		TransactionType:      txnType(t.ep),
		TicketNumber:         t.ticket,
		Franchise:            s.cfg.Card.Franchise,
		CardType:             s.cfg.Card.Type,
		MaskedCard:           s.cfg.Card.Masked,
		MessageFields:        &terminal.MessageFields{F38: t.authCode, F39: v.iso},
		KushkiResponse:       &k,
	}
	outer := inner
	outer.RawResponse = &inner
	return outer
}

// abort cancels the active transaction if it is still in its customer phase.
func (s *Sim) abort() (int, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.active
	switch {
	case a == nil:
		e := newErr(http.StatusConflict, terminal.TypeTerminal, CodeNothingActive, "", "no transaction in progress")
		return e.status, s.errorBody(e), true
	case a.aborted:
		e := newErr(http.StatusConflict, terminal.TypeTerminal, CodeNothingActive, "", "the transaction in progress is already being aborted")
		return e.status, s.errorBody(e), true
	case a.phase != phaseCustomer:
		e := newErr(http.StatusConflict, terminal.TypeTerminal, CodeNothingActive, "",
			"the transaction in progress can no longer be aborted: the terminal already asked the acquirer")
		return e.status, s.errorBody(e), true
	}
	a.aborted = true
	close(a.abort)
	return http.StatusOK, mustJSON(abortAnswer{Message: "Transaction aborted", ClientTransactionID: a.id}), true
}

// abortAnswer is the 200 body of a successful abort (the vendor shows none;
// our choice).
type abortAnswer struct {
	Message             string `json:"message"`
	ClientTransactionID string `json:"client_transaction_id"`
}
