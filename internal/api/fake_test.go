package api_test

import (
	"context"
	"encoding/json"
	"time"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// fakeService is an api.Service whose answers a test sets with function
// fields; a nil field gives a plausible success. It records nothing and is
// safe for concurrent use as long as the functions are.
type fakeService struct {
	execute func(payment.Request, bool) (*payment.Reply, error)
	cancel  func(payment.Request, bool) (*payment.Reply, error)
	get     func(string, time.Duration, bool) (*payment.Record, error)
	list    func(payment.Filter) ([]*payment.Record, string, error)
	abort   func(string) (payment.Route, error)
	search  func(string, payment.SearchQuery) (json.RawMessage, payment.Route, error)
	busy    func(string) string
	health  func() payment.Health
	resolve func(string, payment.Status, string) (*payment.Record, error)
}

var _ api.Service = (*fakeService)(nil)

var fakeTime = time.Date(2026, 3, 10, 10, 0, 0, 0, lima)

// fakeRecord is a plausible approved charge.
func fakeRecord(id string) *payment.Record {
	return &payment.Record{Transaction: payment.Transaction{
		ID: id, Operation: payment.OpCharge, Terminal: lane, Route: payment.RouteLAN, Status: payment.StatusApproved,
		Currency: money.PEN, Amount: payment.Amount{SubtotalIVA0: money.MustParse("5")},
		CreatedAt: fakeTime, UpdatedAt: fakeTime,
		Events: []payment.Event{{At: fakeTime, Status: payment.StatusApproved, Route: payment.RouteLAN}},
	}}
}

// fakeReply is the transaction body of a plausible approval.
func fakeReply(req payment.Request) *payment.Reply {
	id := req.ID
	if id == "" {
		id = "00000000-0000-4000-8000-000000000000"
	}
	r := fakeRecord(id)
	if req.Operation != "" {
		r.Operation = req.Operation
	}
	r.OriginalID = req.OriginalID
	if req.Amount != nil {
		r.Amount = *req.Amount
	}
	r.Metadata = req.Metadata
	b, err := json.Marshal(r.Transaction)
	if err != nil {
		panic(err)
	}
	return &payment.Reply{ID: id, Body: b}
}

func (f *fakeService) Execute(_ context.Context, req payment.Request, async bool) (*payment.Reply, error) {
	if f.execute != nil {
		return f.execute(req, async)
	}
	return fakeReply(req), nil
}

func (f *fakeService) Cancel(_ context.Context, req payment.Request, async bool) (*payment.Reply, error) {
	if f.cancel != nil {
		return f.cancel(req, async)
	}
	req.Operation = payment.OpVoid
	return fakeReply(req), nil
}

func (f *fakeService) Get(_ context.Context, id string, wait time.Duration, claim bool) (*payment.Record, error) {
	if f.get != nil {
		return f.get(id, wait, claim)
	}
	return fakeRecord(id), nil
}

func (f *fakeService) List(_ context.Context, fl payment.Filter) ([]*payment.Record, string, error) {
	if f.list != nil {
		return f.list(fl)
	}
	return []*payment.Record{fakeRecord("00000000-0000-4000-8000-000000000001")}, "", nil
}

func (f *fakeService) Abort(_ context.Context, terminal string) (payment.Route, error) {
	if f.abort != nil {
		return f.abort(terminal)
	}
	return payment.RouteLAN, nil
}

func (f *fakeService) Search(_ context.Context, terminal string, q payment.SearchQuery) (json.RawMessage, payment.Route, error) {
	if f.search != nil {
		return f.search(terminal, q)
	}
	return json.RawMessage(`{"items":[],"page":1,"size":100,"total":0}`), payment.RouteLAN, nil
}

func (f *fakeService) Terminals() []payment.TerminalInfo {
	return []payment.TerminalInfo{{Name: lane, Currency: money.PEN}, {Name: "lane2", Currency: money.CLP}}
}

func (f *fakeService) Busy(terminal string) string {
	if f.busy != nil {
		return f.busy(terminal)
	}
	return ""
}

func (f *fakeService) Health() payment.Health {
	if f.health != nil {
		return f.health()
	}
	return payment.Health{NeedsAttention: map[string]string{}}
}

func (f *fakeService) Resolve(_ context.Context, id string, status payment.Status, note string) (*payment.Record, error) {
	if f.resolve != nil {
		return f.resolve(id, status, note)
	}
	r := fakeRecord(id)
	r.Status = status
	return r, nil
}
