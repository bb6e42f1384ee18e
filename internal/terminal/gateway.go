package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	Terminals []TerminalConfig
	// Now is the clock of the health record; nil means time.Now.
	Now func() time.Time
	// Observe, when set, is told how every request (payment operations,
	// abort, searches) ended on a route and how long it took (metrics). It must be fast and
	// safe for concurrent use.
	Observe func(terminal string, route payment.Route, endpoint Endpoint, took time.Duration, err error)
}

// TerminalConfig is one named terminal.
type TerminalConfig struct {
	Name   string
	Serial string
	// LANAddress is the terminal's host:port on the LAN, "" until discovery
	// finds it (see Gateway.SetLANAddress).
	LANAddress string
	// LAN is the template of the LAN client: BaseURL and Kind are ignored
	// (the base is LANBaseURL of the current address). Signer is required.
	LAN ClientConfig
	// Cloud is the cloud client (BaseURL from CloudBaseURL; Kind is set to
	// Cloud), or nil when the cloud route is off.
	Cloud *ClientConfig
}

// Gateway reaches named terminals, LAN first and cloud as fallback
// (DESIGN.md "Routes"). It implements payment.Gateway and is safe for
// concurrent use: an Abort or a Status may run while a Send is in flight.
//
// Health per terminal: the route in use, the LAN address and whether the LAN
// is up, when the terminal last answered, the last round trip per route,
// the last LAN probe and the last error. The LAN goes down when it cannot be
// connected (an operation is then sent on the cloud, or a probe fails) and up
// again when it answers, when a new address is set, when a probe of the
// current address connects (NoteLANProbe), or when MarkLANUp says so:
// NoteLANProbe, MarkLANUp and MarkLANDown are the seam for background probing
// and failback, which the Gateway does not do itself.
type Gateway struct {
	now     func() time.Time
	observe func(string, payment.Route, Endpoint, time.Duration, error)
	terms   map[string]*term
	order   []*term
}

var _ payment.Gateway = (*Gateway)(nil)

// term is one terminal's clients and health. mu guards everything below it.
type term struct {
	name, serial string
	lanTmpl      ClientConfig
	cloud        *Client // nil: no cloud route; never changes

	mu        sync.Mutex
	lan       *Client // nil while the address is unknown
	lanAddr   string
	lanUp     bool
	inUse     payment.Route
	lastSeen  time.Time
	rtt       map[payment.Route]time.Duration
	lastErr   string
	lastErrAt time.Time
	errRoute  payment.Route
	probedAt  time.Time     // end of the last probe of lanAddr
	probeRTT  time.Duration // connect time of the last probe of lanAddr that connected
}

// TerminalStatus is a snapshot of one terminal's routes.
type TerminalStatus struct {
	Name   string `json:"name"`
	Serial string `json:"serial"`
	// Route is the route of the last operation sent, "" before the first.
	Route      payment.Route `json:"route,omitempty"`
	LANAddress string        `json:"lan_address,omitempty"`
	// LANUp is false once the LAN could not be connected, until it answers
	// again, a new address is set, or MarkLANUp.
	LANUp bool `json:"lan_up"`
	Cloud bool `json:"cloud"`
	// LastSeen is when the terminal last gave an HTTP answer, on any route.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// RoundTrip is the duration of the last answered request per route,
	// whatever it was (a charge includes the customer's time).
	RoundTrip      map[payment.Route]time.Duration `json:"round_trip,omitempty"`
	LastError      string                          `json:"last_error,omitempty"`
	LastErrorAt    time.Time                       `json:"last_error_at,omitzero"`
	LastErrorRoute payment.Route                   `json:"last_error_route,omitempty"`
	// LANProbedAt is when the last health probe of the current LAN address
	// ended (zero: none since the address was set), and LANProbeRoundTrip
	// the connect time of the last probe of it that connected: a cheap
	// round trip, unlike a charge's, which includes the customer.
	LANProbedAt       time.Time     `json:"lan_probed_at,omitzero"`
	LANProbeRoundTrip time.Duration `json:"lan_probe_round_trip,omitempty"`
}

// NewGateway returns a Gateway over cfg's terminals. It fails on an empty
// or repeated name, an invalid LAN address, or a client config NewClient
// rejects. It does no I/O.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	g := &Gateway{now: cfg.Now, observe: cfg.Observe, terms: make(map[string]*term, len(cfg.Terminals))}
	if g.now == nil {
		g.now = time.Now
	}
	for _, tc := range cfg.Terminals {
		if tc.Name == "" {
			return nil, errors.New("terminal: a terminal has no name")
		}
		if g.terms[tc.Name] != nil {
			return nil, fmt.Errorf("terminal: terminal %q configured twice", tc.Name)
		}
		t := &term{name: tc.Name, serial: tc.Serial, lanTmpl: tc.LAN, rtt: map[payment.Route]time.Duration{}}
		// Validate the template even while no address is known.
		if _, err := t.lanClient("127.0.0.1:6868"); err != nil {
			return nil, fmt.Errorf("terminal %q: lan: %w", tc.Name, err)
		}
		if tc.LANAddress != "" {
			if err := t.setLAN(tc.LANAddress); err != nil {
				return nil, fmt.Errorf("terminal %q: %w", tc.Name, err)
			}
		}
		if tc.Cloud != nil {
			cc := *tc.Cloud
			cc.Kind = Cloud
			c, err := NewClient(cc)
			if err != nil {
				return nil, fmt.Errorf("terminal %q: cloud: %w", tc.Name, err)
			}
			t.cloud = c
		}
		g.terms[tc.Name] = t
		g.order = append(g.order, t)
	}
	return g, nil
}

func (t *term) lanClient(hostport string) (*Client, error) {
	cc := t.lanTmpl
	cc.Kind = LAN
	cc.BaseURL = LANBaseURL(hostport)
	return NewClient(cc)
}

// setLAN installs a new address (mu held or not yet shared).
func (t *term) setLAN(hostport string) error {
	if hostport == "" {
		t.lan, t.lanAddr = nil, ""
		return nil
	}
	if host, port, err := net.SplitHostPort(hostport); err != nil || host == "" || port == "" {
		return fmt.Errorf("lan address %q is not host:port", hostport)
	}
	c, err := t.lanClient(hostport)
	if err != nil {
		return err
	}
	t.lan, t.lanAddr, t.lanUp = c, hostport, true
	t.probedAt, t.probeRTT = time.Time{}, 0
	return nil
}

func (g *Gateway) term(name string) (*term, error) {
	t := g.terms[name]
	if t == nil {
		return nil, payment.Errorf(payment.CodeNotFound, "terminal %q is not configured", name)
	}
	return t, nil
}

// SetLANAddress sets a terminal's LAN address (host:port; "" forgets it).
// A new address is assumed up until it fails; setting the current address
// again changes nothing. It fails on an unknown terminal or an address that
// is not host:port. Safe for concurrent use, also with operations in flight
// (they finish on the client they started with).
func (g *Gateway) SetLANAddress(name, hostport string) error {
	t, err := g.term(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if hostport == t.lanAddr {
		return nil
	}
	if err := t.setLAN(hostport); err != nil {
		return fmt.Errorf("terminal %q: %w", name, err)
	}
	return nil
}

// MarkLANUp marks a terminal's LAN route healthy, so the next operation tries
// it first. For the background prober; unknown names are ignored.
func (g *Gateway) MarkLANUp(name string) {
	if t := g.terms[name]; t != nil {
		t.mu.Lock()
		t.lanUp = true
		t.mu.Unlock()
	}
}

// MarkLANDown marks a terminal's LAN route down (err says why, may be nil),
// so operations go to the cloud first. Unknown names are ignored.
func (g *Gateway) MarkLANDown(name string, err error) {
	if t := g.terms[name]; t != nil {
		t.mu.Lock()
		t.lanUp = false
		if err != nil {
			t.noteErr(payment.RouteLAN, err, g.now())
		}
		t.mu.Unlock()
	}
}

// NoteLANProbe records a health probe of a terminal's LAN route: a TCP
// connect to address that ended after rtt, with err nil when the connection
// was accepted. It counts only while address is still the terminal's LAN
// address: a probe of an address that discovery has since replaced says
// nothing about the new one, and is ignored (false). A probe that connected
// marks the LAN up, so the next operation tries it first (failback), and is
// kept as LANProbeRoundTrip; one that did not marks the LAN down, as an
// operation that could not connect does, and records err. It returns true
// when the probe brought the LAN back up. Unknown names are ignored. Safe
// for concurrent use.
func (g *Gateway) NoteLANProbe(name, address string, rtt time.Duration, err error) (back bool) {
	t := g.terms[name]
	if t == nil || address == "" {
		return false
	}
	now := g.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if address != t.lanAddr {
		return false
	}
	t.probedAt = now
	if err != nil {
		t.lanUp = false
		t.noteErr(payment.RouteLAN, err, now)
		return false
	}
	back = !t.lanUp
	t.lanUp, t.probeRTT = true, rtt
	return back
}

// Status returns a snapshot of every terminal's routes, in configuration
// order. Safe for concurrent use.
func (g *Gateway) Status() []TerminalStatus {
	out := make([]TerminalStatus, 0, len(g.order))
	for _, t := range g.order {
		t.mu.Lock()
		s := TerminalStatus{
			Name: t.name, Serial: t.serial, Route: t.inUse, LANAddress: t.lanAddr,
			LANUp: t.lan != nil && t.lanUp, Cloud: t.cloud != nil, LastSeen: t.lastSeen,
			LastError: t.lastErr, LastErrorAt: t.lastErrAt, LastErrorRoute: t.errRoute,
			LANProbedAt: t.probedAt, LANProbeRoundTrip: t.probeRTT,
		}
		if len(t.rtt) > 0 {
			s.RoundTrip = make(map[payment.Route]time.Duration, len(t.rtt))
			for r, d := range t.rtt {
				s.RoundTrip[r] = d
			}
		}
		t.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// routeClient is one route to try.
type routeClient struct {
	route  payment.Route
	client *Client
}

// sendPlan is the order of routes for a payment operation: the LAN first
// when it has an address and is up; otherwise the cloud first and the LAN
// (if it has an address) after it, since a not-sent attempt costs nothing.
func (t *term) sendPlan() []routeClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lan, cloud []routeClient
	if t.lan != nil {
		lan = []routeClient{{payment.RouteLAN, t.lan}}
	}
	if t.cloud != nil {
		cloud = []routeClient{{payment.RouteCloud, t.cloud}}
	}
	if t.lanUp {
		return append(lan, cloud...)
	}
	return append(cloud, lan...)
}

// controlPlan is the order for abort and searches: the route in use first
// (abort must reach the route the operation went on), then the other.
func (t *term) controlPlan() []routeClient {
	plan := t.sendPlan()
	t.mu.Lock()
	inUse := t.inUse
	t.mu.Unlock()
	for i, rc := range plan {
		if rc.route == inUse && i > 0 {
			return []routeClient{rc, plan[0]}
		}
	}
	return plan
}

// noteErr records an error (mu held).
func (t *term) noteErr(r payment.Route, err error, at time.Time) {
	t.lastErr, t.lastErrAt, t.errRoute = err.Error(), at, r
}

// observe records how a request on route r ended (mu not held). A
// TransportError is no answer: if nothing was sent on the LAN, the LAN goes
// down. Any other outcome came with an HTTP answer.
func (t *term) observe(r payment.Route, start, end time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var te *TransportError
	if errors.As(err, &te) {
		if !te.Sent && r == payment.RouteLAN {
			t.lanUp = false
		}
		t.noteErr(r, err, end)
		return
	}
	t.lastSeen = end
	t.rtt[r] = end.Sub(start)
	if r == payment.RouteLAN {
		t.lanUp = true
	}
	if err != nil && !errors.Is(err, payment.ErrNothingToAbort) {
		t.noteErr(r, err, end)
	}
}

// report passes an ended request to the Observe hook, if any.
func (g *Gateway) report(name string, r payment.Route, e Endpoint, took time.Duration, err error) {
	if g.observe != nil {
		g.observe(name, r, e, took, err)
	}
}

// noRoute is the error when a terminal has neither a LAN address nor a cloud
// route.
func noRoute(e Endpoint, name string) error {
	return &TransportError{Endpoint: e, Sent: false,
		Err: fmt.Errorf("terminal %q has no lan address and no cloud route", name)}
}

// Send delivers req to the terminal (payment.Gateway). It tries the LAN
// first when it has an address and is up, then the cloud, calling beforeSend
// (if not nil) with each route before writing anything on it; a beforeSend
// error stops Send at once with that error and nothing sent on that route.
// It goes on to the next route only when the previous one was not sent
// (ErrNotSent); after any answer or an unknown outcome it stops. When every
// route failed unsent the error wraps payment.ErrNotSent (all the route
// errors joined). An unknown terminal is a *payment.Error with CodeNotFound;
// a request missing its amount is an error before anything is sent.
func (g *Gateway) Send(ctx context.Context, name string, req payment.TerminalRequest, beforeSend func(payment.Route) error) (*payment.Result, error) {
	t, err := g.term(name)
	if err != nil {
		return nil, err
	}
	e, call, err := operation(req)
	if err != nil {
		return nil, err
	}
	plan := t.sendPlan()
	if len(plan) == 0 {
		return nil, noRoute(e, name)
	}
	var errs []error
	for _, rc := range plan {
		if beforeSend != nil {
			if err := beforeSend(rc.route); err != nil {
				return nil, err
			}
		}
		t.mu.Lock()
		t.inUse = rc.route
		t.mu.Unlock()
		start := g.now()
		res, err := call(ctx, rc.client)
		end := g.now()
		t.observe(rc.route, start, end, err)
		g.report(t.name, rc.route, e, end.Sub(start), err)
		if errors.Is(err, payment.ErrNotSent) && ctx.Err() == nil {
			errs = append(errs, err)
			continue
		}
		if errors.Is(err, payment.ErrNotSent) {
			errs = append(errs, err)
			break
		}
		return res, err
	}
	return nil, joinErrs(errs)
}

// operation maps a payment request to its endpoint and call.
func operation(req payment.TerminalRequest) (Endpoint, func(context.Context, *Client) (*payment.Result, error), error) {
	e, ok := EndpointFor(req.Operation)
	if !ok {
		return "", nil, fmt.Errorf("terminal: unknown operation %q", req.Operation)
	}
	if req.Amount == nil && e != EndpointVoid && e != EndpointRefund {
		return "", nil, fmt.Errorf("terminal: %s needs an amount", req.Operation)
	}
	var amount payment.Amount
	if req.Amount != nil {
		amount = *req.Amount
	}
	var call func(context.Context, *Client) (*payment.Result, error)
	switch e {
	case EndpointCharge:
		r := ChargeRequest{ClientTransactionID: req.ID, Amount: amount, Metadata: req.Metadata}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.Charge(ctx, r) }
	case EndpointAuthorization:
		r := AuthorizationRequest{ClientTransactionID: req.ID, Amount: amount, Metadata: req.Metadata}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.Authorization(ctx, r) }
	case EndpointCapture:
		r := CaptureRequest{ClientTransactionID: req.ID, TransactionReference: req.Reference, Amount: amount}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.Capture(ctx, r) }
	case EndpointReAuthorization:
		r := ReAuthorizationRequest{ClientTransactionID: req.ID, TransactionReference: req.Reference, Amount: amount}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.ReAuthorization(ctx, r) }
	case EndpointPosTip:
		r := PosTipRequest{ClientTransactionID: req.ID, TransactionReference: req.Reference, Amount: amount}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.PosTip(ctx, r) }
	case EndpointVoid:
		r := VoidRequest{ClientTransactionID: req.ID, TransactionReference: req.Reference}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.Void(ctx, r) }
	case EndpointRefund:
		r := RefundRequest{ClientTransactionID: req.ID, TransactionReference: req.Reference, Amount: req.Amount}
		call = func(ctx context.Context, c *Client) (*payment.Result, error) { return c.Refund(ctx, r) }
	}
	return e, call, nil
}

// Abort cancels the transaction in progress (payment.Gateway). It goes on the
// route in use (the last one an operation was sent on; before any, the
// preferred one) and, only if that one could not be connected, on the other:
// an abort moves no money, so the fallback is harmless. It returns the route
// that answered (or was tried last) and nil when something was aborted, an
// error wrapping payment.ErrNothingToAbort on 409, or the client's errors.
func (g *Gateway) Abort(ctx context.Context, name string) (payment.Route, error) {
	t, err := g.term(name)
	if err != nil {
		return "", err
	}
	return g.control(ctx, t, EndpointAbort, func(c *Client) error { return c.Abort(ctx) })
}

// lookupSize is the page a Lookup asks for: one id matches one transaction,
// a few more tolerate a terminal that ignores the filter on a quiet day.
const lookupSize = 50

// Lookup finds a transaction by client_transaction_id (payment.Gateway):
// the terminal's local history, then the online one, each over the route in
// use with the other as fallback when it cannot be connected. Only items
// whose client_transaction_id equals id count, whatever the terminal's
// filtering. Among several, an APPROVAL wins, then the newest settled one.
// A found item maps APPROVAL to approved, DECLINED and ERROR to declined,
// CANCELLED to cancelled; an item in any other status is not settled and
// gives an error wrapping payment.ErrOutcomeUnknown unless the next source
// settles it. The error wraps payment.ErrNotFound only when at least one
// source answered and every source that answered found nothing; when none
// answered it is the sources' errors joined.
func (g *Gateway) Lookup(ctx context.Context, name, id string) (*payment.Result, error) {
	t, err := g.term(name)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("terminal: lookup needs a client_transaction_id")
	}
	req := SearchRequest{Page: 1, Size: lookupSize, Filters: SearchFilters{ClientTransactionID: id}}
	var (
		errs      []error
		answered  bool
		unsettled error
	)
	for _, e := range []Endpoint{EndpointSearchLocal, EndpointSearchOnline} {
		resp, route, err := g.searchOn(ctx, t, e, req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered = true
		item := pick(resp.Items, id)
		if item == nil {
			continue
		}
		res := itemResult(item, route)
		if res == nil {
			unsettled = fmt.Errorf("terminal %q: %s: transaction %s is %q: %w",
				name, e, id, item.TransactionStatus, payment.ErrOutcomeUnknown)
			continue
		}
		return res, nil
	}
	switch {
	case unsettled != nil:
		return nil, unsettled
	case answered:
		return nil, fmt.Errorf("terminal %q: transaction %s: %w", name, id, payment.ErrNotFound)
	}
	return nil, joinErrs(errs)
}

// joinErrs joins the errors of several routes or sources; one stays as it is.
func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// searchOn runs a typed search over the control plan.
func (g *Gateway) searchOn(ctx context.Context, t *term, e Endpoint, req SearchRequest) (*SearchResponse, payment.Route, error) {
	var resp *SearchResponse
	route, err := g.control(ctx, t, e, func(c *Client) error {
		var err error
		resp, err = c.searchTyped(ctx, e, req)
		return err
	})
	return resp, route, err
}

// control runs an abort or a search on the control plan, falling back only
// when a route could not be connected (neither moves money). It returns the
// route that answered, or the one tried last.
func (g *Gateway) control(ctx context.Context, t *term, e Endpoint, do func(*Client) error) (payment.Route, error) {
	plan := t.controlPlan()
	if len(plan) == 0 {
		return "", noRoute(e, t.name)
	}
	var errs []error
	var last payment.Route
	for _, rc := range plan {
		last = rc.route
		start := g.now()
		err := do(rc.client)
		end := g.now()
		t.observe(rc.route, start, end, err)
		g.report(t.name, rc.route, e, end.Sub(start), err)
		if errors.Is(err, payment.ErrNotSent) {
			errs = append(errs, err)
			continue
		}
		return rc.route, err
	}
	return last, joinErrs(errs)
}

// pick returns the item that settles id: an APPROVAL first, then the first
// (newest) settled one, then the first at all; nil when none has the id.
func pick(items []SearchItem, id string) *SearchItem {
	var settled, other *SearchItem
	for i := range items {
		it := &items[i]
		if it.ClientTransactionID != id {
			continue
		}
		if it.TransactionStatus == StatusApproval {
			return it
		}
		if settled == nil && searchStatus(it.TransactionStatus) != "" {
			settled = it
		}
		if other == nil {
			other = it
		}
	}
	if settled != nil {
		return settled
	}
	return other
}

// searchStatus maps a search item's status, "" when it is not settled.
func searchStatus(s string) payment.Status {
	switch s {
	case StatusApproval:
		return payment.StatusApproved
	case StatusDeclined, StatusError:
		return payment.StatusDeclined
	case StatusCancelled, "CANCELED":
		return payment.StatusCancelled
	}
	return ""
}

// itemResult is a found item as a Result, or nil when it is not settled.
func itemResult(it *SearchItem, r payment.Route) *payment.Result {
	st := searchStatus(it.TransactionStatus)
	if st == "" {
		return nil
	}
	return &payment.Result{
		Route:             r,
		Status:            st,
		Reference:         clip(it.TransactionReference, maxField),
		TicketNumber:      clip(it.TicketNumber, maxField),
		AuthorizationCode: clip(it.AuthorizationCode, maxField),
		Card:              card(it.Franchise, "", it.MaskedCard),
		Raw:               scrubJSON(encodeCompact(it), MaxRaw),
	}
}

// defaultSearchSize is the page Search asks for when the query names none.
const defaultSearchSize = 100

// Search runs a transaction search and returns the terminal's answer as JSON
// with card data masked (payment.Gateway). Source "" means local; Page 0
// means 1; Size 0 means 100 and is capped at MaxSearchSize; From and To
// become start_date and end_date in Unix milliseconds. It runs on the route
// in use with the other as fallback when it cannot be connected.
func (g *Gateway) Search(ctx context.Context, name string, q payment.SearchQuery) (json.RawMessage, payment.Route, error) {
	t, err := g.term(name)
	if err != nil {
		return nil, "", err
	}
	var e Endpoint
	switch q.Source {
	case payment.SearchLocal, "":
		e = EndpointSearchLocal
	case payment.SearchOnline:
		e = EndpointSearchOnline
	default:
		return nil, "", payment.Errorf(payment.CodeValidation, "unknown search source %q", q.Source)
	}
	req := SearchRequest{Page: q.Page, Size: q.Size, Filters: SearchFilters{
		ClientTransactionID:  q.ClientTransactionID,
		TransactionReference: q.Reference,
	}}
	if req.Page <= 0 {
		req.Page = 1
	}
	if req.Size <= 0 {
		req.Size = defaultSearchSize
	}
	req.Size = min(req.Size, MaxSearchSize)
	if !q.From.IsZero() {
		req.Filters.StartDate = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		req.Filters.EndDate = q.To.UnixMilli()
	}
	var body []byte
	route, err := g.control(ctx, t, e, func(c *Client) error {
		var err error
		body, err = c.search(ctx, e, req)
		return err
	})
	if err != nil {
		return nil, route, err
	}
	return scrubJSON(body, 0), route, nil
}
