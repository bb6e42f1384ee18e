package payment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// memJournal is an in-memory payment.Journal for lifecycle tests. Update is
// atomic (a copy-on-write of the map) and can be made to fail.
type memJournal struct {
	mu      sync.Mutex
	recs    map[string]*payment.Record
	fail    func(r *payment.Record) error // when set, Put of a matching record fails the Update
	failPut func(r *payment.Record) error // fail as seen inside an Update (copied under mu)
	updates int
}

var _ payment.Journal = (*memJournal)(nil)

// setFail arms (or, with nil, disarms) a failing Put.
func (j *memJournal) setFail(f func(*payment.Record) error) {
	j.mu.Lock()
	j.fail = f
	j.mu.Unlock()
}

func newMemJournal() *memJournal { return &memJournal{recs: map[string]*payment.Record{}} }

type memTx struct {
	j    *memJournal
	next map[string]*payment.Record
}

func (tx *memTx) Get(id string) (*payment.Record, error) {
	r, ok := tx.next[id]
	if !ok {
		return nil, fmt.Errorf("mem: %s: %w", id, payment.ErrNotFound)
	}
	return roundTrip(r), nil
}

func (tx *memTx) Put(r *payment.Record) error {
	if tx.j.failPut != nil {
		if err := tx.j.failPut(r); err != nil {
			return err
		}
	}
	tx.next[r.ID] = roundTrip(r)
	return nil
}

// roundTrip copies a record through JSON, as a real journal would.
func roundTrip(r *payment.Record) *payment.Record {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	var c payment.Record
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func (j *memJournal) Update(_ context.Context, fn func(payment.Tx) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failPut = j.fail
	next := make(map[string]*payment.Record, len(j.recs))
	for k, v := range j.recs {
		next[k] = v
	}
	if err := fn(&memTx{j: j, next: next}); err != nil {
		return fmt.Errorf("mem: update: %w", err)
	}
	j.recs = next
	j.updates++
	return nil
}

func (j *memJournal) Get(_ context.Context, id string) (*payment.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.recs[id]
	if !ok {
		return nil, fmt.Errorf("mem: %s: %w", id, payment.ErrNotFound)
	}
	return roundTrip(r), nil
}

func (j *memJournal) ByReference(_ context.Context, ref string) (*payment.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range j.recs {
		if r.Reference == ref {
			return roundTrip(r), nil
		}
	}
	return nil, payment.ErrNotFound
}

func (j *memJournal) InFlight(context.Context) ([]*payment.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*payment.Record
	for _, r := range j.recs {
		if !r.Status.Final() {
			out = append(out, roundTrip(r))
		}
	}
	return out, nil
}

func (j *memJournal) List(_ context.Context, f payment.Filter) ([]*payment.Record, string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*payment.Record
	for _, r := range j.recs {
		if f.Status == "" || r.Status == f.Status {
			out = append(out, roundTrip(r))
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].CreatedAt.After(out[b].CreatedAt) })
	return out, "", nil
}

// fakeGateway scripts terminal answers. Each Send calls beforeSend exactly
// as the contract says, then answers with send (or approves).
type fakeGateway struct {
	mu      sync.Mutex
	send    func(ctx context.Context, req payment.TerminalRequest) (*payment.Result, error)
	abort   func() error
	lookup  func(id string) (*payment.Result, error)
	sent    []payment.TerminalRequest // requests that reached "the terminal"
	aborts  int
	lookups []string
	route   payment.Route
}

var _ payment.Gateway = (*fakeGateway)(nil)

func (g *fakeGateway) Send(ctx context.Context, terminal string, req payment.TerminalRequest, before func(payment.Route) error) (*payment.Result, error) {
	route := g.route
	if route == "" {
		route = payment.RouteLAN
	}
	if err := before(route); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.sent = append(g.sent, req)
	send := g.send
	g.mu.Unlock()
	if send == nil {
		return approve(req), nil
	}
	res, err := send(ctx, req)
	if res != nil && res.Route == "" {
		res.Route = route
	}
	return res, err
}

func (g *fakeGateway) Abort(context.Context, string) (payment.Route, error) {
	g.mu.Lock()
	g.aborts++
	f := g.abort
	g.mu.Unlock()
	if f == nil {
		return payment.RouteLAN, payment.ErrNothingToAbort
	}
	return payment.RouteLAN, f()
}

func (g *fakeGateway) Lookup(_ context.Context, _ string, id string) (*payment.Result, error) {
	g.mu.Lock()
	g.lookups = append(g.lookups, id)
	f := g.lookup
	g.mu.Unlock()
	if f == nil {
		return nil, payment.ErrNotFound
	}
	return f(id)
}

func (g *fakeGateway) Search(context.Context, string, payment.SearchQuery) (json.RawMessage, payment.Route, error) {
	return json.RawMessage(`{"items":[]}`), payment.RouteLAN, nil
}

// setSend replaces the scripted answer while calls may be running.
func (g *fakeGateway) setSend(f func(context.Context, payment.TerminalRequest) (*payment.Result, error)) {
	g.mu.Lock()
	g.send = f
	g.mu.Unlock()
}

func (g *fakeGateway) calls() []payment.TerminalRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]payment.TerminalRequest(nil), g.sent...)
}

func approve(req payment.TerminalRequest) *payment.Result {
	return &payment.Result{Status: payment.StatusApproved, Route: payment.RouteLAN,
		Reference: "ref-" + req.ID, TicketNumber: "000000000000000001", AuthorizationCode: "123456",
		Card: &payment.Card{Brand: "VISA", Type: "credit", Masked: "424242******4242"}, Code: "000",
		Raw: json.RawMessage(`{"approved":true}`)}
}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	svc     *payment.Service
	j       *memJournal
	gw      *fakeGateway
	clock   *clock
	fatal   chan error
	settled chan payment.Status
}

type obs struct{ h *harness }

func (o obs) Settled(_ payment.Operation, s payment.Status, _ payment.Route) {
	select {
	case o.h.settled <- s:
	default:
	}
}
func (o obs) Recovered(string) {}

func newHarness(t *testing.T, mutate ...func(*payment.Config)) *harness {
	t.Helper()
	h := &harness{
		j: newMemJournal(), gw: &fakeGateway{},
		clock: &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)},
		fatal: make(chan error, 10), settled: make(chan payment.Status, 100),
	}
	cfg := payment.Config{
		Journal: h.j, Gateway: h.gw,
		Terminals: []payment.TerminalInfo{{Name: "lane1", Currency: "PEN"}, {Name: "lane2", Currency: "CLP"}},
		Policy:    payment.Policy{VoidDelay: time.Minute, Cutoff: 23*time.Hour + 30*time.Minute, Location: time.UTC},
		Recovery: payment.RecoveryConfig{ReverseAbandoned: true, ClaimWindow: 2 * time.Minute, Budget: 30 * time.Minute,
			BackoffMin: time.Second, BackoffMax: 10 * time.Second, NotFoundGrace: 10 * time.Second},
		ResponseTimeout: 120 * time.Second,
		Fatal:           func(err error) { h.fatal <- err },
		Now:             h.clock.Now,
		Observer:        obs{h},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := payment.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h.svc = svc
	return h
}

// waitFor polls cond until it holds or a generous deadline passes, kicking
// recovery each time (the fake clock does not wake timers).
func (h *harness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		h.svc.Kick()
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) record(t *testing.T, id string) *payment.Record {
	t.Helper()
	r, err := h.j.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("journal Get %s: %v", id, err)
	}
	return r
}

func (h *harness) status(id string) payment.Status {
	r, err := h.j.Get(context.Background(), id)
	if err != nil {
		return ""
	}
	return r.Status
}
