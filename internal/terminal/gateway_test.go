package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/payment"
)

// tickClock is a clock that moves one second on every reading.
type tickClock struct{ n atomic.Int64 }

func (c *tickClock) now() time.Time { return t0.Add(time.Duration(c.n.Add(1)) * time.Second) }

// gwOptions build one terminal "lane1" for a gateway test.
type gwOptions struct {
	lanAddr  string
	cloudURL string // "" : no cloud route
}

func newTestGateway(t *testing.T, o gwOptions) *Gateway {
	t.Helper()
	tc := TerminalConfig{Name: "lane1", Serial: testSerial, LANAddress: o.lanAddr,
		LAN: ClientConfig{Signer: mustSigner(t, hmac.ModeHMAC), Now: fixedNow,
			ConnectTimeout: faultConnect, ResponseTimeout: faultResponse, ControlTimeout: faultResponse}}
	if o.cloudURL != "" {
		tc.Cloud = &ClientConfig{BaseURL: o.cloudURL, Signer: mustSigner(t, hmac.ModeHMAC), Now: fixedNow,
			ConnectTimeout: faultConnect, ResponseTimeout: 30 * time.Second}
	}
	clock := &tickClock{}
	g, err := NewGateway(GatewayConfig{Terminals: []TerminalConfig{tc}, Now: clock.now})
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	return g
}

// routeLog records the routes beforeSend was called with.
type routeLog struct {
	mu     sync.Mutex
	routes []payment.Route
	fail   map[payment.Route]error
}

func (l *routeLog) before(r payment.Route) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.routes = append(l.routes, r)
	return l.fail[r]
}

func (l *routeLog) got() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.routes)
}

func chargeReq(id string) payment.TerminalRequest {
	a := testAmount()
	return payment.TerminalRequest{Operation: payment.OpCharge, ID: id, Amount: &a}
}

func approving(recorded) (int, string) { return 200, approvedAnswer }

func status1(t *testing.T, g *Gateway) TerminalStatus {
	t.Helper()
	st := g.Status()
	if len(st) != 1 {
		t.Fatalf("got %d terminals in Status, want 1", len(st))
	}
	return st[0]
}

func TestGatewayFailover(t *testing.T) {
	cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	g := newTestGateway(t, gwOptions{lanAddr: closedAddr(t), cloudURL: cloud.cloudURL()})

	var log routeLog
	res, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before)
	if err != nil {
		t.Fatalf("got %v, want the cloud's approval", err)
	}
	if res.Route != payment.RouteCloud || res.Status != payment.StatusApproved {
		t.Errorf("got %s on %s, want approved on cloud", res.Status, res.Route)
	}
	if got, want := log.got(), "[lan cloud]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}
	reqs := cloud.requests()
	if len(reqs) != 1 || reqs[0].Path != "/terminal/v1/P3SN0001/sync/charge" {
		t.Fatalf("cloud got %+v, want one charge", reqs)
	}
	st := status1(t, g)
	if st.LANUp || st.Route != payment.RouteCloud || !st.Cloud || st.LastErrorRoute != payment.RouteLAN ||
		!strings.Contains(st.LastError, "not sent") || st.LastSeen.IsZero() || st.RoundTrip[payment.RouteCloud] <= 0 {
		t.Errorf("got status %+v, want LAN down, cloud in use, the LAN error and a cloud round trip", st)
	}

	// With the LAN down the cloud goes first.
	var log2 routeLog
	if _, err := g.Send(context.Background(), "lane1", chargeReq("id-2"), log2.before); err != nil {
		t.Fatal(err)
	}
	if got, want := log2.got(), "[cloud]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}

	// Discovery finds the terminal at a new address: LAN first again.
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	if err := g.SetLANAddress("lane1", lan.hostport()); err != nil {
		t.Fatal(err)
	}
	var log3 routeLog
	res, err = g.Send(context.Background(), "lane1", chargeReq("id-3"), log3.before)
	if err != nil || res.Route != payment.RouteLAN {
		t.Fatalf("got %v %v, want approval on lan", res, err)
	}
	if got, want := log3.got(), "[lan]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}
	if n := len(lan.requests()); n != 1 {
		t.Errorf("lan got %d requests, want 1", n)
	}
	if n := len(cloud.requests()); n != 2 {
		t.Errorf("cloud got %d requests, want 2", n)
	}
	if st := status1(t, g); !st.LANUp || st.LANAddress != lan.hostport() || st.Route != payment.RouteLAN {
		t.Errorf("got status %+v, want LAN up at the new address and in use", st)
	}
}

// TestGatewayNeverResendsUnknown: the LAN took the request and dropped the
// connection; the cloud must not see it.
func TestGatewayNeverResendsUnknown(t *testing.T) {
	cases := []struct {
		name string
		lan  func(t *testing.T) (addr string, count func() int)
	}{
		{"connection dropped", func(t *testing.T) (string, func() int) {
			s := newRawServer(t, readRequest)
			return s.addr(), s.accepted
		}},
		{"5xx", func(t *testing.T) (string, func() int) {
			ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) { return 502, "" })
			return ft.hostport(), func() int { return len(ft.requests()) }
		}},
		{"garbage 200", func(t *testing.T) (string, func() int) {
			ft := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) { return 200, "<html>" })
			return ft.hostport(), func() int { return len(ft.requests()) }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
			addr, lanCount := tc.lan(t)
			g := newTestGateway(t, gwOptions{lanAddr: addr, cloudURL: cloud.cloudURL()})
			var log routeLog
			_, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before)
			if !errors.Is(err, payment.ErrOutcomeUnknown) || errors.Is(err, payment.ErrNotSent) {
				t.Fatalf("got %v, want outcome unknown only", err)
			}
			if got, want := log.got(), "[lan]"; got != want {
				t.Errorf("beforeSend got %s, want %s", got, want)
			}
			if n := len(cloud.requests()); n != 0 {
				t.Errorf("cloud got %d requests, want 0", n)
			}
			if n := lanCount(); n != 1 {
				t.Errorf("lan got %d requests, want 1", n)
			}
			if st := status1(t, g); !st.LANUp {
				t.Errorf("got LAN down after an unknown outcome, want it up (it was connected)")
			}
		})
	}
}

func TestGatewayBeforeSendFails(t *testing.T) {
	errJournal := errors.New("journal down")
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)

	g := newTestGateway(t, gwOptions{lanAddr: lan.hostport(), cloudURL: cloud.cloudURL()})
	log := routeLog{fail: map[payment.Route]error{payment.RouteLAN: errJournal}}
	if _, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before); !errors.Is(err, errJournal) {
		t.Errorf("got %v, want the beforeSend error", err)
	}
	if n := len(lan.requests()) + len(cloud.requests()); n != 0 {
		t.Errorf("terminals got %d requests, want 0", n)
	}

	// Failing before the fallback: the LAN was not sent, the cloud is not tried.
	g = newTestGateway(t, gwOptions{lanAddr: closedAddr(t), cloudURL: cloud.cloudURL()})
	log = routeLog{fail: map[payment.Route]error{payment.RouteCloud: errJournal}}
	if _, err := g.Send(context.Background(), "lane1", chargeReq("id-2"), log.before); !errors.Is(err, errJournal) {
		t.Errorf("got %v, want the beforeSend error", err)
	}
	if got, want := log.got(), "[lan cloud]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}
	if n := len(cloud.requests()); n != 0 {
		t.Errorf("cloud got %d requests, want 0", n)
	}
}

func TestGatewayNotSent(t *testing.T) {
	t.Run("no route at all", func(t *testing.T) {
		g := newTestGateway(t, gwOptions{})
		var log routeLog
		_, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before)
		if !errors.Is(err, payment.ErrNotSent) {
			t.Errorf("got %v, want not sent", err)
		}
		if got := log.got(); got != "[]" {
			t.Errorf("beforeSend got %s, want no call", got)
		}
	})
	t.Run("both routes refused", func(t *testing.T) {
		g := newTestGateway(t, gwOptions{lanAddr: closedAddr(t),
			cloudURL: CloudBaseURL("http://"+closedAddr(t)+"/terminal/v1", testSerial)})
		var log routeLog
		_, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before)
		if !errors.Is(err, payment.ErrNotSent) || errors.Is(err, payment.ErrOutcomeUnknown) {
			t.Errorf("got %v, want not sent only", err)
		}
		if got, want := log.got(), "[lan cloud]"; got != want {
			t.Errorf("beforeSend got %s, want %s", got, want)
		}
	})
	t.Run("lan only, refused", func(t *testing.T) {
		g := newTestGateway(t, gwOptions{lanAddr: closedAddr(t)})
		_, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), nil)
		if !errors.Is(err, payment.ErrNotSent) {
			t.Errorf("got %v, want not sent", err)
		}
		// Down, but the only route: the next operation still tries it.
		var log routeLog
		_, _ = g.Send(context.Background(), "lane1", chargeReq("id-2"), log.before)
		if got, want := log.got(), "[lan]"; got != want {
			t.Errorf("beforeSend got %s, want %s", got, want)
		}
	})
}

// TestGatewayRequests maps every payment request to its wire body.
func TestGatewayRequests(t *testing.T) {
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
	a := testAmount()
	tip := testAmount()
	tip.Tip = decp("1")
	meta := map[string]string{"reference": "order-9"}
	cases := []struct {
		req      payment.TerminalRequest
		wantPath string
		wantBody string
	}{
		{payment.TerminalRequest{Operation: payment.OpCharge, ID: "c1", Amount: &a, Metadata: meta},
			"/terminal/v1/sync/charge", `{"client_transaction_id":"c1","amount":` + testAmountJSON + `,"metadata":{"reference":"order-9"}}`},
		{payment.TerminalRequest{Operation: payment.OpAuthorization, ID: "c2", Amount: &a, Metadata: meta},
			"/terminal/v1/sync/authorization", `{"client_transaction_id":"c2","amount":` + testAmountJSON + `,"metadata":{"reference":"order-9"}}`},
		{payment.TerminalRequest{Operation: payment.OpCapture, ID: "c3", Reference: "r", Amount: &a, Metadata: meta},
			"/terminal/v1/sync/capture", `{"client_transaction_id":"c3","transaction_reference":"r","amount":` + testAmountJSON + `}`},
		{payment.TerminalRequest{Operation: payment.OpReauthorization, ID: "c4", Reference: "r", Amount: &a},
			"/terminal/v1/sync/re_authorization", `{"client_transaction_id":"c4","transaction_reference":"r","amount":` + testAmountJSON + `}`},
		{payment.TerminalRequest{Operation: payment.OpTip, ID: "c5", Reference: "r", Amount: &tip},
			"/terminal/v1/sync/pos_tip", `{"client_transaction_id":"c5","transaction_reference":"r","amount":{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0,"tip":1}}`},
		{payment.TerminalRequest{Operation: payment.OpVoid, ID: "c6", Reference: "r"},
			"/terminal/v1/sync/void", `{"client_transaction_id":"c6","transaction_reference":"r"}`},
		{payment.TerminalRequest{Operation: payment.OpRefund, ID: "c7", Reference: "r"},
			"/terminal/v1/sync/refund", `{"client_transaction_id":"c7","transaction_reference":"r"}`},
		{payment.TerminalRequest{Operation: payment.OpRefund, ID: "c8", Reference: "r", Amount: &a},
			"/terminal/v1/sync/refund", `{"client_transaction_id":"c8","transaction_reference":"r","amount":` + testAmountJSON + `}`},
	}
	for _, tc := range cases {
		n := len(lan.requests())
		if _, err := g.Send(context.Background(), "lane1", tc.req, nil); err != nil {
			t.Fatalf("%s: %v", tc.req.ID, err)
		}
		got := lan.requests()[n]
		if got.Path != tc.wantPath || got.Body != tc.wantBody {
			t.Errorf("%s: got %s %s\nwant %s %s", tc.req.ID, got.Path, got.Body, tc.wantPath, tc.wantBody)
		}
	}

	// Refused before beforeSend and before the wire.
	n := len(lan.requests())
	var log routeLog
	for _, req := range []payment.TerminalRequest{
		{Operation: payment.OpCharge, ID: "x1"},
		{Operation: payment.OpCapture, ID: "x2", Reference: "r"},
		{Operation: "teleport", ID: "x3"},
	} {
		if _, err := g.Send(context.Background(), "lane1", req, log.before); err == nil {
			t.Errorf("%s: got nil error, want a refusal", req.ID)
		}
	}
	if got := len(lan.requests()) - n; got != 0 || log.got() != "[]" {
		t.Errorf("got %d requests and beforeSend %s, want none", got, log.got())
	}

	_, err := g.Send(context.Background(), "lane9", chargeReq("x4"), nil)
	if payment.CodeOf(err) != payment.CodeNotFound {
		t.Errorf("got %v for an unknown terminal, want code not_found", err)
	}
}

func TestGatewayAbort(t *testing.T) {
	abortReply := func(status int, body string) func(recorded) (int, string) {
		return func(r recorded) (int, string) {
			if strings.HasSuffix(r.Path, "/abort") {
				return status, body
			}
			return 200, approvedAnswer
		}
	}
	t.Run("on the lan", func(t *testing.T) {
		lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), abortReply(200, `{}`))
		g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
		route, err := g.Abort(context.Background(), "lane1")
		if err != nil || route != payment.RouteLAN {
			t.Fatalf("got %s %v, want lan nil", route, err)
		}
		if r := lan.requests()[0]; r.Method != "GET" || r.Path != "/terminal/v1/sync/abort" {
			t.Errorf("got %s %s, want GET /terminal/v1/sync/abort", r.Method, r.Path)
		}
	})
	t.Run("nothing to abort", func(t *testing.T) {
		lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false),
			abortReply(409, `{"type":"TERMINAL","code":"TER-004","message":"no transaction in progress"}`))
		g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
		if _, err := g.Abort(context.Background(), "lane1"); !errors.Is(err, payment.ErrNothingToAbort) {
			t.Errorf("got %v, want nothing to abort", err)
		}
		if st := status1(t, g); st.LastError != "" {
			t.Errorf("got last error %q, want none for a 409 abort", st.LastError)
		}
	})
	t.Run("route in use is the cloud", func(t *testing.T) {
		lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), abortReply(200, `{}`))
		cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), abortReply(200, `{}`))
		g := newTestGateway(t, gwOptions{lanAddr: closedAddr(t), cloudURL: cloud.cloudURL()})
		if _, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), nil); err != nil {
			t.Fatal(err)
		}
		// The LAN comes back, but the operation went on the cloud.
		if err := g.SetLANAddress("lane1", lan.hostport()); err != nil {
			t.Fatal(err)
		}
		route, err := g.Abort(context.Background(), "lane1")
		if err != nil || route != payment.RouteCloud {
			t.Fatalf("got %s %v, want cloud nil", route, err)
		}
		reqs := cloud.requests()
		if r := reqs[len(reqs)-1]; r.Method != "POST" || r.Path != "/terminal/v1/P3SN0001/sync/abort" || r.Body != "{}" {
			t.Errorf("got %s %s %q, want POST …/sync/abort {}", r.Method, r.Path, r.Body)
		}
		if n := len(lan.requests()); n != 0 {
			t.Errorf("lan got %d requests, want 0", n)
		}
	})
	t.Run("route in use unreachable", func(t *testing.T) {
		cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), abortReply(200, `{}`))
		g := newTestGateway(t, gwOptions{lanAddr: closedAddr(t), cloudURL: cloud.cloudURL()})
		route, err := g.Abort(context.Background(), "lane1")
		if err != nil || route != payment.RouteCloud {
			t.Errorf("got %s %v, want the cloud to take the abort", route, err)
		}
	})
}

// searchItem renders one search item.
func searchItem(id, status, masked string) string {
	return `{"client_transaction_id":"` + id + `","transaction_reference":"ref-` + id + `","transaction_type":"charge",` +
		`"transaction_status":"` + status + `","amount":` + testAmountJSON + `,"ticket_number":"000000000000000042",` +
		`"franchise":"VISA","masked_card":"` + masked + `","authorization_code":"AC1","created":1767225600000}`
}

func searchAnswer(items ...string) string {
	return `{"items":[` + strings.Join(items, ",") + `],"page":1,"size":50,"total":` + fmt.Sprint(len(items)) + `}`
}

func TestGatewayLookup(t *testing.T) {
	const id = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
	type reply struct {
		status int
		body   string
	}
	empty := reply{200, searchAnswer()}
	cases := []struct {
		name          string
		local, online reply
		want          outcome // a Result status, or wantUnknown
		notFound      bool
		wantRequests  int
	}{
		{"local approval", reply{200, searchAnswer(searchItem(id, "APPROVAL", "424242******4242"))}, empty, wantApproved, false, 1},
		{"online decline", empty, reply{200, searchAnswer(searchItem(id, "DECLINED", ""))}, wantDeclined, false, 2},
		{"local cancelled", reply{200, searchAnswer(searchItem(id, "CANCELLED", ""))}, empty, wantCancelled, false, 1},
		{"approval wins", reply{200, searchAnswer(searchItem(id, "DECLINED", ""), searchItem(id, "APPROVAL", ""))}, empty, wantApproved, false, 1},
		{"filter ignored", reply{200, searchAnswer(searchItem("other", "APPROVAL", ""))}, reply{200, searchAnswer(searchItem("other2", "APPROVAL", ""))}, "", true, 2},
		{"nowhere", empty, empty, "", true, 2},
		{"local fails, online empty", reply{500, ""}, empty, "", true, 2},
		{"local refuses, online finds", reply{400, `{"type":"PARAMETER","code":"PAR-001","message":"bad"}`},
			reply{200, searchAnswer(searchItem(id, "APPROVAL", ""))}, wantApproved, false, 2},
		{"both fail", reply{500, ""}, reply{503, ""}, wantUnknown, false, 2},
		{"pending", reply{200, searchAnswer(searchItem(id, "PENDING", ""))}, empty, wantUnknown, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(r recorded) (int, string) {
				if strings.HasSuffix(r.Path, "transaction_search_local") {
					return tc.local.status, tc.local.body
				}
				return tc.online.status, tc.online.body
			})
			g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
			res, err := g.Lookup(context.Background(), "lane1", id)
			switch {
			case tc.notFound:
				if !errors.Is(err, payment.ErrNotFound) {
					t.Fatalf("got %v %v, want not found", res, err)
				}
			case tc.want == wantUnknown:
				if err == nil || errors.Is(err, payment.ErrNotFound) {
					t.Fatalf("got %v %v, want an error that is not not-found", res, err)
				}
			default:
				if err != nil || outcome(res.Status) != tc.want {
					t.Fatalf("got %v %v, want %s", res, err, tc.want)
				}
				if res.Reference != "ref-"+id || res.Route != payment.RouteLAN || res.TicketNumber == "" || res.AuthorizationCode != "AC1" {
					t.Errorf("got %+v, want reference, route, ticket and authorization code", res)
				}
				mustJSON(t, res.Raw)
			}
			reqs := lan.requests()
			if len(reqs) != tc.wantRequests {
				t.Fatalf("terminal got %d requests, want %d", len(reqs), tc.wantRequests)
			}
			want := `{"page":1,"size":50,"filters":{"client_transaction_id":"` + id + `"}}`
			if reqs[0].Path != "/terminal/v1/sync/transaction_search_local" || reqs[0].Body != want {
				t.Errorf("got %s %s, want the local search for the id", reqs[0].Path, reqs[0].Body)
			}
			if len(reqs) > 1 && reqs[1].Path != "/terminal/v1/transaction_search_online" {
				t.Errorf("got %s, want the LAN online search path", reqs[1].Path)
			}
		})
	}

	t.Run("full card number in the item", func(t *testing.T) {
		lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) {
			return 200, searchAnswer(searchItem(id, "APPROVAL", "4242424242424242"))
		})
		g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
		res, err := g.Lookup(context.Background(), "lane1", id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Card == nil || res.Card.Masked != "" || res.Card.Brand != "VISA" {
			t.Errorf("got card %+v, want brand only", res.Card)
		}
		if strings.Contains(string(res.Raw), "4242424242424242") {
			t.Errorf("raw keeps the card number: %s", res.Raw)
		}
	})
}

func TestGatewaySearch(t *testing.T) {
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), func(recorded) (int, string) {
		return 200, searchAnswer(searchItem("a", "APPROVAL", "4242424242424242"), searchItem("b", "DECLINED", "424242******4242"))
	})
	g := newTestGateway(t, gwOptions{lanAddr: lan.hostport()})
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out, route, err := g.Search(context.Background(), "lane1", payment.SearchQuery{Source: payment.SearchOnline,
		Reference: "ref-a", From: from, To: from.Add(time.Hour), Size: 5000})
	if err != nil || route != payment.RouteLAN {
		t.Fatalf("got %s %v, want lan nil", route, err)
	}
	mustJSON(t, out)
	if strings.Contains(string(out), "4242424242424242") || !strings.Contains(string(out), "424242******4242") {
		t.Errorf("got %s, want card numbers masked", out)
	}
	var parsed SearchResponse
	if err := json.Unmarshal(out, &parsed); err != nil || len(parsed.Items) != 2 {
		t.Errorf("got %v (%d items), want the terminal's answer passed through", err, len(parsed.Items))
	}
	r := lan.requests()[0]
	want := `{"page":1,"size":500,"filters":{"transaction_reference":"ref-a","start_date":1767225600000,"end_date":1767229200000}}`
	if r.Path != "/terminal/v1/transaction_search_online" || r.Body != want {
		t.Errorf("got %s %s\nwant /terminal/v1/transaction_search_online %s", r.Path, r.Body, want)
	}
	if _, _, err := g.Search(context.Background(), "lane1", payment.SearchQuery{Source: "elsewhere"}); err == nil {
		t.Error("got nil error for an unknown source, want a refusal")
	}
}

func TestGatewayMarkLAN(t *testing.T) {
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	g := newTestGateway(t, gwOptions{lanAddr: lan.hostport(), cloudURL: cloud.cloudURL()})

	g.MarkLANDown("lane1", errors.New("probe failed"))
	var log routeLog
	if _, err := g.Send(context.Background(), "lane1", chargeReq("id-1"), log.before); err != nil {
		t.Fatal(err)
	}
	if got, want := log.got(), "[cloud]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}
	g.MarkLANUp("lane1")
	var log2 routeLog
	if _, err := g.Send(context.Background(), "lane1", chargeReq("id-2"), log2.before); err != nil {
		t.Fatal(err)
	}
	if got, want := log2.got(), "[lan]"; got != want {
		t.Errorf("beforeSend got %s, want %s", got, want)
	}
	g.MarkLANUp("nobody") // ignored
	g.MarkLANDown("nobody", nil)
}

// TestGatewayNoteLANProbe: the background prober's results. A probe of the
// current address that connects brings the LAN back (failback) and keeps
// its round trip; one that fails takes it down; a probe of an address
// discovery has since replaced counts for nothing.
func TestGatewayNoteLANProbe(t *testing.T) {
	lan := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	cloud := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	g := newTestGateway(t, gwOptions{lanAddr: lan.hostport(), cloudURL: cloud.cloudURL()})
	refused := errors.New("connect: connection refused")
	steps := []struct {
		name      string
		address   string
		rtt       time.Duration
		err       error
		wantBack  bool
		wantUp    bool
		wantRTT   time.Duration
		wantPlan  string // routes beforeSend sees for the next charge
		wantError string // substring of LastError
	}{
		{"up, probe connects", lan.hostport(), 3 * time.Millisecond, nil, false, true, 3 * time.Millisecond, "[lan]", ""},
		{"probe fails", lan.hostport(), 0, refused, false, false, 3 * time.Millisecond, "[cloud]", "connection refused"},
		{"failed again", lan.hostport(), 0, refused, false, false, 3 * time.Millisecond, "[cloud]", "connection refused"},
		{"stale address connects", "192.0.2.99:6868", time.Millisecond, nil, false, false, 3 * time.Millisecond, "[cloud]", "connection refused"},
		{"back", lan.hostport(), 2 * time.Millisecond, nil, true, true, 2 * time.Millisecond, "[lan]", "connection refused"},
		{"no address", "", time.Millisecond, nil, false, true, 2 * time.Millisecond, "[lan]", "connection refused"},
	}
	var lastProbe time.Time
	for i, st := range steps {
		back := g.NoteLANProbe("lane1", st.address, st.rtt, st.err)
		if back != st.wantBack {
			t.Errorf("%s: NoteLANProbe got %v, want %v", st.name, back, st.wantBack)
		}
		s := status1(t, g)
		if s.LANUp != st.wantUp || s.LANProbeRoundTrip != st.wantRTT || !strings.Contains(s.LastError, st.wantError) {
			t.Errorf("%s: got up=%v probe rtt=%v last error %q, want up=%v rtt=%v error containing %q",
				st.name, s.LANUp, s.LANProbeRoundTrip, s.LastError, st.wantUp, st.wantRTT, st.wantError)
		}
		counted := st.address == lan.hostport()
		if counted && !s.LANProbedAt.After(lastProbe) {
			t.Errorf("%s: LANProbedAt got %v, want it later than %v", st.name, s.LANProbedAt, lastProbe)
		}
		if !counted && !s.LANProbedAt.Equal(lastProbe) {
			t.Errorf("%s: LANProbedAt got %v, want it unchanged (%v)", st.name, s.LANProbedAt, lastProbe)
		}
		lastProbe = s.LANProbedAt
		var log routeLog
		if _, err := g.Send(context.Background(), "lane1", chargeReq(fmt.Sprintf("id-%d", i)), log.before); err != nil {
			t.Fatalf("%s: charge: %v", st.name, err)
		}
		if got := log.got(); got != st.wantPlan {
			t.Errorf("%s: beforeSend got %s, want %s", st.name, got, st.wantPlan)
		}
	}

	// A new address forgets the old address's probe.
	if err := g.SetLANAddress("lane1", closedAddr(t)); err != nil {
		t.Fatal(err)
	}
	if s := status1(t, g); !s.LANProbedAt.IsZero() || s.LANProbeRoundTrip != 0 {
		t.Errorf("after a new address: got probed at %v rtt %v, want none", s.LANProbedAt, s.LANProbeRoundTrip)
	}
	if g.NoteLANProbe("nobody", lan.hostport(), time.Millisecond, nil) {
		t.Error("NoteLANProbe of an unknown terminal: got true, want false")
	}
}

// TestGatewayConcurrent: addresses change while operations, aborts and
// status snapshots run (go test -race).
func TestGatewayConcurrent(t *testing.T) {
	a := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	b := newFakeTerminal(t, mustVerifier(t, hmac.ModeHMAC, false), approving)
	g := newTestGateway(t, gwOptions{lanAddr: a.hostport()})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				switch i {
				case 0:
					addr := a.hostport()
					if j%2 == 1 {
						addr = b.hostport()
					}
					if err := g.SetLANAddress("lane1", addr); err != nil {
						errs <- err
					}
				case 1:
					if _, err := g.Send(context.Background(), "lane1", chargeReq(fmt.Sprint("id-", j)), nil); err != nil {
						errs <- err
					}
				case 2:
					_ = g.Status()
				case 3:
					_, _ = g.Abort(context.Background(), "lane1")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(a.requests()) + len(b.requests()); got < 10 {
		t.Errorf("terminals got %d requests, want at least the 10 charges", got)
	}
}

func TestNewGatewayRejects(t *testing.T) {
	s := mustSigner(t, hmac.ModeHMAC)
	ok := TerminalConfig{Name: "lane1", LAN: ClientConfig{Signer: s}}
	cases := []struct {
		name  string
		terms []TerminalConfig
	}{
		{"no name", []TerminalConfig{{LAN: ClientConfig{Signer: s}}}},
		{"twice", []TerminalConfig{ok, ok}},
		{"no signer", []TerminalConfig{{Name: "x"}}},
		{"bad address", []TerminalConfig{{Name: "x", LANAddress: "nocolon", LAN: ClientConfig{Signer: s}}}},
		{"bad cloud", []TerminalConfig{{Name: "x", LAN: ClientConfig{Signer: s}, Cloud: &ClientConfig{Signer: s}}}},
	}
	for _, tc := range cases {
		if _, err := NewGateway(GatewayConfig{Terminals: tc.terms}); err == nil {
			t.Errorf("%s: got nil error, want a refusal", tc.name)
		}
	}
	g, err := NewGateway(GatewayConfig{Terminals: []TerminalConfig{ok}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetLANAddress("lane1", "bad"); err == nil {
		t.Error("got nil error for address \"bad\", want a refusal")
	}
	if err := g.SetLANAddress("lane9", "127.0.0.1:1"); payment.CodeOf(err) != payment.CodeNotFound {
		t.Errorf("got %v for an unknown terminal, want not_found", err)
	}
}
