package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/failpoint"
	"github.com/posbridge/posbridge/internal/money"
)

// Failpoint names: the points of a payment's life where crash tests kill
// the process (internal/failpoint; compiled in only with -tags failpoint).
const (
	FPBeforeIntent       = "before-intent"        // accepted and validated, intent not yet written
	FPAfterIntentCommit  = "after-intent-commit"  // intent durable, nothing sent
	FPAfterAnswer        = "after-answer"         // terminal answered, outcome not yet written
	FPAfterOutcomeCommit = "after-outcome-commit" // outcome durable, POS not yet answered
	FPAfterClaimCommit   = "after-claim-commit"   // a POS claim durable, recovery not yet told, POS not yet answered
)

// TerminalInfo is what the lifecycle needs to know of a configured terminal.
type TerminalInfo struct {
	Name     string
	Currency money.Currency
}

// Observer is told about settled operations, for metrics. Implementations
// must be fast and safe for concurrent use.
type Observer interface {
	// Settled is called when a record reaches a status through the
	// lifecycle or recovery.
	Settled(op Operation, status Status, route Route)
	// Recovered is called when recovery settles a record, with how:
	// search, void, refund, reverse or needs_attention.
	Recovered(how string)
}

type nopObserver struct{}

func (nopObserver) Settled(Operation, Status, Route) {}
func (nopObserver) Recovered(string)                 {}

// Config configures a Service. Journal, Gateway and Terminals are required.
type Config struct {
	Journal   Journal
	Gateway   Gateway
	Reverser  Reverser // optional: raw card-present API reversal
	Terminals []TerminalInfo
	Policy    Policy
	Recovery  RecoveryConfig

	// ResponseTimeout is the longest a terminal may take to answer a
	// blocking operation (the gateway enforces it; the lifecycle also uses it
	// to know when a terminal can no longer be processing an old request).
	ResponseTimeout time.Duration

	// Fatal is called when an outcome the terminal gave cannot be made
	// durable: the daemon must stop rather than retry the fsync (recovery
	// after the restart settles the payment). Default: panic.
	Fatal func(error)

	Now      func() time.Time
	Logger   zerolog.Logger
	Observer Observer
}

// Reply is what the POS gets for an operation.
type Reply struct {
	// ID is the operation's client_transaction_id.
	ID string
	// Code is "" when Body is the transaction object, otherwise the error
	// code Body describes; the API maps it to the HTTP status.
	Code Code
	// Body is the exact JSON body.
	Body []byte
	// Replayed is set when the reply came from the journal for a retry.
	Replayed bool
	// Accepted is set for an asynchronous request that is durable and still
	// running: the POS fetches the result by ID (HTTP 202).
	Accepted bool
}

// Service runs every payment operation: validation, the terminal lock,
// idempotency, the durable intent, the terminal call, the durable outcome;
// and the recovery of outcomes that are not known. It is safe for concurrent
// use. New sets it up, Start begins recovery, Close stops it.
type Service struct {
	cfg       Config
	terminals map[string]TerminalInfo
	log       zerolog.Logger
	obs       Observer
	hub       hub
	rec       *recovery

	mu     sync.Mutex
	calls  map[string]*call  // operations running now, by client_transaction_id
	busy   map[string]string // terminal → id of the operation holding it
	closed bool
	wg     sync.WaitGroup
	stop   context.CancelFunc
	base   context.Context
}

// call is one operation in flight; retries with the same id join it.
type call struct {
	id, hash string
	op       Operation
	started  chan struct{} // closed once the intent is durable or the call ended
	done     chan struct{}
	reply    *Reply
	err      error
	once     sync.Once
}

func (c *call) markStarted() { c.once.Do(func() { close(c.started) }) }

// New returns a Service. It does no I/O.
func New(cfg Config) (*Service, error) {
	if cfg.Journal == nil || cfg.Gateway == nil {
		return nil, errors.New("payment: journal and gateway are required")
	}
	if len(cfg.Terminals) == 0 {
		return nil, errors.New("payment: no terminals")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Fatal == nil {
		cfg.Fatal = func(err error) { panic(err) }
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 120 * time.Second
	}
	cfg.Recovery.setDefaults()
	s := &Service{
		cfg:       cfg,
		terminals: map[string]TerminalInfo{},
		log:       cfg.Logger.With().Str("component", "payment").Logger(),
		obs:       cfg.Observer,
		calls:     map[string]*call{},
		busy:      map[string]string{},
	}
	for _, t := range cfg.Terminals {
		if _, ok := t.Currency.Places(); !ok {
			return nil, fmt.Errorf("payment: terminal %s: unsupported currency %q", t.Name, t.Currency)
		}
		s.terminals[t.Name] = t
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.rec = newRecovery(s)
	return s, nil
}

// Start loads every record that is not final from the journal's in-flight
// index and starts the recovery worker. It fails only when the journal
// cannot be read.
func (s *Service) Start(ctx context.Context) error {
	return s.rec.start(ctx)
}

// Close stops taking operations, waits for those running to reach their
// durable outcome (or for ctx to end), and stops recovery.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("payment: close: operations still running: %w", ctx.Err())
	}
	s.stop()
	s.rec.wait()
	return err
}

// Terminals returns the configured terminals.
func (s *Service) Terminals() []TerminalInfo { return append([]TerminalInfo(nil), s.cfg.Terminals...) }

// Busy returns the id of the operation holding a terminal, or "".
func (s *Service) Busy(terminal string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[terminal]
}

// Execute runs one operation for the POS and returns its reply. When async
// is false it blocks until the outcome is durable (or ctx ends: the
// operation goes on and its outcome is journaled; the caller gets ctx's
// error). When async is true it returns as soon as the intent is durable,
// with Reply.Accepted set.
//
// Refusals that leave nothing behind (validation, busy terminal,
// idempotency conflict, journal unavailable, shutting down) are returned as
// *Error; outcomes, including terminal errors and outcome_unknown, are
// returned as a Reply.
func (s *Service) Execute(ctx context.Context, req Request, async bool) (*Reply, error) {
	if err := s.prepare(ctx, &req); err != nil {
		return nil, err
	}
	hash := req.Hash()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, Errorf(CodeShuttingDown, "posbridge is shutting down; retry with the same client_transaction_id")
	}
	if c := s.calls[req.ID]; c != nil {
		s.mu.Unlock()
		if c.hash != hash {
			return nil, conflict(req.ID)
		}
		return s.await(ctx, c, async)
	}
	rec, err := s.cfg.Journal.Get(ctx, req.ID)
	switch {
	case err == nil:
		if rec.RequestHash != hash {
			s.mu.Unlock()
			return nil, conflict(req.ID)
		}
		if !rec.Status.Final() {
			s.mu.Unlock()
			return s.claimAndWait(ctx, req.ID, async)
		}
		if !rec.Retryable {
			s.mu.Unlock()
			return replay(rec), nil
		}
	case errors.Is(err, ErrNotFound):
		rec = nil
	default:
		s.mu.Unlock()
		return nil, journalUnavailable(req.ID, err)
	}
	if holder := s.busy[req.Terminal]; holder != "" {
		s.mu.Unlock()
		return nil, &Error{Code: CodeTerminalBusy, ID: req.ID, RunningID: holder,
			Message: fmt.Sprintf("terminal %s is running %s", req.Terminal, holder)}
	}
	c := &call{id: req.ID, hash: hash, op: req.Operation, started: make(chan struct{}), done: make(chan struct{})}
	s.calls[req.ID] = c
	s.busy[req.Terminal] = req.ID
	s.wg.Add(1)
	s.mu.Unlock()

	go s.run(c, req, rec)
	return s.await(ctx, c, async)
}

// Cancel undoes an approved sale for the POS without making it choose:
// a void while the original's void window is open (from VoidDelay after
// approval until the processor cutoff), a full refund after it. The choice is
// made once: a retry with the same client_transaction_id repeats it.
// req.Operation is ignored; req.OriginalID names the original.
func (s *Service) Cancel(ctx context.Context, req Request, async bool) (*Reply, error) {
	if req.ID != "" {
		if id, err := uuid.Parse(req.ID); err == nil {
			s.mu.Lock()
			c := s.calls[id.String()]
			s.mu.Unlock()
			if c != nil {
				req.Operation = c.op
				return s.Execute(ctx, req, async)
			}
			if r, err := s.cfg.Journal.Get(ctx, id.String()); err == nil {
				req.Operation = r.Operation
				return s.Execute(ctx, req, async)
			}
		}
	}
	o, err := s.cfg.Journal.Get(ctx, req.OriginalID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, &Error{Code: CodeNotFound, ID: req.OriginalID, Message: "no transaction " + req.OriginalID}
	case err != nil:
		return nil, journalUnavailable(req.ID, err)
	}
	req.Operation = OpVoid
	_, closes := s.cfg.Policy.VoidWindow(approvedAt(o))
	if o.Operation != OpAuthorization && (o.Status == StatusPartiallyRefunded || !s.cfg.Now().Before(closes)) {
		req.Operation = OpRefund
	}
	return s.Execute(ctx, req, async)
}

// prepare fills defaults and checks everything that needs no lock: the id,
// the terminal, the operation's amount rules.
func (s *Service) prepare(ctx context.Context, req *Request) error {
	if !req.Operation.Valid() {
		return Errorf(CodeValidation, "unknown operation %q", req.Operation)
	}
	if req.ID == "" {
		req.ID = uuid.NewString()
	} else {
		id, err := uuid.Parse(req.ID)
		if err != nil || len(req.ID) != 36 {
			return &Error{Code: CodeValidation, Field: "client_transaction_id",
				Message: "client_transaction_id must be a UUID (8-4-4-4-12 hex digits)"}
		}
		req.ID = id.String()
	}
	if req.Operation.FollowUp() {
		if req.OriginalID == "" {
			return &Error{Code: CodeValidation, Field: "original_id", Message: "a follow-up needs the original's client_transaction_id"}
		}
		if req.OriginalID == req.ID {
			return &Error{Code: CodeValidation, Field: "client_transaction_id",
				Message: "a follow-up needs its own client_transaction_id, not the original's"}
		}
		o, err := s.cfg.Journal.Get(ctx, req.OriginalID)
		switch {
		case errors.Is(err, ErrNotFound):
			return &Error{Code: CodeNotFound, ID: req.OriginalID, Message: fmt.Sprintf("no transaction %s", req.OriginalID)}
		case err != nil:
			return journalUnavailable(req.ID, err)
		}
		if req.Terminal != "" && req.Terminal != o.Terminal {
			return &Error{Code: CodeValidation, Field: "terminal",
				Message: fmt.Sprintf("%s ran on terminal %s; its follow-ups must too", o.ID, o.Terminal)}
		}
		req.Terminal = o.Terminal
	} else if req.OriginalID != "" {
		return &Error{Code: CodeValidation, Field: "original_id", Message: fmt.Sprintf("a %s has no original", req.Operation)}
	}
	if req.Terminal == "" {
		if len(s.terminals) != 1 {
			return &Error{Code: CodeValidation, Field: "terminal", Message: "terminal is required when more than one is configured"}
		}
		req.Terminal = s.cfg.Terminals[0].Name
	}
	t, ok := s.terminals[req.Terminal]
	if !ok {
		return &Error{Code: CodeNotFound, Field: "terminal", Message: fmt.Sprintf("no terminal named %q", req.Terminal)}
	}
	switch {
	case req.Amount != nil:
		if err := req.Amount.Validate(req.Operation, t.Currency); err != nil {
			return err
		}
	case req.Operation == OpCharge || req.Operation == OpAuthorization:
		return &Error{Code: CodeValidation, Field: "amount", Message: fmt.Sprintf("a %s needs an amount", req.Operation)}
	}
	tooBig := len(req.Metadata) > 20
	for k, v := range req.Metadata {
		tooBig = tooBig || len(k) > 64 || len(v) > 256
	}
	if tooBig {
		return &Error{Code: CodeValidation, Field: "metadata", Message: "metadata is limited to 20 entries, keys of 64 and values of 256 bytes"}
	}
	return nil
}

// await waits for a call: for its durable intent when async, for its
// outcome otherwise.
func (s *Service) await(ctx context.Context, c *call, async bool) (*Reply, error) {
	if async {
		select {
		case <-c.started:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-c.done:
		default:
			return &Reply{ID: c.id, Accepted: true}, nil
		}
	}
	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run executes a call in its own goroutine, detached from the POS request:
// if the POS hangs up, the operation goes on and its outcome is journaled.
func (s *Service) run(c *call, req Request, prev *Record) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.base, s.cfg.ResponseTimeout+30*time.Second)
	defer cancel()
	reply, err := s.execute(ctx, c, req, prev)

	s.mu.Lock()
	delete(s.calls, c.id)
	s.mu.Unlock()
	s.release(req.Terminal, c.id)
	c.reply, c.err = reply, err
	c.markStarted()
	close(c.done)
	s.hub.notify(c.id)
}

// release gives up a terminal held by holder and lets recovery use it.
func (s *Service) release(terminal, holder string) {
	s.mu.Lock()
	if s.busy[terminal] == holder {
		delete(s.busy, terminal)
	}
	s.mu.Unlock()
	s.rec.released(terminal)
}

// intentError marks a failure to make the intent durable: nothing was sent.
type intentError struct{ err error }

func (e *intentError) Error() string { return "journal: " + e.err.Error() }
func (e *intentError) Unwrap() error { return e.err }

func (s *Service) execute(ctx context.Context, c *call, req Request, prev *Record) (*Reply, error) {
	log := s.log.With().Str("client_transaction_id", req.ID).Str("terminal", req.Terminal).
		Str("operation", string(req.Operation)).Logger()
	tr := TerminalRequest{Operation: req.Operation, ID: req.ID, Amount: req.Amount, Metadata: req.Metadata}
	recorded := req.Amount
	if req.Operation.FollowUp() {
		// The terminal lock is held: the original cannot change under us.
		o, err := s.cfg.Journal.Get(ctx, req.OriginalID)
		if err != nil {
			return nil, journalUnavailable(req.ID, err)
		}
		if tr, recorded, err = checkFollowUp(req, o, s.cfg.Now(), s.cfg.Policy); err != nil {
			return nil, err
		}
		tr.Metadata = req.Metadata
	}
	failpoint.Inject(FPBeforeIntent)

	var (
		intent  *Record // the record as last made durable
		current Route
	)
	beforeSend := func(route Route) error {
		now := s.cfg.Now()
		var next *Record
		if intent == nil {
			if prev != nil {
				next = prev.Clone()
				next.Retryable = false
			} else {
				next = newRecord(req, c.hash, recorded, now)
				next.Currency = s.terminals[req.Terminal].Currency
			}
			next.Route = route
			next.AddEvent(Event{At: now, Status: StatusPending, Route: route, Detail: "sending to terminal"})
		} else {
			next = intent.Clone()
			next.Route = route
			next.AddEvent(Event{At: now, Status: StatusPending, Route: route,
				Detail: fmt.Sprintf("%s route could not connect; sending on %s", current, route)})
		}
		if err := s.cfg.Journal.Update(ctx, func(tx Tx) error { return putKeepingClaim(tx, next) }); err != nil {
			return &intentError{err}
		}
		intent, current = next, route
		c.markStarted()
		failpoint.Inject(FPAfterIntentCommit)
		return nil
	}

	res, sendErr := s.cfg.Gateway.Send(ctx, req.Terminal, tr, beforeSend)
	failpoint.Inject(FPAfterAnswer)

	var ie *intentError
	switch {
	case errors.As(sendErr, &ie) && intent == nil:
		log.Error().Err(sendErr).Msg("intent not durable; payment refused, nothing sent")
		return nil, journalUnavailable(req.ID, sendErr)
	case intent == nil:
		// The gateway sent nothing (no usable route at all): nothing to journal.
		return s.unsentReply(req.ID, sendErr), nil
	}

	now := s.cfg.Now()
	rec := intent.Clone()
	var reply *Reply
	var te *TerminalError
	switch {
	case sendErr == nil:
		settleResult(rec, res, now)
		reply = settledReply(rec)
	case errors.As(sendErr, &ie):
		// The failover event could not be written, so nothing went out on the
		// next route; the record stays pending for recovery to settle.
		log.Error().Err(sendErr).Msg("journal failed before failover; left to recovery")
		s.rec.schedule(req.ID, now)
		return nil, journalUnavailable(req.ID, sendErr)
	case errors.Is(sendErr, ErrNotSent):
		rec.Retryable = true
		rec.AddEvent(Event{At: now, Status: StatusFailed, Route: current, Detail: "not sent: " + sendErr.Error()})
		reply = errorReply(&Error{Code: CodeTerminalUnreachable, ID: req.ID,
			Message: "the terminal could not be reached on any route; nothing was sent; retry with the same client_transaction_id"})
	case errors.Is(sendErr, ErrBusy):
		rec.Retryable = true
		rec.AddEvent(Event{At: now, Status: StatusFailed, Route: current, Code: "TER-003", Detail: "terminal busy with another transaction"})
		reply = errorReply(&Error{Code: CodeTerminalBusy, ID: req.ID,
			Message: "the terminal is busy with a transaction posbridge did not start; nothing was charged; retry with the same client_transaction_id"})
	case errors.As(sendErr, &te):
		rec.TerminalResponse = te.Raw
		rec.AddEvent(Event{At: now, Status: StatusFailed, Route: current, Code: te.Code, Detail: te.Type + ": " + te.Message})
		reply = errorReply(&Error{Code: CodeTerminalError, ID: req.ID, TerminalCode: te.Code,
			Message: "the terminal refused the operation (nothing was charged): " + te.Message})
		rec.Reply, rec.ReplyCode = reply.Body, reply.Code
	default: // ErrOutcomeUnknown, or anything we cannot classify
		rec.Recovery = &RecoveryState{Since: now}
		rec.AddEvent(Event{At: now, Status: StatusUnknown, Route: current, Detail: sendErr.Error()})
		reply = errorReply(&Error{Code: CodeOutcomeUnknown, ID: req.ID,
			Message: "the terminal gave no clear answer; posbridge is settling it: retry with the same client_transaction_id or GET /v1/transactions/" + req.ID + "?wait=90s"})
	}

	err := s.cfg.Journal.Update(ctx, func(tx Tx) error {
		if err := putKeepingClaim(tx, rec); err != nil {
			return err
		}
		if rec.Status == StatusApproved && req.Operation.FollowUp() {
			o, err := tx.Get(req.OriginalID)
			if err != nil {
				return err
			}
			applyFollowUp(o, rec, now)
			return tx.Put(o)
		}
		return nil
	})
	if err != nil {
		log.Error().Err(err).Str("status", string(rec.Status)).Msg("outcome not durable; stopping")
		s.cfg.Fatal(fmt.Errorf("payment: outcome of %s not durable: %w", req.ID, err))
		return errorReply(&Error{Code: CodeOutcomeUnknown, ID: req.ID,
			Message: "the outcome could not be recorded; posbridge will settle it after a restart"}), nil
	}
	failpoint.Inject(FPAfterOutcomeCommit)
	s.obs.Settled(rec.Operation, rec.Status, rec.Route)
	ev := log.Info()
	if rec.Status == StatusUnknown {
		ev = log.Warn()
		s.rec.schedule(rec.ID, now)
	}
	ev.Str("status", string(rec.Status)).Str("route", string(rec.Route)).
		Str("transaction_reference", rec.Reference).Msg("operation settled")
	return reply, nil
}

// putKeepingClaim writes the lifecycle's copy of a record without losing a
// claim a concurrent GET may have written meanwhile.
func putKeepingClaim(tx Tx, r *Record) error {
	if !r.Claimed {
		if cur, err := tx.Get(r.ID); err == nil && cur.Claimed {
			c := *r
			c.Claimed = true
			return tx.Put(&c)
		}
	}
	return tx.Put(r)
}

// unsentReply answers an operation the gateway refused before sending
// anything (no route, busy, or a plain error) and journaled nothing.
func (s *Service) unsentReply(id string, err error) *Reply {
	if errors.Is(err, ErrBusy) {
		return errorReply(&Error{Code: CodeTerminalBusy, ID: id, Message: "the terminal is busy; nothing was sent"})
	}
	return errorReply(&Error{Code: CodeTerminalUnreachable, ID: id,
		Message: "no route to the terminal: " + err.Error() + "; nothing was sent"})
}

func newRecord(req Request, hash string, amount *Amount, now time.Time) *Record {
	r := &Record{
		Transaction: Transaction{
			ID: req.ID, Operation: req.Operation, OriginalID: req.OriginalID, Terminal: req.Terminal,
			Metadata: req.Metadata, CreatedAt: now, UpdatedAt: now,
		},
		RequestHash: hash,
	}
	if amount != nil {
		r.Amount = amount.clone()
	}
	return r
}

// settleResult records a terminal's answer on r.
func settleResult(r *Record, res *Result, now time.Time) {
	r.Reference = res.Reference
	r.TicketNumber = res.TicketNumber
	r.AuthorizationCode = res.AuthorizationCode
	r.Card = res.Card
	r.TerminalResponse = res.Raw
	if res.Route != "" {
		r.Route = res.Route
	}
	status := res.Status
	switch status {
	case StatusApproved, StatusDeclined, StatusCancelled:
	default:
		status = StatusDeclined
	}
	if status == StatusApproved && r.Operation == OpAuthorization {
		t := r.Amount.Total()
		r.AuthorizedAmount = &t
	}
	detail := res.Message
	if detail == "" {
		detail = string(status)
	}
	r.Recovery = nil
	r.Retryable = false
	r.AddEvent(Event{At: now, Status: status, Route: r.Route, Code: res.Code, Detail: detail})
}

// settledReply renders r's transaction object as the stored reply.
func settledReply(r *Record) *Reply {
	b, err := json.Marshal(r.Transaction)
	if err != nil {
		panic("payment: encode transaction: " + err.Error()) // plain data cannot fail to encode
	}
	r.Reply, r.ReplyCode = b, ""
	return &Reply{ID: r.ID, Body: b}
}

func replay(r *Record) *Reply {
	if len(r.Reply) == 0 { // settled by a path that stored no reply: render now
		c := r.Clone()
		return settledReply(c)
	}
	return &Reply{ID: r.ID, Code: r.ReplyCode, Body: r.Reply, Replayed: true}
}

// ErrorBody renders the one error shape of the API: {"error": {...}}.
func ErrorBody(e *Error) []byte {
	b, err := json.Marshal(struct {
		Error *Error `json:"error"`
	}{e})
	if err != nil {
		panic("payment: encode error: " + err.Error())
	}
	return b
}

func errorReply(e *Error) *Reply { return &Reply{ID: e.ID, Code: e.Code, Body: ErrorBody(e)} }

func conflict(id string) *Error {
	return &Error{Code: CodeIdempotencyConflict, ID: id,
		Message: "client_transaction_id " + id + " was already used for a different request; use a new id for a new operation"}
}

func journalUnavailable(id string, err error) *Error {
	return &Error{Code: CodeJournalUnavailable, ID: id,
		Message: "the journal could not be written, so nothing was sent to the terminal: " + strings.TrimPrefix(err.Error(), "journal: ")}
}

// Get returns a transaction by id. With wait > 0 it waits (up to wait, or
// until ctx ends) for a record that is not final to settle. When claim is
// set, the read tells recovery that the POS has seen or wants the outcome:
// an approval found later is then kept, never reversed as abandoned.
func (s *Service) Get(ctx context.Context, id string, wait time.Duration, claim bool) (*Record, error) {
	if claim {
		if err := s.claim(ctx, id); err != nil {
			return nil, err
		}
	}
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		changed := s.hub.watch(id)
		r, err := s.cfg.Journal.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, &Error{Code: CodeNotFound, ID: id, Message: "no transaction " + id}
		case err != nil:
			return nil, fmt.Errorf("payment: get %s: %w", id, err)
		}
		if r.Status.Final() || r.Status == StatusNeedsAttention || wait <= 0 {
			return r, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return r, nil
		case <-ctx.Done():
			return r, nil
		}
	}
}

// claim marks a record as wanted by the POS (durably, once) and wakes
// recovery, which may be holding an approval for it.
func (s *Service) claim(ctx context.Context, id string) error {
	r, err := s.cfg.Journal.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return &Error{Code: CodeNotFound, ID: id, Message: "no transaction " + id}
	}
	if err != nil {
		return fmt.Errorf("payment: claim %s: %w", id, err)
	}
	if r.Claimed || r.Status.Final() {
		return nil
	}
	now := s.cfg.Now()
	err = s.cfg.Journal.Update(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		if err != nil || r.Claimed {
			return err
		}
		r.Claimed = true
		r.Events = append(r.Events, Event{At: now, Status: r.Status, Detail: "claimed: the POS asked for the outcome"})
		return tx.Put(r)
	})
	if err != nil {
		return journalUnavailable(id, err)
	}
	failpoint.Inject(FPAfterClaimCommit)
	s.rec.schedule(id, now)
	return nil
}

// claimAndWait handles a retry of an operation whose outcome is not known
// yet: the POS wants it, so recovery will keep (not reverse) an approval;
// wait for the settlement as long as a blocking call would.
func (s *Service) claimAndWait(ctx context.Context, id string, async bool) (*Reply, error) {
	if err := s.claim(ctx, id); err != nil {
		return nil, err
	}
	wait := s.cfg.ResponseTimeout
	if async {
		wait = 0
	}
	r, err := s.Get(ctx, id, wait, false)
	if err != nil {
		return nil, err
	}
	if r.Status.Final() {
		return replay(r), nil
	}
	if async {
		return &Reply{ID: id, Accepted: true}, nil
	}
	msg := "the outcome is not known yet; posbridge is settling it"
	if r.Status == StatusNeedsAttention {
		msg = "posbridge could not settle this payment; it needs a person: " + recoveryReason(r)
	}
	return errorReply(&Error{Code: CodeOutcomeUnknown, ID: id, Message: msg}), nil
}

func recoveryReason(r *Record) string {
	if r.Recovery != nil && r.Recovery.Reason != "" {
		return r.Recovery.Reason
	}
	return "see its events"
}

// List returns journal records, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]*Record, string, error) {
	return s.cfg.Journal.List(ctx, f)
}

// Abort asks a terminal to cancel the transaction it is running, for a POS
// that wants to stop a customer interaction. It does not take the terminal
// lock: the operation holding it is what gets cancelled, and settles as
// cancelled through its own call.
func (s *Service) Abort(ctx context.Context, terminal string) (Route, error) {
	if _, ok := s.terminals[terminal]; !ok {
		return "", &Error{Code: CodeNotFound, Message: fmt.Sprintf("no terminal named %q", terminal)}
	}
	return s.cfg.Gateway.Abort(ctx, terminal)
}

// Search runs a transaction search on a terminal.
func (s *Service) Search(ctx context.Context, terminal string, q SearchQuery) (json.RawMessage, Route, error) {
	if _, ok := s.terminals[terminal]; !ok {
		return nil, "", &Error{Code: CodeNotFound, Message: fmt.Sprintf("no terminal named %q", terminal)}
	}
	return s.cfg.Gateway.Search(ctx, terminal, q)
}

// hub wakes goroutines waiting for a record to change.
type hub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// watch returns a channel closed at the next notify(id).
func (h *hub) watch(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = map[string]chan struct{}{}
	}
	c, ok := h.ch[id]
	if !ok {
		c = make(chan struct{})
		h.ch[id] = c
	}
	return c
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.ch[id]; ok {
		close(c)
		delete(h.ch, id)
	}
}
