package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/payment"
)

// TestReplies maps every kind of service answer to its HTTP answer, through
// a fake service (the cases the real stack cannot be made to produce on
// demand), each validated against the OpenAPI document.
func TestReplies(t *testing.T) {
	const id = "4f9d7c1e-2b3a-4c5d-8e6f-7a8b9c0d1e2f"
	errReply := func(code payment.Code, msg string, replayed bool) func(payment.Request, bool) (*payment.Reply, error) {
		return func(payment.Request, bool) (*payment.Reply, error) {
			return &payment.Reply{ID: id, Code: code, Replayed: replayed,
				Body: payment.ErrorBody(&payment.Error{Code: code, ID: id, Message: msg})}, nil
		}
	}
	refuse := func(err error) func(payment.Request, bool) (*payment.Reply, error) {
		return func(payment.Request, bool) (*payment.Reply, error) { return nil, err }
	}
	charge := request{Method: http.MethodPost, Path: "/v1/charges", Body: `{"amount":{"subtotal_iva0":5}}`}
	abort := request{Method: http.MethodPost, Path: "/v1/terminals/lane1/abort"}
	search := request{Method: http.MethodPost, Path: "/v1/terminals/lane1/search", Body: `{"source":"online"}`}
	get := request{Method: http.MethodGet, Path: "/v1/transactions/" + id + "?wait=1"}
	list := request{Method: http.MethodGet, Path: "/v1/transactions"}
	cases := []struct {
		name     string
		svc      fakeService
		rq       request
		status   int
		code     string
		replayed bool
		hidden   string // must not appear in the answer
	}{
		{name: "approval replayed", svc: fakeService{execute: func(r payment.Request, _ bool) (*payment.Reply, error) {
			rep := fakeReply(r)
			rep.Replayed = true
			return rep, nil
		}}, rq: charge, status: 200, replayed: true},
		{name: "outcome unknown", svc: fakeService{execute: errReply(payment.CodeOutcomeUnknown, "settling", false)}, rq: charge, status: 504, code: "outcome_unknown"},
		{name: "outcome unknown replayed", svc: fakeService{execute: errReply(payment.CodeOutcomeUnknown, "settling", true)}, rq: charge, status: 504, code: "outcome_unknown", replayed: true},
		{name: "terminal error stored", svc: fakeService{execute: errReply(payment.CodeTerminalError, "refused", false)}, rq: charge, status: 502, code: "terminal_error"},
		{name: "terminal unreachable stored", svc: fakeService{execute: errReply(payment.CodeTerminalUnreachable, "no route", false)}, rq: charge, status: 503, code: "terminal_unreachable"},
		{name: "busy stored", svc: fakeService{execute: errReply(payment.CodeTerminalBusy, "busy", false)}, rq: charge, status: 409, code: "terminal_busy"},
		{name: "shutting down", svc: fakeService{execute: refuse(payment.Errorf(payment.CodeShuttingDown, "stopping"))}, rq: charge, status: 503, code: "shutting_down"},
		{name: "journal unavailable hides the path", svc: fakeService{execute: refuse(&payment.Error{Code: payment.CodeJournalUnavailable, ID: id,
			Message: "the journal could not be written: write /var/lib/posbridge/journal.db: no space left on device"})},
			rq: charge, status: 503, code: "journal_unavailable", hidden: "no space left"},
		{name: "plain error is internal", svc: fakeService{execute: refuse(errors.New("boom in /tmp/x.go:12"))}, rq: charge, status: 500, code: "internal_error", hidden: "boom"},
		{name: "unknown code is internal", svc: fakeService{execute: refuse(&payment.Error{Code: "weird", Message: "w"})}, rq: charge, status: 500, code: "internal_error"},
		{name: "panic is internal", svc: fakeService{execute: func(payment.Request, bool) (*payment.Reply, error) {
			panic("kaboom at /home/x/service.go:99")
		}}, rq: charge, status: 500, code: "internal_error", hidden: "kaboom"},
		{name: "accepted", svc: fakeService{execute: func(r payment.Request, async bool) (*payment.Reply, error) {
			if !async {
				return nil, errors.New("want async")
			}
			return &payment.Reply{ID: id, Accepted: true}, nil
		}}, rq: request{Method: http.MethodPost, Path: "/v1/charges", Body: charge.Body, Header: map[string]string{"Prefer": "respond-async"}}, status: 202},
		{name: "cancel goes to Cancel", svc: fakeService{execute: refuse(errors.New("not Execute")), cancel: func(r payment.Request, _ bool) (*payment.Reply, error) {
			if r.OriginalID != id || r.ID != "" {
				return nil, fmt.Errorf("cancel got %+v", r)
			}
			return fakeReply(payment.Request{Operation: payment.OpRefund, OriginalID: r.OriginalID}), nil
		}}, rq: request{Method: http.MethodPost, Path: "/v1/transactions/" + strings.ToUpper(id) + "/cancel"}, status: 200},
		{name: "abort: nothing to abort", svc: fakeService{abort: func(string) (payment.Route, error) {
			return payment.RouteLAN, fmt.Errorf("terminal: %w", payment.ErrNothingToAbort)
		}}, rq: abort, status: 409, code: "nothing_to_abort"},
		{name: "abort: not sent", svc: fakeService{abort: func(string) (payment.Route, error) {
			return payment.RouteLAN, fmt.Errorf("dial tcp 192.0.2.1:6868: %w", payment.ErrNotSent)
		}}, rq: abort, status: 503, code: "terminal_unreachable"},
		{name: "abort: outcome unknown", svc: fakeService{abort: func(string) (payment.Route, error) {
			return payment.RouteLAN, fmt.Errorf("read: %w", payment.ErrOutcomeUnknown)
		}}, rq: abort, status: 504, code: "outcome_unknown"},
		{name: "abort: terminal error", svc: fakeService{abort: func(string) (payment.Route, error) {
			return payment.RouteLAN, &payment.TerminalError{Type: "AUTHENTICATION", Code: "AUTH-003", Message: "bad signature"}
		}}, rq: abort, status: 502, code: "terminal_error"},
		{name: "search: busy", svc: fakeService{search: func(string, payment.SearchQuery) (json.RawMessage, payment.Route, error) {
			return nil, "", fmt.Errorf("terminal: %w", payment.ErrBusy)
		}}, rq: search, status: 409, code: "terminal_busy"},
		{name: "search: not JSON from the terminal", svc: fakeService{search: func(string, payment.SearchQuery) (json.RawMessage, payment.Route, error) {
			return json.RawMessage("<html>"), payment.RouteCloud, nil
		}}, rq: search, status: 502, code: "terminal_error"},
		{name: "search: null from the terminal", svc: fakeService{search: func(string, payment.SearchQuery) (json.RawMessage, payment.Route, error) {
			return json.RawMessage(" null "), payment.RouteCloud, nil
		}}, rq: search, status: 502, code: "terminal_error"},
		{name: "search: an array from the terminal", svc: fakeService{search: func(string, payment.SearchQuery) (json.RawMessage, payment.Route, error) {
			return json.RawMessage(`[{"a":1}]`), payment.RouteCloud, nil
		}}, rq: search, status: 200},
		{name: "get: journal read fails", svc: fakeService{get: func(string, time.Duration, bool) (*payment.Record, error) {
			return nil, errors.New("payment: get x: journal /var/lib/posbridge/journal.db: input/output error")
		}}, rq: get, status: 503, code: "journal_unavailable", hidden: "input/output"},
		{name: "list: journal read fails", svc: fakeService{list: func(payment.Filter) ([]*payment.Record, string, error) {
			return nil, "", errors.New("journal: closed")
		}}, rq: list, status: 503, code: "journal_unavailable"},
		{name: "list with a cursor", svc: fakeService{list: func(f payment.Filter) ([]*payment.Record, string, error) {
			if f.Limit != 1 || f.Cursor != "c1" || f.Terminal != lane || f.Status != payment.StatusApproved {
				return nil, "", fmt.Errorf("list got %+v", f)
			}
			return []*payment.Record{fakeRecord(id)}, "c2", nil
		}}, rq: request{Method: http.MethodGet, Path: "/v1/transactions?limit=1&cursor=c1&terminal=lane1&status=approved"}, status: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startAPI(t, &c.svc, nil)
			r := s.do(t, c.rq)
			if r.Status != c.status || r.errorCode() != c.code {
				t.Errorf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			if got := r.Header.Get("Idempotent-Replayed") == "true"; got != c.replayed {
				t.Errorf("Idempotent-Replayed: got %v, want %v", got, c.replayed)
			}
			if c.hidden != "" && strings.Contains(string(r.Body), c.hidden) {
				t.Errorf("the answer leaks %q: %s", c.hidden, r.Body)
			}
			if c.status >= 500 && c.hidden != "" && !strings.Contains(s.logs.String(), c.hidden) {
				t.Errorf("the log does not keep %q:\n%s", c.hidden, s.logs.String())
			}
		})
	}
}

func TestGetWaitIsCapped(t *testing.T) {
	var got []time.Duration
	svc := &fakeService{get: func(id string, wait time.Duration, claim bool) (*payment.Record, error) {
		if !claim {
			return nil, errors.New("GET by id must claim")
		}
		got = append(got, wait)
		return fakeRecord(id), nil
	}}
	s := startAPI(t, svc, func(c *api.Config) { c.MaxWait = 30 * time.Second })
	for _, q := range []string{"", "?wait=0", "?wait=90", "?wait=1m30s", "?wait=1500ms", "?wait=99999999999999999999999"} {
		if r := s.get(t, "/v1/transactions/x"+q); r.Status != http.StatusOK {
			t.Fatalf("%s: got %d %s", q, r.Status, r.Body)
		}
	}
	want := []time.Duration{0, 0, 30 * time.Second, 30 * time.Second, 1500 * time.Millisecond, 30 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits: got %v, want %v", got, want)
	}
}

func TestReadiness(t *testing.T) {
	lanUp := func() []api.TerminalStatus {
		return []api.TerminalStatus{{Name: lane, Serial: "S1", LAN: api.LANStatus{Address: "192.0.2.1:6868", Up: true}}}
	}
	for _, c := range []struct {
		name      string
		terminals func() []api.TerminalStatus
		journal   error
		attention map[string]string
		ready     bool
		routes    map[string]string
	}{
		{name: "ready", terminals: lanUp, ready: true, routes: map[string]string{lane: "lan", "lane2": "none"}},
		{name: "no provider", ready: true, routes: map[string]string{lane: "unknown", "lane2": "unknown"}},
		{name: "cloud only", terminals: func() []api.TerminalStatus {
			return []api.TerminalStatus{{Name: lane, LAN: api.LANStatus{Address: "192.0.2.1:6868"}, Cloud: api.CloudStatus{Enabled: true}}}
		}, ready: true, routes: map[string]string{lane: "cloud", "lane2": "none"}},
		{name: "no route", terminals: func() []api.TerminalStatus {
			return []api.TerminalStatus{{Name: lane, LAN: api.LANStatus{Address: "192.0.2.1:6868", Up: false}}}
		}, routes: map[string]string{lane: "none", "lane2": "none"}},
		{name: "journal failing", terminals: lanUp, journal: errors.New("journal /var/lib/posbridge/journal.db: commit failed"),
			routes: map[string]string{lane: "lan", "lane2": "none"}},
		{name: "needs attention", terminals: lanUp, attention: map[string]string{"b-id": "void refused", "a-id": "not found"},
			routes: map[string]string{lane: "lan", "lane2": "none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := &fakeService{health: func() payment.Health { return payment.Health{NeedsAttention: c.attention} }}
			s := startAPI(t, svc, func(cfg *api.Config) {
				cfg.Terminals = c.terminals
				cfg.JournalCheck = func(context.Context) error { return c.journal }
			})
			r := s.get(t, "/readyz")
			var out struct {
				Ready  bool `json:"ready"`
				Checks struct {
					Journal struct {
						OK    bool   `json:"ok"`
						Error string `json:"error"`
					} `json:"journal"`
					Routes struct {
						OK        bool              `json:"ok"`
						Terminals map[string]string `json:"terminals"`
					} `json:"routes"`
					NeedsAttention struct {
						OK      bool              `json:"ok"`
						Count   int               `json:"count"`
						IDs     []string          `json:"ids"`
						Reasons map[string]string `json:"reasons"`
					} `json:"needs_attention"`
				} `json:"checks"`
			}
			r.json(t, &out)
			wantStatus := http.StatusServiceUnavailable
			if c.ready {
				wantStatus = http.StatusOK
			}
			if r.Status != wantStatus || out.Ready != c.ready {
				t.Errorf("got %d ready %v, want %d ready %v: %s", r.Status, out.Ready, wantStatus, c.ready, r.Body)
			}
			if fmt.Sprint(out.Checks.Routes.Terminals) != fmt.Sprint(c.routes) {
				t.Errorf("routes: got %v, want %v", out.Checks.Routes.Terminals, c.routes)
			}
			if out.Checks.Journal.OK != (c.journal == nil) || strings.Contains(string(r.Body), "journal.db") {
				t.Errorf("journal check: got %+v, want ok %v and no file path", out.Checks.Journal, c.journal == nil)
			}
			na := out.Checks.NeedsAttention
			if na.Count != len(c.attention) || na.OK != (len(c.attention) == 0) || len(na.IDs) != len(c.attention) {
				t.Errorf("needs_attention: got %+v, want %d", na, len(c.attention))
			}
			if len(c.attention) > 0 && (na.IDs[0] != "a-id" || na.Reasons["b-id"] != "void refused") {
				t.Errorf("needs_attention: got %+v, want sorted ids with reasons", na)
			}
		})
	}
}

func TestTerminalsWithoutProvider(t *testing.T) {
	svc := &fakeService{busy: func(name string) string {
		if name == "lane2" {
			return "running-id"
		}
		return ""
	}}
	s := startAPI(t, svc, nil)
	var out struct {
		Terminals []api.TerminalStatus `json:"terminals"`
	}
	s.get(t, "/v1/terminals").json(t, &out)
	if len(out.Terminals) != 2 || out.Terminals[0].Name != lane || out.Terminals[0].Currency != "PEN" || out.Terminals[0].Busy ||
		out.Terminals[1].Currency != "CLP" || !out.Terminals[1].Busy || out.Terminals[1].RunningID != "running-id" {
		t.Errorf("got %+v, want lane1 PEN idle, lane2 CLP busy with running-id", out.Terminals)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := api.Config{Service: &fakeService{}, JournalCheck: func(context.Context) error { return nil }, Port: 8740, Logger: zerolog.Nop()}
	for _, c := range []struct {
		name string
		edit func(*api.Config)
	}{
		{"no service", func(c *api.Config) { c.Service = nil }},
		{"no journal check", func(c *api.Config) { c.JournalCheck = nil }},
		{"no port", func(c *api.Config) { c.Port = 0 }},
		{"port out of range", func(c *api.Config) { c.Port = 70000 }},
		{"negative body cap", func(c *api.Config) { c.MaxBodyBytes = -1 }},
		{"negative wait", func(c *api.Config) { c.MaxWait = -time.Second }},
	} {
		cfg := ok
		c.edit(&cfg)
		if _, err := api.New(cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", c.name)
		}
	}
	if _, err := api.New(ok); err != nil {
		t.Errorf("New(valid): %v", err)
	}
}

func TestPathParamsAreDecoded(t *testing.T) {
	var got []string
	svc := &fakeService{abort: func(name string) (payment.Route, error) {
		got = append(got, name)
		return payment.RouteLAN, nil
	}}
	s := startAPI(t, svc, nil)
	for _, p := range []string{"/v1/terminals/lane%2F1/abort", "/v1/terminals/lane%201/abort", "/v1/terminals/lane1/abort"} {
		if r := s.post(t, p, ""); r.Status != http.StatusOK {
			t.Fatalf("%s: got %d %s", p, r.Status, r.Body)
		}
	}
	if want := "[lane/1 lane 1 lane1]"; fmt.Sprint(got) != want {
		t.Errorf("terminal names: got %v, want %s", got, want)
	}
}
