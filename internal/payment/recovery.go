package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/failpoint"
)

// Failpoints of recovery.
const (
	FPRecoveryAfterAbort   = "recovery-after-abort"   // abort answered, nothing journaled yet
	FPRecoveryAfterSearch  = "recovery-after-search"  // search answered, nothing journaled yet
	FPRecoveryBeforeVoid   = "recovery-before-void"   // void intent durable, void not sent
	FPRecoveryAfterVoid    = "recovery-after-void"    // void answered, outcome not journaled
	FPRecoveryBeforeSettle = "recovery-before-settle" // settlement known (search, void, refund, reverse), not journaled
)

// RecoveryConfig configures how unknown outcomes are settled.
type RecoveryConfig struct {
	// ReverseAbandoned: reverse (void, refund or raw-API reverse) an approval
	// nobody claimed; when false, report it (needs_attention).
	ReverseAbandoned bool
	// ClaimWindow: how long a found approval waits for the POS to claim it.
	ClaimWindow time.Duration
	// Budget: how long after the original recovery keeps trying.
	Budget time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts.
	BackoffMin, BackoffMax time.Duration
	// NotFoundGrace is added to the response timeout: once the original is
	// that old, no terminal can still be working on it, so "not found" in
	// its history means it never ran.
	NotFoundGrace time.Duration
}

func (c *RecoveryConfig) setDefaults() {
	if c.ClaimWindow < 0 {
		c.ClaimWindow = 0
	}
	if c.Budget <= 0 {
		c.Budget = 30 * time.Minute
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 2 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = time.Minute
	}
	if c.NotFoundGrace <= 0 {
		c.NotFoundGrace = 10 * time.Second
	}
}

// recoveryNS derives the client_transaction_ids of recovery's own voids and
// refunds from the original's id (UUID v5), so that a retried void after a
// crash reuses its id and the terminal can recognise it.
var recoveryNS = uuid.MustParse("5b0f4c1e-8a6e-4f0e-9a57-0f8f6f1f2b3c")

// recovery is the worker that owns every record whose outcome is not final.
type recovery struct {
	s *Service

	mu        sync.Mutex
	due       map[string]time.Time // id → next attempt
	parked    map[string][]string  // terminal → ids waiting for it to be free
	owned     map[string]bool      // every id recovery is settling
	attention map[string]string    // id → reason, for records in needs_attention
	wake      chan struct{}
	done      chan struct{}
	started   bool
}

func newRecovery(s *Service) *recovery {
	return &recovery{s: s, due: map[string]time.Time{}, parked: map[string][]string{}, owned: map[string]bool{}, attention: map[string]string{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// start loads the in-flight index and starts the worker.
func (rc *recovery) start(ctx context.Context) error {
	recs, err := rc.s.cfg.Journal.InFlight(ctx)
	if err != nil {
		return fmt.Errorf("payment: load in-flight records: %w", err)
	}
	now := rc.s.cfg.Now()
	rc.mu.Lock()
	for _, r := range recs {
		if r.Status == StatusNeedsAttention {
			rc.attention[r.ID] = recoveryReason(r)
		} else {
			rc.due[r.ID] = now
			rc.owned[r.ID] = true
		}
	}
	rc.started = true
	rc.mu.Unlock()
	go rc.loop()
	return nil
}

// wait blocks until the worker has stopped (after the service's base
// context is cancelled).
func (rc *recovery) wait() {
	rc.mu.Lock()
	started := rc.started
	rc.mu.Unlock()
	if started {
		<-rc.done
	}
}

// schedule asks for an attempt on id at or after at.
func (rc *recovery) schedule(id string, at time.Time) {
	rc.mu.Lock()
	if cur, ok := rc.due[id]; !ok || at.Before(cur) {
		rc.due[id] = at
	}
	rc.owned[id] = true
	rc.mu.Unlock()
	rc.kick()
}

// disown forgets an id that is settled or handed to a person.
func (rc *recovery) disown(id string) {
	rc.mu.Lock()
	delete(rc.owned, id)
	delete(rc.due, id)
	rc.mu.Unlock()
}

// park makes id wait until terminal is released.
func (rc *recovery) park(terminal, id string) {
	rc.mu.Lock()
	rc.parked[terminal] = append(rc.parked[terminal], id)
	rc.mu.Unlock()
}

// released is called whenever a terminal's lock is given up: the records
// parked on it are due at once.
func (rc *recovery) released(terminal string) {
	now := rc.s.cfg.Now()
	rc.mu.Lock()
	ids := rc.parked[terminal]
	delete(rc.parked, terminal)
	for _, id := range ids {
		if cur, ok := rc.due[id]; !ok || now.Before(cur) {
			rc.due[id] = now
		}
	}
	rc.mu.Unlock()
	if len(ids) > 0 {
		rc.kick()
	}
}

func (rc *recovery) kick() {
	select {
	case rc.wake <- struct{}{}:
	default:
	}
}

// Kick makes recovery look at its schedule now (for tests that move a fake
// clock, and after a terminal becomes reachable again).
func (s *Service) Kick() { s.rec.kick() }

// Health is what readiness and metrics need to know of the lifecycle.
type Health struct {
	// Recovering counts records whose outcome recovery is settling.
	Recovering int
	// NeedsAttention maps the id of each record a person must look at to the
	// reason.
	NeedsAttention map[string]string
}

// Health returns the recovery counts.
func (s *Service) Health() Health {
	rc := s.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()
	h := Health{Recovering: len(rc.owned), NeedsAttention: make(map[string]string, len(rc.attention))}
	for id, why := range rc.attention {
		h.NeedsAttention[id] = why
	}
	return h
}

func (rc *recovery) loop() {
	defer close(rc.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		id, wait := rc.next()
		if id != "" {
			rc.attempt(id)
			continue
		}
		if wait <= 0 || wait > time.Minute {
			wait = time.Minute
		}
		timer.Reset(wait)
		select {
		case <-rc.s.base.Done():
			return
		case <-rc.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// next returns a due id (earliest first), or how long until the next one.
func (rc *recovery) next() (string, time.Duration) {
	now := rc.s.cfg.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	first, at := "", time.Time{}
	for id, t := range rc.due {
		if first == "" || t.Before(at) {
			first, at = id, t
		}
	}
	switch {
	case first == "":
		return "", 0
	case !at.After(now):
		delete(rc.due, first)
		return first, 0
	}
	return "", at.Sub(now)
}

// attempt runs one recovery step on a record, holding its terminal.
func (rc *recovery) attempt(id string) {
	s := rc.s
	ctx := s.base
	r, err := s.cfg.Journal.Get(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
			s.log.Error().Err(err).Str("client_transaction_id", id).Msg("recovery: read record")
			rc.schedule(id, s.cfg.Now().Add(s.cfg.Recovery.BackoffMin))
		}
		return
	}
	if r.Status.Final() || r.Status == StatusNeedsAttention {
		rc.disown(id)
		return
	}
	holder := "recovery:" + id
	s.mu.Lock()
	running := s.calls[id] != nil
	free := s.busy[r.Terminal] == ""
	if !running && free {
		s.busy[r.Terminal] = holder
	}
	s.mu.Unlock()
	if running || !free {
		rc.park(r.Terminal, id)
		// The lock may have been released between the check and the park.
		s.mu.Lock()
		freeNow := s.busy[r.Terminal] == ""
		s.mu.Unlock()
		if freeNow {
			rc.released(r.Terminal)
		}
		return
	}
	next, err := rc.step(ctx, r)
	s.release(r.Terminal, holder)
	if err != nil && ctx.Err() == nil {
		// Only a journal failure gets here: the step could not record
		// progress. Try again later; nothing was left half done.
		s.log.Error().Err(err).Str("client_transaction_id", id).Msg("recovery: journal")
		next = s.cfg.Now().Add(s.cfg.Recovery.BackoffMax)
	}
	if next.IsZero() {
		rc.disown(id)
	} else {
		rc.schedule(id, next)
	}
	s.hub.notify(id)
}

// step advances one record as far as it can now. It returns when to try
// again (zero: settled) and an error only when the journal failed.
func (rc *recovery) step(ctx context.Context, r *Record) (time.Time, error) {
	s := rc.s
	cfg := s.cfg.Recovery
	now := s.cfg.Now()
	log := s.log.With().Str("client_transaction_id", r.ID).Str("terminal", r.Terminal).Logger()
	st := RecoveryState{Since: now}
	if r.Recovery != nil {
		st = *r.Recovery
	}
	backoff := func() time.Time {
		d := cfg.BackoffMin << min(st.Attempts, 16)
		if d > cfg.BackoffMax || d <= 0 {
			d = cfg.BackoffMax
		}
		return now.Add(d)
	}
	// event records progress durably: the record's status and recovery
	// state change, with an event saying what happened.
	event := func(status Status, route Route, code, detail string) error {
		return rc.progress(ctx, r.ID, st, Event{At: now, Status: status, Route: route, Code: code, Detail: detail})
	}

	if r.Status == StatusPending {
		st = RecoveryState{Since: now}
		if err := event(StatusUnknown, r.Route, "", "outcome unknown: posbridge stopped while the terminal call was running"); err != nil {
			return time.Time{}, err
		}
		log.Warn().Msg("recovery: a call interrupted by a restart")
	}
	// The terminal may be working on the operation until the response
	// timeout after it was last sent, which for a retried operation (a
	// retryable failure sent again with the same id) is later than its
	// creation.
	sent := lastSent(r)
	if now.After(sent.Add(cfg.Budget)) {
		return rc.giveUp(ctx, r, &st, fmt.Sprintf("not settled within the recovery budget of %s", cfg.Budget))
	}
	st.Attempts++

	// The terminal may still be working on it: stop it if it has not yet asked
	// the acquirer (abort does nothing after that; research §5).
	stillRunnable := now.Before(sent.Add(s.cfg.ResponseTimeout + cfg.NotFoundGrace))
	if st.Found == nil && !st.Aborted && stillRunnable {
		route, err := s.cfg.Gateway.Abort(ctx, r.Terminal)
		failpoint.Inject(FPRecoveryAfterAbort)
		switch {
		case err == nil:
			st.Aborted = true
			err = event(StatusUnknown, route, "", "aborted the transaction in progress on the terminal")
		case errors.Is(err, ErrNothingToAbort):
			st.Aborted = true
			err = event(StatusUnknown, route, "", "abort: nothing in progress on the terminal")
		default:
			err = event(StatusUnknown, route, "", "abort failed: "+err.Error())
		}
		if err != nil {
			return time.Time{}, err
		}
	}

	if st.Found == nil {
		res, err := s.cfg.Gateway.Lookup(ctx, r.Terminal, r.ID)
		failpoint.Inject(FPRecoveryAfterSearch)
		switch {
		case err == nil && res.Status == StatusApproved:
			// The void wait runs from here: the approval happened before the
			// search answered, not necessarily before this step began.
			found := *res
			st.Found, st.FoundAt = &found, s.cfg.Now()
			if err := event(StatusUnknown, res.Route, res.Code, "found approved on the terminal: "+res.Reference); err != nil {
				return time.Time{}, err
			}
		case err == nil:
			return rc.settle(ctx, r, res, now, "search")
		case errors.Is(err, ErrNotFound):
			if stillRunnable {
				if err := event(StatusUnknown, "", "", "not in the terminal's history yet"); err != nil {
					return time.Time{}, err
				}
				return sent.Add(s.cfg.ResponseTimeout + cfg.NotFoundGrace), nil
			}
			return rc.settle(ctx, r, &Result{Status: StatusNotCharged, Message: "not in the terminal's history: it never ran"}, now, "search")
		default:
			if err := event(StatusUnknown, "", "", "search failed: "+err.Error()); err != nil {
				return time.Time{}, err
			}
			if s.cfg.Reverser != nil && r.Operation == OpCharge && !r.Claimed && st.Attempts >= 3 {
				return rc.reverse(ctx, r, &st, now, backoff)
			}
			return backoff(), nil
		}
	}

	// The terminal approved it.
	found := st.Found
	if r.Operation != OpCharge && r.Operation != OpAuthorization {
		return rc.settle(ctx, r, found, now, "search") // a follow-up: apply it
	}
	if st.ReversalSent != "" {
		// A void or refund of it went out without a clear answer: the money
		// may be back with the customer, so that is found out first, even if
		// the POS has claimed the payment since.
		return rc.reverseAbandoned(ctx, r, &st, now, backoff)
	}
	if r.Claimed {
		return rc.settle(ctx, r, found, now, "search")
	}
	if claimBy := st.Since.Add(cfg.ClaimWindow); now.Before(claimBy) {
		return claimBy, event(StatusUnknown, "", "", "approved; waiting until "+claimBy.Format(time.RFC3339)+" for the POS to claim it")
	}
	if !cfg.ReverseAbandoned {
		return rc.giveUp(ctx, r, &st, "approved on the terminal but nobody claimed it (policy report): confirm the sale with the customer, then void or keep it")
	}
	return rc.reverseAbandoned(ctx, r, &st, now, backoff)
}

// lastSent returns when r's operation was last handed to the terminal: its
// last pending event (the intent of the latest send; a claim recorded while
// pending is later, which only makes recovery wait longer), else its
// creation.
func lastSent(r *Record) time.Time {
	for i := len(r.Events) - 1; i >= 0; i-- {
		if r.Events[i].Status == StatusPending {
			return r.Events[i].At
		}
	}
	return r.CreatedAt
}

// reversalID derives the client_transaction_id of recovery's void or refund
// of the record id.
func reversalID(id string, op Operation) string {
	return uuid.NewSHA1(recoveryNS, []byte(id+"/"+string(op))).String()
}

// reverseAbandoned voids (or, past the cutoff, refunds) an approval nobody
// claimed, after the mandatory wait. A reversal already sent without a
// clear answer is looked up first, whatever happened since (a claim, the
// cutoff).
func (rc *recovery) reverseAbandoned(ctx context.Context, r *Record, st *RecoveryState, now time.Time, backoff func() time.Time) (time.Time, error) {
	s := rc.s
	found := st.Found
	put := func(status Status, route Route, code, detail string) error {
		return rc.progress(ctx, r.ID, *st, Event{At: now, Status: status, Route: route, Code: code, Detail: detail})
	}

	// A previous attempt whose outcome is unknown: look it up before sending
	// anything, so it is never sent twice blindly, and never forgotten.
	if sent := st.ReversalSent; sent != "" {
		sentOp := OpVoid
		if sent == reversalID(r.ID, OpRefund) {
			sentOp = OpRefund
		}
		res, err := s.cfg.Gateway.Lookup(ctx, r.Terminal, sent)
		switch {
		case err == nil && res.Status == StatusApproved:
			return rc.finishReversal(ctx, r, found, sentOp, sent, res, now)
		case err == nil, errors.Is(err, ErrNotFound) && !now.Before(st.ReversalAt.Add(s.cfg.ResponseTimeout+s.cfg.Recovery.NotFoundGrace)):
			st.ReversalSent = "" // it did not happen
		default:
			return backoff(), put(StatusUnknown, "", "", fmt.Sprintf("%s %s outcome still unknown", sentOp, sent))
		}
	}
	if r.Claimed {
		// No reversal happened, and the POS wants the payment after all.
		return rc.settle(ctx, r, found, now, "search")
	}

	opens, closes := s.cfg.Policy.VoidWindow(st.FoundAt)
	if now.Before(opens) {
		return opens, nil
	}
	// An authorization took no money, so there is nothing to refund: it is
	// voided (its hold released) even past the cutoff, as Service.Cancel
	// does.
	op := OpVoid
	if r.Operation != OpAuthorization && (!now.Before(closes) || st.UseRefund) {
		op = OpRefund
	}
	fid := reversalID(r.ID, op)

	tr := TerminalRequest{Operation: op, ID: fid, Reference: found.Reference}
	if op == OpRefund {
		a := r.Amount.clone()
		tr.Amount = &a
	}
	res, err := s.cfg.Gateway.Send(ctx, r.Terminal, tr, func(route Route) error {
		st.ReversalSent, st.ReversalAt = fid, now
		if err := put(StatusUnknown, route, "", fmt.Sprintf("abandoned approval: sending %s %s", op, fid)); err != nil {
			return &intentError{err}
		}
		failpoint.Inject(FPRecoveryBeforeVoid)
		return nil
	})
	failpoint.Inject(FPRecoveryAfterVoid)
	var ie *intentError
	var te *TerminalError
	switch {
	case errors.As(err, &ie):
		return time.Time{}, ie.err
	case err == nil && res.Status == StatusApproved:
		return rc.finishReversal(ctx, r, found, op, fid, res, now)
	case err == nil:
		st.ReversalSent = ""
		return backoff(), put(StatusUnknown, res.Route, res.Code, fmt.Sprintf("%s %s %s: %s", op, fid, res.Status, res.Message))
	case errors.Is(err, ErrNotSent), errors.Is(err, ErrBusy):
		st.ReversalSent = ""
		return backoff(), put(StatusUnknown, "", "", fmt.Sprintf("%s %s not sent: %v", op, fid, err))
	case errors.As(err, &te):
		st.ReversalSent = ""
		if op == OpVoid {
			st.UseRefund = true // e.g. the processor cutoff passed: refund instead
		}
		return backoff(), put(StatusUnknown, te.Route, te.Code, fmt.Sprintf("%s %s refused: %s", op, fid, te.Message))
	default:
		return backoff(), put(StatusUnknown, "", "", fmt.Sprintf("%s %s outcome unknown: %v", op, fid, err))
	}
}

func (rc *recovery) finishReversal(ctx context.Context, r *Record, found *Result, op Operation, fid string, res *Result, now time.Time) (time.Time, error) {
	status, how := StatusVoided, "void"
	if op == OpRefund {
		status, how = StatusRefunded, "refund"
	}
	settled := *found
	settled.Status = status
	settled.Message = fmt.Sprintf("abandoned approval %s by %s %s", status, op, fid)
	if res.Route != "" {
		settled.Route = res.Route
	}
	return rc.settle(ctx, r, &settled, now, how)
}

// reverse reverses a charge by its client_transaction_id through the raw
// card-present API, for when the terminal cannot be searched at all.
func (rc *recovery) reverse(ctx context.Context, r *Record, st *RecoveryState, now time.Time, backoff func() time.Time) (time.Time, error) {
	s := rc.s
	if at := st.Since.Add(s.cfg.Policy.VoidDelay); now.Before(at) {
		return at, nil
	}
	res, err := s.cfg.Reverser.Reverse(ctx, r.Terminal, r.ID, r.Amount)
	if err == nil && res.Status == StatusApproved {
		// The answer describes the reversal, not the charge: its reference
		// and ticket are the reversal's, so they go in the event, never in
		// the charge's own fields (whose reference the terminal never gave).
		settled := Result{Status: StatusReversed, Route: res.Route, Code: res.Code,
			Message: "reversed through the raw card-present API (reversal reference " + res.Reference + ")"}
		return rc.settle(ctx, r, &settled, now, "reverse")
	}
	detail := "reverse failed: "
	if err != nil {
		detail += err.Error()
	} else {
		detail += string(res.Status) + " " + res.Message
	}
	return backoff(), rc.progress(ctx, r.ID, *st, Event{At: now, Status: StatusUnknown, Detail: detail})
}

// settle closes a record with what recovery learned, stores the reply the
// POS gets from now on, and applies an approved follow-up to its original.
func (rc *recovery) settle(ctx context.Context, r *Record, res *Result, now time.Time, how string) (time.Time, error) {
	s := rc.s
	failpoint.Inject(FPRecoveryBeforeSettle)
	var final *Record
	err := s.cfg.Journal.Update(ctx, func(tx Tx) error {
		x, err := tx.Get(r.ID)
		if err != nil {
			return err
		}
		if x.Status.Final() {
			return nil // settled meanwhile
		}
		applyRecovered(x, res, now)
		settledReply(x)
		if err := tx.Put(x); err != nil {
			return err
		}
		final = x
		if x.Status == StatusApproved && x.Operation.FollowUp() {
			o, err := tx.Get(x.OriginalID)
			if err != nil {
				return err
			}
			applyFollowUp(o, x, now)
			return tx.Put(o)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	if final != nil {
		s.obs.Settled(final.Operation, final.Status, final.Route)
		s.obs.Recovered(how)
		s.log.Info().Str("client_transaction_id", r.ID).Str("terminal", r.Terminal).
			Str("status", string(final.Status)).Str("how", how).Msg("recovery: settled")
	}
	return time.Time{}, nil
}

// applyRecovered records what recovery found on x. The reference, ticket and
// card come from the terminal's view of the original.
func applyRecovered(x *Record, res *Result, now time.Time) {
	switch res.Status {
	case StatusApproved, StatusDeclined, StatusCancelled:
		settleResult(x, res, now)
		return
	}
	if res.Reference != "" {
		x.Reference = res.Reference
		x.TicketNumber = res.TicketNumber
		x.AuthorizationCode = res.AuthorizationCode
		x.Card = res.Card
		x.TerminalResponse = res.Raw
	}
	x.Recovery = nil
	x.AddEvent(Event{At: now, Status: res.Status, Route: res.Route, Code: res.Code, Detail: res.Message})
}

// giveUp moves a record to needs_attention with the reason.
func (rc *recovery) giveUp(ctx context.Context, r *Record, st *RecoveryState, why string) (time.Time, error) {
	s := rc.s
	now := s.cfg.Now()
	st.Reason = why
	// Readiness learns of it before the journal does, so it never claims
	// "nothing needs attention" while one does.
	rc.mu.Lock()
	rc.attention[r.ID] = why
	rc.mu.Unlock()
	if err := rc.progress(ctx, r.ID, *st, Event{At: now, Status: StatusNeedsAttention, Detail: why}); err != nil {
		rc.mu.Lock()
		delete(rc.attention, r.ID)
		rc.mu.Unlock()
		return time.Time{}, err
	}
	s.obs.Settled(r.Operation, StatusNeedsAttention, r.Route)
	s.obs.Recovered("needs_attention")
	s.log.Error().Str("client_transaction_id", r.ID).Str("terminal", r.Terminal).Str("reason", why).
		Msg("recovery: needs attention")
	return time.Time{}, nil
}

// progress makes recovery's progress on a record durable: its recovery
// state becomes st and ev says what happened (and sets its status).
func (rc *recovery) progress(ctx context.Context, id string, st RecoveryState, ev Event) error {
	return rc.update(ctx, id, func(x *Record) {
		state := st // a fresh copy per run: the journal may run this more than once
		x.Recovery = &state
		x.AddEvent(ev)
	})
}

// update applies change to the current version of a record in one durable
// journal transaction. change must depend only on its argument (the journal
// may run it more than once).
func (rc *recovery) update(ctx context.Context, id string, change func(*Record)) error {
	return rc.s.cfg.Journal.Update(ctx, func(tx Tx) error {
		x, err := tx.Get(id)
		if err != nil {
			return err
		}
		change(x)
		return tx.Put(x)
	})
}

// Resolutions a person may record for a payment in needs_attention.
var resolutions = map[Status]string{
	StatusApproved:   "the sale stands: the customer was charged and keeps the goods",
	StatusNotCharged: "no money moved (checked on the terminal or with the acquirer)",
	StatusVoided:     "voided outside posbridge (on the terminal or in Kushki's console)",
	StatusRefunded:   "refunded outside posbridge (on the terminal or in Kushki's console)",
	StatusReversed:   "reversed outside posbridge",
}

// Resolve records a person's decision on a payment recovery gave up on
// (needs_attention): the sale stands (approved) or no money is held by it
// any more (not_charged, voided, refunded, reversed). It settles the record
// with an event carrying the note, stores the reply the POS gets from now
// on, and clears it from readiness. Errors: not_found; invalid_state when the
// record does not need attention; validation_failed for another status or a
// missing note.
func (s *Service) Resolve(ctx context.Context, id string, status Status, note string) (*Record, error) {
	if _, ok := resolutions[status]; !ok {
		return nil, &Error{Code: CodeValidation, Field: "status", ID: id,
			Message: "status must be approved, not_charged, voided, refunded or reversed"}
	}
	if note == "" || len(note) > 500 {
		return nil, &Error{Code: CodeValidation, Field: "note", ID: id,
			Message: "note must say what was checked and decided (1 to 500 bytes)"}
	}
	now := s.cfg.Now()
	var settled *Record
	err := s.cfg.Journal.Update(ctx, func(tx Tx) error {
		settled = nil
		x, err := tx.Get(id)
		if err != nil {
			return err
		}
		if x.Status != StatusNeedsAttention {
			return &Error{Code: CodeInvalidState, ID: id,
				Message: fmt.Sprintf("%s is %s: only a payment that needs attention is resolved by hand", id, x.Status)}
		}
		if x.Recovery != nil && x.Recovery.Found != nil && x.Reference == "" {
			f := x.Recovery.Found
			x.Reference, x.TicketNumber, x.AuthorizationCode = f.Reference, f.TicketNumber, f.AuthorizationCode
			x.Card, x.TerminalResponse = f.Card, f.Raw
		}
		if status == StatusApproved && x.Operation == OpAuthorization && x.AuthorizedAmount == nil {
			t := x.Amount.Total()
			x.AuthorizedAmount = &t
		}
		x.Recovery = nil
		x.AddEvent(Event{At: now, Status: status, Detail: "resolved by a person: " + note})
		settledReply(x)
		if err := tx.Put(x); err != nil {
			return err
		}
		settled = x
		return nil
	})
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return nil, pe
	case errors.Is(err, ErrNotFound):
		return nil, &Error{Code: CodeNotFound, ID: id, Message: "no transaction " + id}
	case err != nil:
		return nil, journalUnavailable(id, err)
	}
	rc := s.rec
	rc.mu.Lock()
	delete(rc.attention, id)
	rc.mu.Unlock()
	rc.disown(id)
	s.hub.notify(id)
	s.obs.Settled(settled.Operation, settled.Status, settled.Route)
	s.log.Warn().Str("client_transaction_id", id).Str("terminal", settled.Terminal).
		Str("status", string(status)).Str("note", note).Msg("resolved by a person")
	return settled, nil
}
