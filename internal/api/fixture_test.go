package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/journal"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

const (
	lane       = "lane1"
	laneSerial = "APITEST0001"
	laneSecret = "api-test-secret-0123456789"
)

// lima is a fixed UTC-5 zone: the void window and the simulator's same-day
// rule are evaluated in it.
var lima = time.FixedZone("PET", -5*3600)

// clock is the settable clock shared by the simulator, the signer, the
// payment service and the API: void windows move only when a test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 10, 10, 0, 0, 0, lima)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gate replaces the simulator's timer (sim.Config.After): while open, every
// wait (the customer's think time) ends at once; while held, waits last until
// Release, so a test decides how long a charge runs.
type gate struct {
	mu      sync.Mutex
	held    bool
	waiting []chan time.Time
}

func (g *gate) After(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.waiting = append(g.waiting, c)
	} else {
		c <- time.Time{}
	}
	return c
}

// Hold makes the next waits last until Release.
func (g *gate) Hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

// Release ends every wait and lets later ones end at once.
func (g *gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held = false
	for _, c := range g.waiting {
		c <- time.Time{}
	}
	g.waiting = nil
}

// backend is the real payment stack, in process: the simulator on a
// loopback socket, the terminal gateway with one LAN terminal pointing at it
// (hmac signing), the bbolt journal in a temporary directory, and the
// payment service with recovery running.
type backend struct {
	sim     *sim.Sim
	gw      *terminal.Gateway
	journal *journal.Journal
	svc     *payment.Service
	clock   *clock
	gate    *gate
	dir     string
}

// newBackend builds the backend. dir is where the journal lives ("" for a
// new temporary directory).
func newBackend(t *testing.T, dir string) *backend {
	t.Helper()
	b := &backend{clock: newClock(), gate: &gate{}, dir: dir}
	if b.dir == "" {
		b.dir = t.TempDir()
	}
	s, err := sim.New(sim.Config{
		Serial:        laneSerial,
		Auth:          hmac.ModeHMAC,
		Credential:    hmac.Credential{Secret: laneSecret},
		Currency:      money.PEN,
		ThinkTime:     time.Second, // all of it the customer phase (abortable); the gate ends it
		ApprovalPhase: -1,
		Location:      lima,
		Now:           b.clock.Now,
		After:         b.gate.After,
	})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	b.sim = s
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("sim Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("sim Serve did not return within 10 s of Close")
		}
	})

	signer, err := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: laneSecret, Serial: laneSerial})
	if err != nil {
		t.Fatalf("hmac.NewSigner: %v", err)
	}
	b.gw, err = terminal.NewGateway(terminal.GatewayConfig{
		Now: b.clock.Now,
		Terminals: []terminal.TerminalConfig{{
			Name: lane, Serial: laneSerial, LANAddress: l.Addr().String(),
			LAN: terminal.ClientConfig{Signer: signer, Now: b.clock.Now,
				ConnectTimeout: 5 * time.Second, ResponseTimeout: 60 * time.Second, ControlTimeout: 20 * time.Second},
		}},
	})
	if err != nil {
		t.Fatalf("terminal.NewGateway: %v", err)
	}

	b.journal, err = journal.Open(filepath.Join(b.dir, "journal.db"), journal.Options{})
	if err != nil {
		t.Fatalf("journal.Open: %v", err)
	}
	t.Cleanup(func() { _ = b.journal.Close() })

	b.svc, err = payment.New(payment.Config{
		Journal:   b.journal,
		Gateway:   b.gw,
		Terminals: []payment.TerminalInfo{{Name: lane, Currency: money.PEN}},
		Policy:    payment.Policy{VoidDelay: time.Minute, Cutoff: 23*time.Hour + 30*time.Minute, Location: lima},
		Recovery: payment.RecoveryConfig{ReverseAbandoned: true, ClaimWindow: 2 * time.Minute,
			Budget: 30 * time.Minute, BackoffMin: 2 * time.Second, BackoffMax: time.Minute},
		ResponseTimeout: 60 * time.Second,
		Fatal:           func(err error) { t.Errorf("payment: fatal: %v", err) },
		Now:             b.clock.Now,
		Logger:          zerolog.Nop(),
	})
	if err != nil {
		t.Fatalf("payment.New: %v", err)
	}
	if err := b.svc.Start(context.Background()); err != nil {
		t.Fatalf("payment Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.svc.Close(ctx); err != nil {
			t.Errorf("payment Close: %v", err)
		}
	})
	// Runs before the service closes: nothing may stay held.
	t.Cleanup(b.gate.Release)
	return b
}

// terminalStatus adapts the gateway's status as cmd/posbridge does.
func (b *backend) terminalStatus() []api.TerminalStatus {
	var out []api.TerminalStatus
	for _, s := range b.gw.Status() {
		ts := api.TerminalStatus{Name: s.Name, Serial: s.Serial, Route: s.Route, LastError: s.LastError,
			LAN:   api.LANStatus{Address: s.LANAddress, Up: s.LANUp, LastSeen: s.LastSeen},
			Cloud: api.CloudStatus{Enabled: s.Cloud}}
		if d, ok := s.RoundTrip[payment.RouteLAN]; ok {
			ms := d.Milliseconds()
			ts.LAN.LastRoundTripMS = &ms
		}
		if d, ok := s.RoundTrip[payment.RouteCloud]; ok {
			ms := d.Milliseconds()
			ts.Cloud.LastRoundTripMS = &ms
		}
		out = append(out, ts)
	}
	return out
}

// terminalCalls is how many requests the simulator has received.
func (b *backend) terminalCalls() int { return b.sim.State().TotalRequests }

// waitActive waits until the simulator is running a transaction and returns
// its client_transaction_id.
func (b *backend) waitActive(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if a := b.sim.State().Active; a != nil {
			return a.ClientTransactionID
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the simulator started no transaction within 20 s")
	return ""
}

// spec is api/openapi.yaml, loaded and validated by kin-openapi, with a
// router over its paths.
type spec struct {
	doc    *openapi3.T
	router routers.Router

	// A second, independent validator: the document's schemas compiled as
	// JSON Schema 2020-12 by santhosh-tekuri/jsonschema (formats asserted).
	// kin-openapi v0.152.0 runs its 2020-12 validator only for schemas that
	// use a 2020-only keyword; a schema with internal $refs otherwise falls
	// back to its OpenAPI 3.0 visitor (schema_jsonschema_validator.go,
	// useJSONSchema2020), so each body is checked by both.
	mu      sync.Mutex
	strict  *jsonschema.Compiler
	schemas map[string]*jsonschema.Schema
}

var (
	specOnce sync.Once
	specVal  *spec
	specErr  error
)

// loadSpec loads the OpenAPI document once per test binary. The router
// matches paths only: the document's server URL (127.0.0.1:8740) is not the
// test server's.
func loadSpec(t testing.TB) *spec {
	t.Helper()
	specOnce.Do(func() {
		path := filepath.Join("..", "..", "api", "openapi.yaml")
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(path)
		if err != nil {
			specErr = fmt.Errorf("load: %w", err)
			return
		}
		if !doc.IsOpenAPI31OrLater() {
			specErr = errors.New("api/openapi.yaml is not OpenAPI 3.1")
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			specErr = fmt.Errorf("validate: %w", err)
			return
		}
		doc.Servers = nil
		r, err := legacy.NewRouter(doc)
		if err != nil {
			specErr = fmt.Errorf("router: %w", err)
			return
		}
		c, err := strictCompiler(path)
		if err != nil {
			specErr = err
			return
		}
		specVal = &spec{doc: doc, router: r, strict: c, schemas: map[string]*jsonschema.Schema{}}
	})
	if specErr != nil {
		t.Fatalf("api/openapi.yaml: %v", specErr)
	}
	return specVal
}

// strictCompiler reads the YAML document as plain JSON data and registers
// it as a JSON Schema resource, so that "#/components/schemas/X" compiles.
func strictCompiler(path string) (*jsonschema.Compiler, error) {
	y, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("to json: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, err
	}
	return c, nil
}

const specURL = "mem://posbridge/openapi.json"

// strictProblems validates body against a schema of the document ("#/…")
// with the JSON Schema 2020-12 validator.
func (s *spec) strictProblems(ref string, body []byte) []string {
	s.mu.Lock()
	sch, ok := s.schemas[ref]
	if !ok {
		var err error
		if sch, err = s.strict.Compile(specURL + ref); err != nil {
			s.mu.Unlock()
			return []string{fmt.Sprintf("compile %s: %v", ref, err)}
		}
		s.schemas[ref] = sch
	}
	s.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []string{fmt.Sprintf("body is not JSON: %v", err)}
	}
	if err := sch.Validate(v); err != nil {
		return []string{fmt.Sprintf("body does not match %s (JSON Schema 2020-12): %v", ref, err)}
	}
	return nil
}

// check validates one response against the document and reports every
// problem as a test error (see problems).
func (s *spec) check(t testing.TB, method, path string, r *response) {
	t.Helper()
	for _, p := range s.problems(method, path, r) {
		t.Errorf("%s %s → %d %s: %s", method, path, r.Status, clipBody(r.Body), p)
	}
}

// problems validates one response against the document: the operation's
// documented status, headers and body schema (JSON Schema 2020-12, which
// openapi3filter switches on for a 3.1 document). A response to a path or
// method the document does not have must be the error shape with 401, 403,
// 404 or 405. It also checks what every response must do: an X-Request-Id,
// no CORS header, no stack trace or file path in an error.
func (s *spec) problems(method, path string, r *response) []string {
	var out []string
	if r.Header.Get("X-Request-Id") == "" {
		out = append(out, "no X-Request-Id header")
	}
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			out = append(out, "CORS header "+k+" sent")
		}
	}
	if r.Status >= 400 {
		for _, bad := range []string{"goroutine ", ".go:", "/tmp/", "/var/lib", "journal.db", "panic"} {
			if bytes.Contains(r.Body, []byte(bad)) {
				out = append(out, fmt.Sprintf("the error answer contains %q", bad))
			}
		}
	}
	// The router matches the decoded path, where an escaped slash in a
	// parameter would split it: route such a path with the slash replaced.
	routed := strings.NewReplacer("%2F", "_", "%2f", "_").Replace(path)
	req, err := http.NewRequest(method, "http://posbridge"+routed, nil)
	if err != nil {
		return append(out, fmt.Sprintf("build request for the router: %v", err))
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		// Only the guard (401, 403) and the router (404, 405) answer there.
		switch r.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
		default:
			out = append(out, fmt.Sprintf("undocumented route answered %d, want 401, 403, 404 or 405", r.Status))
		}
		out = append(out, s.schemaProblems("ErrorResponse", r.Body)...)
		return append(out, s.strictProblems("#/components/schemas/ErrorResponse", r.Body)...)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status,
		Header:                 r.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		out = append(out, fmt.Sprintf("response does not match api/openapi.yaml: %v", err))
	}
	if rr := route.Operation.Responses.Status(r.Status); rr != nil && rr.Value != nil {
		if mt := rr.Value.Content.Get(r.Header.Get("Content-Type")); mt != nil && mt.Schema != nil && mt.Schema.Ref != "" {
			out = append(out, s.strictProblems(mt.Schema.Ref, r.Body)...)
		}
	}
	return out
}

// schemaProblems validates a JSON body against a component schema.
func (s *spec) schemaProblems(name string, body []byte) []string {
	ref := s.doc.Components.Schemas[name]
	if ref == nil {
		return []string{"no schema " + name + " in api/openapi.yaml"}
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{fmt.Sprintf("body is not JSON: %v", err)}
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return []string{fmt.Sprintf("body is not a %s: %v", name, err)}
	}
	return nil
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// server is the API under test on a real loopback socket, with the client
// helpers every test uses: each response is validated against the OpenAPI
// document.
type server struct {
	t      *testing.T
	base   string // http://127.0.0.1:port
	host   string // 127.0.0.1:port
	port   int
	spec   *spec
	client *http.Client
	logs   *syncBuffer
	cfg    api.Config
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAPI serves api.New over svc; edit may change the configuration
// (token, limits, providers) before New.
func startAPI(t *testing.T, svc api.Service, edit func(*api.Config)) *server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	logs := &syncBuffer{}
	cfg := api.Config{
		Service:      svc,
		JournalCheck: func(context.Context) error { return nil },
		Port:         port,
		Logger:       zerolog.New(logs),
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	ts.Config.Handler = h
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Start()
	t.Cleanup(ts.Close)
	s := &server{t: t, base: ts.URL, host: ts.Listener.Addr().String(), port: port, spec: loadSpec(t),
		client: &http.Client{Timeout: 120 * time.Second}, logs: logs, cfg: cfg}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// startBackendAPI is the usual set-up: the real backend behind the API.
func startBackendAPI(t *testing.T, edit func(*api.Config)) (*backend, *server) {
	t.Helper()
	b := newBackend(t, "")
	s := startAPI(t, b.svc, func(c *api.Config) {
		c.Terminals = b.terminalStatus
		c.JournalCheck = journalCheck(b)
		if edit != nil {
			edit(c)
		}
	})
	return b, s
}

// request is one call to the API.
type request struct {
	Method string
	Path   string
	Body   string
	// Header is sent as given; Content-Type defaults to application/json on
	// a POST. Host, when set, replaces the Host header.
	Header map[string]string
	Host   string
	// NoContentType sends a POST without Content-Type.
	NoContentType bool
	// Ctx, when set, is the request's context.
	Ctx context.Context
}

// response is an answer, its body read.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// json decodes the body into v, failing the test when it cannot.
func (r *response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", clipBody(r.Body), err)
	}
}

// errorCode returns the error.code of an error body ("" when there is none).
func (r *response) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// do sends rq and validates the answer. A transport error fails the test
// and gives a response with status 0.
func (s *server) do(t testing.TB, rq request) *response {
	t.Helper()
	r, err := s.try(rq)
	if err != nil {
		// Errorf, not Fatalf: do is called from goroutines too.
		t.Errorf("%s %s: %v", rq.Method, rq.Path, err)
		return &response{Header: http.Header{}}
	}
	s.spec.check(t, rq.Method, pathOnly(rq.Path), r)
	if r.Status >= 200 && r.Status < 300 {
		// What the server accepts, the document must accept too.
		if err := s.spec.requestProblem(rq); err != nil {
			t.Errorf("%s %s was accepted (%d) but does not match api/openapi.yaml: %v", rq.Method, rq.Path, r.Status, err)
		}
	}
	return r
}

// requestProblem validates a request against the document (parameters,
// headers, body), with authentication left out.
func (s *spec) requestProblem(rq request) error {
	var body io.Reader = http.NoBody
	if rq.Body != "" {
		body = strings.NewReader(rq.Body)
	}
	routed := strings.NewReplacer("%2F", "_", "%2f", "_").Replace(rq.Path) // as in problems
	req, err := http.NewRequest(rq.Method, "http://posbridge"+routed, body)
	if err != nil {
		return err
	}
	if rq.Method == http.MethodPost && !rq.NoContentType {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
}

// try sends rq without validating or failing.
func (s *server) try(rq request) (*response, error) {
	ctx := rq.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var body io.Reader = http.NoBody
	if rq.Body != "" {
		body = strings.NewReader(rq.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.Method, s.base+rq.Path, body)
	if err != nil {
		return nil, err
	}
	if rq.Method == http.MethodPost && !rq.NoContentType {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	if rq.Host != "" {
		req.Host = rq.Host
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// raw writes a request exactly as given on a new connection (for Host
// headers net/http will not send: none, empty) and validates the answer.
func (s *server) raw(t testing.TB, method, path, wire string) *response {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.host, 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, wire); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	s.spec.check(t, method, path, r)
	return r
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// post sends a JSON POST.
func (s *server) post(t testing.TB, path, body string) *response {
	t.Helper()
	return s.do(t, request{Method: http.MethodPost, Path: path, Body: body})
}

// get sends a GET.
func (s *server) get(t testing.TB, path string) *response {
	t.Helper()
	return s.do(t, request{Method: http.MethodGet, Path: path})
}

// txn is the transaction object as tests read it.
type txn struct {
	ID               string            `json:"client_transaction_id"`
	Operation        string            `json:"operation"`
	OriginalID       string            `json:"original_id"`
	Terminal         string            `json:"terminal"`
	Route            string            `json:"route"`
	Status           string            `json:"status"`
	Currency         string            `json:"currency"`
	Amount           map[string]any    `json:"amount"`
	Reference        string            `json:"transaction_reference"`
	TicketNumber     string            `json:"ticket_number"`
	Card             *payment.Card     `json:"card"`
	AuthCode         string            `json:"authorization_code"`
	TerminalResponse json.RawMessage   `json:"terminal_response"`
	Metadata         map[string]string `json:"metadata"`
	AuthorizedAmount json.Number       `json:"authorized_amount"`
	CapturedAmount   json.Number       `json:"captured_amount"`
	TipAmount        json.Number       `json:"tip_amount"`
	RefundedAmount   json.Number       `json:"refunded_amount"`
	Events           []payment.Event   `json:"events"`
}

// mustTxn checks the status code and decodes a transaction.
func mustTxn(t testing.TB, r *response, wantStatus int) txn {
	t.Helper()
	if r.Status != wantStatus {
		t.Fatalf("got %d %s, want %d", r.Status, clipBody(r.Body), wantStatus)
	}
	var x txn
	r.json(t, &x)
	return x
}

// newID returns a fresh client_transaction_id.
func newID() string { return uuid.NewString() }
