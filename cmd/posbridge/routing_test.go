package main

// Routing and discovery through the real daemon wiring (newDaemon, Open,
// Serve; startTestDaemon) with real DNS-SD packets on loopback: the
// simulator is found by its serial, a moved terminal is followed, a LAN
// that refuses sends the next charge over the cloud route without a double
// charge and fails back when it returns, and a charge whose outcome is
// unknown is never re-sent on the other route. The namespace and avahi
// versions are in discovery_netns_test.go.
//
// Figures for the closing note are logged as "FIGURE …" lines
// (go test -v -run 'TestDiscovery|TestRouting' ./cmd/posbridge | grep FIGURE);
// nothing asserts speed, deadlines are generous.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/lan"
	"github.com/posbridge/posbridge/internal/lan/lantest"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// routingTimeout bounds every wait in these tests; it only stops a broken
// test.
const routingTimeout = 30 * time.Second

// rtDoor serves a simulator's handler on one listener, the way one network
// path reaches the terminal, and counts the requests that came through it
// by endpoint (the last path segment: "charge", "abort",
// "transaction_search_local"…). Several doors on one Sim are one terminal
// reachable several ways: one ledger. A door can be shut (its address then
// refuses connections) and opened again on the same address. Safe for
// concurrent use.
type rtDoor struct {
	name    string
	handler http.Handler
	addr    string

	mu      sync.Mutex
	srv     *http.Server
	served  chan struct{} // closed when srv's Serve has returned
	counts  map[string]int
	arrived map[string]time.Time // latest arrival per endpoint
}

// rtOpenDoor serves s on ln until the test ends.
func rtOpenDoor(t *testing.T, name string, s *sim.Sim, ln net.Listener) *rtDoor {
	t.Helper()
	d := &rtDoor{name: name, handler: s.Handler(), addr: ln.Addr().String(),
		counts: map[string]int{}, arrived: map[string]time.Time{}}
	d.serve(ln)
	t.Cleanup(d.shut)
	return d
}

func (d *rtDoor) serve(ln net.Listener) {
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	d.mu.Lock()
	d.srv, d.served = srv, served
	d.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
}

func (d *rtDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep := path.Base(r.URL.Path)
	d.mu.Lock()
	d.counts[ep]++
	d.arrived[ep] = time.Now()
	d.mu.Unlock()
	d.handler.ServeHTTP(w, r)
}

// shut closes the listener and every connection, and waits for the server
// to stop: the address refuses.
func (d *rtDoor) shut() {
	d.mu.Lock()
	srv, served := d.srv, d.served
	d.mu.Unlock()
	_ = srv.Close()
	<-served
}

// reopen listens on the door's address again.
func (d *rtDoor) reopen(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		t.Fatalf("reopen %s door on %s: %v", d.name, d.addr, err)
	}
	d.serve(ln)
}

func (d *rtDoor) port() int {
	_, p, _ := net.SplitHostPort(d.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// count returns how many requests for endpoint came through the door.
func (d *rtDoor) count(endpoint terminal.Endpoint) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[string(endpoint)]
}

// payments returns how many payment operations (anything that can move
// money) came through the door.
func (d *rtDoor) payments() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, e := range []terminal.Endpoint{terminal.EndpointCharge, terminal.EndpointAuthorization,
		terminal.EndpointCapture, terminal.EndpointReAuthorization, terminal.EndpointPosTip,
		terminal.EndpointVoid, terminal.EndpointRefund} {
		n += d.counts[string(e)]
	}
	return n
}

// summary lists the counts, for failure messages.
func (d *rtDoor) summary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("%s door %s: %v", d.name, d.addr, d.counts)
}

func (d *rtDoor) arrivedAt(endpoint terminal.Endpoint) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.arrived[string(endpoint)]
}

func rtListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// rtAPI calls a daemon's REST API.
type rtAPI struct {
	base string
	http *http.Client
}

func (c *rtAPI) do(t *testing.T, method, p, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+p, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// rtTx is the part of the API's transaction object these tests read.
type rtTx struct {
	ID     string `json:"client_transaction_id"`
	Status string `json:"status"`
	Route  string `json:"route"`
	Events []struct {
		Status string `json:"status"`
		Route  string `json:"route"`
		Detail string `json:"detail"`
	} `json:"events"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// routes lists the route of every event that has one, in order.
func (tx rtTx) routes() string {
	var rs []string
	for _, e := range tx.Events {
		if e.Route != "" {
			rs = append(rs, e.Route)
		}
	}
	return strings.Join(rs, " ")
}

// charge posts a charge of 12.50 with id and returns the HTTP status and
// the answer (a transaction, or an error object).
func (c *rtAPI) charge(t *testing.T, id string) (int, rtTx) {
	t.Helper()
	status, b := c.do(t, "POST", "/v1/charges",
		`{"client_transaction_id":"`+id+`","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":12.50}}`)
	var tx rtTx
	if err := json.Unmarshal(b, &tx); err != nil {
		t.Fatalf("charge %s: answer %d %s: %v", id, status, b, err)
	}
	return status, tx
}

// transaction reads a transaction, waiting up to wait for it to settle
// (the read counts as the POS claiming it).
func (c *rtAPI) transaction(t *testing.T, id string, wait time.Duration) rtTx {
	t.Helper()
	q := ""
	if wait > 0 {
		q = fmt.Sprintf("?wait=%ds", int(wait.Seconds()))
	}
	status, b := c.do(t, "GET", "/v1/transactions/"+id+q, "")
	var tx rtTx
	if err := json.Unmarshal(b, &tx); err != nil || status != http.StatusOK {
		t.Fatalf("GET transaction %s: %d %s (%v)", id, status, b, err)
	}
	return tx
}

// rtTerminal is one terminal as GET /v1/terminals shows it.
type rtTerminal struct {
	Name  string `json:"name"`
	Route string `json:"route"`
	LAN   struct {
		Address         string    `json:"address"`
		Up              bool      `json:"up"`
		LastSeen        time.Time `json:"last_seen"`
		LastRoundTripMS *int64    `json:"last_round_trip_ms"`
	} `json:"lan"`
	Cloud struct {
		Enabled         bool   `json:"enabled"`
		LastRoundTripMS *int64 `json:"last_round_trip_ms"`
	} `json:"cloud"`
	LastError string `json:"last_error"`
}

// terminal returns the one configured terminal as GET /v1/terminals shows it.
func (c *rtAPI) terminal(t *testing.T) rtTerminal {
	t.Helper()
	status, b := c.do(t, "GET", "/v1/terminals", "")
	var v struct {
		Terminals []rtTerminal `json:"terminals"`
	}
	if err := json.Unmarshal(b, &v); err != nil || status != http.StatusOK || len(v.Terminals) != 1 {
		t.Fatalf("GET /v1/terminals: %d %s (%v), want one terminal", status, b, err)
	}
	return v.Terminals[0]
}

// rtWaitFor polls cond every few milliseconds and returns when it first held;
// it fails the test after timeout.
func rtWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Now()
}

// rtLAN returns the gateway's view of the one terminal's LAN.
func (td *testDaemon) rtLAN() (address string, up bool) {
	st := td.d.gateway.Status()[0]
	return st.LANAddress, st.LANUp
}

// rtStartDaemon boots the real wiring with discovery on loopback and
// no lan_address for a terminal with serial; configure adjusts the rest.
func rtStartDaemon(t *testing.T, serial string, configure func(*config.Config)) (*testDaemon, *rtAPI) {
	t.Helper()
	lantest.Loopback(t) // skips when the machine has none
	td := startTestDaemon(t, testDaemonOptions{
		Sim: func(c *sim.Config) { c.Serial, c.Credential.Serial = serial, serial },
		Config: func(c *config.Config) {
			c.Terminals[0].LANAddress = ""
			c.Discovery.Enabled = true
			c.Discovery.Interfaces = []string{"lo"}
			if configure != nil {
				configure(c)
			}
		},
	})
	return td, &rtAPI{base: td.URL, http: &http.Client{Timeout: 90 * time.Second}}
}

// rtWithCloud enables the cloud route for the one terminal, through the
// base-URL override, at door.
func rtWithCloud(c *config.Config, door string) {
	c.Cloud.Environment = "uat"
	c.Cloud.BaseURL = "http://" + door + "/terminal/v1/{serial}"
	c.Terminals[0].Cloud = true
}

// rtCheckLedger fails the test unless every id was charged exactly once and
// nothing else was charged.
func rtCheckLedger(t *testing.T, s *sim.Sim, ids ...string) {
	t.Helper()
	l := s.Ledger()
	for _, id := range ids {
		e, ok := l.Entry(id)
		if !ok || e.TimesTaken != 1 || e.Taken.String() != "12.5" {
			t.Errorf("ledger %s: got %+v (found %v), want 12.5 taken exactly once", id, e, ok)
		}
	}
	if l.Totals.DoubleCharges != 0 || len(l.Entries) != len(ids) {
		t.Errorf("ledger: got %d entries and %d double charges, want %d entries and none: %+v",
			len(l.Entries), l.Totals.DoubleCharges, len(ids), l.Entries)
	}
}

// TestDiscoveryFindsSimulatorAndCharges: the simulator advertises itself
// (sim.Advertise on lo, _kushki-one._tcp with TXT serial=…); the daemon,
// configured with the serial and no lan_address, finds it and takes a charge
// over the LAN; the address is remembered for the next start.
func TestDiscoveryFindsSimulatorAndCharges(t *testing.T) {
	serial := lantest.Serial(t)
	td, api := rtStartDaemon(t, serial, func(c *config.Config) { c.Discovery.Service = sim.ServiceType })

	// Nothing known yet and no cloud: nothing can be sent.
	status, tx := api.charge(t, uuid.NewString())
	if status != http.StatusServiceUnavailable || tx.Error == nil || tx.Error.Code != "terminal_unreachable" {
		t.Errorf("charge before discovery: got %d %+v, want 503 terminal_unreachable", status, tx.Error)
	}
	if n := td.Sim.State().TotalRequests; n != 0 {
		t.Fatalf("terminal requests before discovery: got %d, want 0", n)
	}

	want := td.SimLn.Addr().String()
	advertised := time.Now()
	if err := td.Sim.Advertise(td.SimLn.Addr()); err != nil {
		t.Fatalf("sim.Advertise: %v", err)
	}
	found := rtWaitFor(t, "daemon has the advertised address", routingTimeout, func() bool {
		a, _ := td.rtLAN()
		return a == want
	})
	t.Logf("FIGURE advertisement to discovery, loopback (sim.Advertise → gateway has the address): %v", found.Sub(advertised))

	id := uuid.NewString()
	status, tx = api.charge(t, id)
	if status != http.StatusOK || tx.Status != "approved" || tx.Route != "lan" || tx.routes() != "lan lan" {
		t.Fatalf("charge: got %d %+v, want approved over lan with lan on every event", status, tx)
	}
	rtCheckLedger(t, td.Sim, id)
	if r := td.Sim.State().Routes; r["lan"] != 1 || r["cloud"] != 0 {
		t.Errorf("terminal requests by route: got %v, want one on lan", r)
	}
	v := api.terminal(t)
	if v.Route != "lan" || v.LAN.Address != want || !v.LAN.Up || v.LAN.LastSeen.IsZero() || v.LAN.LastRoundTripMS == nil || v.Cloud.Enabled {
		t.Errorf("GET /v1/terminals: got %+v, want lan in use at %s, up, seen, with a round trip, cloud off", v, want)
	}
	m, err := lan.NewStore(td.Cfg.DataDir).Load()
	if err != nil || m[strings.ToUpper(serial)].Address != want {
		t.Errorf("remembered addresses: got %+v (%v), want %s for %s", m, err, want, serial)
	}
}

// TestDiscoveryFollowsMovedTerminal: the terminal re-advertises on another
// address (127.0.0.1 → 127.0.0.2) and the old one stops answering; the next
// charge goes to the new address. With a goodbye, discovery reports the move
// at once. Without one (the advertiser is killed), the daemon learns it when
// the old address fails: the charge there is not sent (no cloud here), the
// LAN is down, the probe asks discovery to browse again, and the POS's retry
// with the same id goes to the new address (the browse interval is an hour,
// so only that rescan can find it).
func TestDiscoveryFollowsMovedTerminal(t *testing.T) {
	for _, goodbye := range []bool{true, false} {
		name := map[bool]string{true: "withdrawn with a goodbye", false: "advertiser killed without goodbye"}[goodbye]
		t.Run(name, func(t *testing.T) {
			serial, svc := lantest.Serial(t), lantest.Service(t)
			td, api := rtStartDaemon(t, serial, func(c *config.Config) {
				c.Discovery.Service = svc
				c.Discovery.Interval = time.Hour
				c.Discovery.ProbeInterval = 250 * time.Millisecond
			})
			oldDoor := rtOpenDoor(t, "old", td.Sim, rtListen(t, "127.0.0.1:0"))
			newDoor := rtOpenDoor(t, "new", td.Sim, rtListen(t, "127.0.0.2:0"))

			var withdraw func()
			if goodbye {
				withdraw = lantest.AdvertiseLoopback(t, "lane", svc, serial, "127.0.0.1", oldDoor.port())
			} else {
				h := lantest.StartHelper(t, routingHelper, "", lantest.RoleAdvertiseProxy,
					append(lantest.AdvertiserEnv("lane", svc, serial, oldDoor.port()),
						lantest.EnvIface+"=lo", lantest.EnvIP+"=127.0.0.1", lantest.EnvHost+"=pbt-moving")...)
				h.Expect(t, "REGISTERED", lantest.FindTimeout)
				withdraw = h.Kill
			}
			rtWaitFor(t, "daemon has the old address", routingTimeout, func() bool { a, _ := td.rtLAN(); return a == oldDoor.addr })
			first := uuid.NewString()
			if status, tx := api.charge(t, first); status != http.StatusOK || tx.Route != "lan" || oldDoor.count(terminal.EndpointCharge) != 1 {
				t.Fatalf("charge at the old address: got %d %+v; %s", status, tx, oldDoor.summary())
			}

			// The terminal moves: the old address is gone, the new one is
			// advertised.
			withdraw()
			oldDoor.shut()
			moved := time.Now()
			lantest.AdvertiseLoopback(t, "lane", svc, serial, "127.0.0.2", newDoor.port())

			second := uuid.NewString()
			if !goodbye {
				// The daemon does not know yet: the old address refuses,
				// nothing is sent, and the POS is told to retry.
				status, tx := api.charge(t, second)
				if status != http.StatusServiceUnavailable || tx.Error == nil || tx.Error.Code != "terminal_unreachable" {
					t.Fatalf("charge at the vanished address: got %d %+v, want 503 terminal_unreachable", status, tx)
				}
			}
			followed := rtWaitFor(t, "daemon follows to the new address", routingTimeout, func() bool {
				a, up := td.rtLAN()
				return a == newDoor.addr && up
			})
			t.Logf("FIGURE terminal moved, %s: re-advertisement to the daemon using the new address: %v", name, followed.Sub(moved))

			status, tx := api.charge(t, second)
			if status != http.StatusOK || tx.Status != "approved" || tx.Route != "lan" {
				t.Fatalf("charge after the move: got %d %+v, want approved over lan", status, tx)
			}
			if n := newDoor.count(terminal.EndpointCharge); n != 1 {
				t.Errorf("charges at the new address: got %d, want 1; %s", n, newDoor.summary())
			}
			if n := oldDoor.count(terminal.EndpointCharge); n != 1 {
				t.Errorf("charges at the old address: got %d, want 1 (the first); %s", n, oldDoor.summary())
			}
			rtCheckLedger(t, td.Sim, first, second)
			if v := api.terminal(t); v.LAN.Address != newDoor.addr || !v.LAN.Up {
				t.Errorf("GET /v1/terminals: got %+v, want the new address, up", v.LAN)
			}
		})
	}
}

// TestRoutingFailoverAndFailback: one terminal reachable two ways (one
// simulator behind a LAN door and a "cloud" door at cloud.base_url). The LAN
// door shuts (connection refused): the next charge goes over the cloud, the
// charge after it straight to the cloud, no charge is taken twice; the LAN
// door opens again: the probe (discovery.probe_interval, default 2 s) fails
// back, and the next charge goes over the LAN. Timeouts are the defaults,
// so the figures are what a store would see.
func TestRoutingFailoverAndFailback(t *testing.T) {
	serial, svc := lantest.Serial(t), lantest.Service(t)
	cloudLn := rtListen(t, "127.0.0.1:0")
	td, api := rtStartDaemon(t, serial, func(c *config.Config) {
		c.Discovery.Service = svc
		rtWithCloud(c, cloudLn.Addr().String())
	})
	lanDoor := rtOpenDoor(t, "lan", td.Sim, rtListen(t, "127.0.0.1:0"))
	cloudDoor := rtOpenDoor(t, "cloud", td.Sim, cloudLn)
	lantest.AdvertiseLoopback(t, "lane", svc, serial, "127.0.0.1", lanDoor.port())
	rtWaitFor(t, "discovery", routingTimeout, func() bool { a, _ := td.rtLAN(); return a == lanDoor.addr })

	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	if status, tx := api.charge(t, ids[0]); status != http.StatusOK || tx.Route != "lan" {
		t.Fatalf("first charge: got %d %+v, want approved over lan", status, tx)
	}

	lanDoor.shut()
	lost := time.Now()
	status, tx := api.charge(t, ids[1])
	if status != http.StatusOK || tx.Status != "approved" || tx.Route != "cloud" || tx.routes() != "lan cloud cloud" {
		t.Fatalf("charge after LAN loss: got %d %+v, want approved over cloud, events lan → cloud", status, tx)
	}
	t.Logf("FIGURE LAN loss (connection refused) to the next charge arriving on the cloud: %v (answered after %v)",
		cloudDoor.arrivedAt(terminal.EndpointCharge).Sub(lost), time.Since(lost))
	v := api.terminal(t)
	if v.Route != "cloud" || v.LAN.Up || v.Cloud.LastRoundTripMS == nil || !strings.Contains(v.LastError, "refused") {
		t.Errorf("GET /v1/terminals after failover: got %+v, want cloud in use, LAN down, a cloud round trip, the refusal", v)
	}

	// While the LAN is down, a new charge goes straight to the cloud.
	if status, tx := api.charge(t, ids[2]); status != http.StatusOK || tx.Route != "cloud" || tx.routes() != "cloud cloud" {
		t.Fatalf("charge with the LAN down: got %d %+v, want approved over cloud only", status, tx)
	}

	lanDoor.reopen(t)
	back := time.Now()
	up := rtWaitFor(t, "failback", routingTimeout, func() bool { _, up := td.rtLAN(); return up })
	status, tx = api.charge(t, ids[3])
	if status != http.StatusOK || tx.Route != "lan" || tx.routes() != "lan lan" {
		t.Fatalf("charge after the LAN came back: got %d %+v, want approved over lan", status, tx)
	}
	t.Logf("FIGURE fail back, refused case (LAN back → probe marks it up): %v; → next charge answered over LAN: %v (probe_interval %v)",
		up.Sub(back), time.Since(back), td.Cfg.Discovery.ProbeInterval)
	if st := td.d.gateway.Status()[0]; st.LANProbedAt.IsZero() || st.LANProbeRoundTrip <= 0 {
		t.Errorf("gateway status: got probed at %v, probe round trip %v; want the probe that failed back", st.LANProbedAt, st.LANProbeRoundTrip)
	}

	if got := [2]int{lanDoor.count(terminal.EndpointCharge), cloudDoor.count(terminal.EndpointCharge)}; got != [2]int{2, 2} {
		t.Errorf("charges by door: got lan %d, cloud %d; want 2 and 2", got[0], got[1])
	}
	rtCheckLedger(t, td.Sim, ids...)
	if v := api.terminal(t); v.Route != "lan" || !v.LAN.Up || v.LAN.LastRoundTripMS == nil || v.Cloud.LastRoundTripMS == nil {
		t.Errorf("GET /v1/terminals after failback: got %+v, want lan in use and up, a round trip on each route", v)
	}
}

// TestRoutingUnknownOutcomeNotResentOnCloud: the terminal takes a charge on
// the LAN and never answers (fault "hang"); the daemon cuts it at
// timeouts.response. Its outcome is unknown, so it is not re-sent over the
// cloud (no payment request ever reaches the cloud door), the LAN stays up
// (it did connect), and recovery settles the charge from the terminal's
// history: approved, taken once.
func TestRoutingUnknownOutcomeNotResentOnCloud(t *testing.T) {
	serial, svc := lantest.Serial(t), lantest.Service(t)
	cloudLn := rtListen(t, "127.0.0.1:0")
	td, api := rtStartDaemon(t, serial, func(c *config.Config) {
		c.Discovery.Service = svc
		c.Timeouts.Response = 5 * time.Second // the shortest Validate allows
		rtWithCloud(c, cloudLn.Addr().String())
	})
	lanDoor := rtOpenDoor(t, "lan", td.Sim, rtListen(t, "127.0.0.1:0"))
	cloudDoor := rtOpenDoor(t, "cloud", td.Sim, cloudLn)
	lantest.AdvertiseLoopback(t, "lane", svc, serial, "127.0.0.1", lanDoor.port())
	rtWaitFor(t, "discovery", routingTimeout, func() bool { a, _ := td.rtLAN(); return a == lanDoor.addr })

	if err := td.Sim.ArmFault(sim.Fault{Mode: sim.FaultHang, Count: 1, Endpoints: []string{"charge"}}); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	status, tx := api.charge(t, id)
	if status != http.StatusGatewayTimeout || tx.Error == nil || tx.Error.Code != "outcome_unknown" {
		t.Fatalf("hung charge: got %d %+v, want 504 outcome_unknown", status, tx)
	}
	if n := cloudDoor.payments(); n != 0 {
		t.Fatalf("payment requests on the cloud after an unknown outcome: got %d, want 0; %s", n, cloudDoor.summary())
	}

	settled := api.transaction(t, id, 60*time.Second)
	if settled.Status != "approved" {
		t.Fatalf("after recovery: got %+v, want approved (found in the terminal's history)", settled)
	}
	if r := settled.routes(); strings.Contains(r, "cloud") {
		t.Errorf("journal routes: got %q, want lan only", r)
	}
	if n := cloudDoor.payments(); n != 0 {
		t.Errorf("payment requests on the cloud after recovery: got %d, want 0; %s", n, cloudDoor.summary())
	}
	if n := lanDoor.count(terminal.EndpointCharge); n != 1 {
		t.Errorf("charges on the LAN: got %d, want 1; %s", n, lanDoor.summary())
	}
	rtCheckLedger(t, td.Sim, id)
	if _, up := td.rtLAN(); !up {
		t.Error("LAN marked down after a request it connected for, want up")
	}
	t.Logf("cloud door after the hung charge and its recovery: %s", cloudDoor.summary())
}
