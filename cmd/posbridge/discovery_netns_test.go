package main

// Discovery and routing between two network namespaces joined by a veth
// pair, created and deleted by the tests themselves (internal/lan/lantest):
// nothing is sent on a host interface. The terminal side (namespace A) has
// the simulator's LAN listener, opened from this process inside A so that
// the test reads its ledger directly, and the DNS-SD responder: a plain
// zeroconf registration, or avahi-daemon with avahi-publish-service (a
// responder we did not write). The daemon runs the real `posbridge serve`
// in namespace B, in a child process (this test binary re-executed under
// "ip netns exec"), and is called through sockets opened inside B.
//
// They need root and iproute2, and avahi-daemon, avahi-utils and dbus for
// the avahi test; they skip, saying why, where the machine cannot.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/lan/lantest"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// routingHelper is the test function helper processes of this package run.
const routingHelper = "TestRoutingHelperProcess"

// Environment of the "serve" helper.
const (
	routingConfigEnv = "POSBRIDGE_ROUTING_TEST_CONFIG"
	routingCredEnv   = "POSBRIDGE_ROUTING_TEST_CREDENTIAL"
)

// TestRoutingHelperProcess is not a test: it is the body of the helper
// processes other tests start (lantest.StartHelper), selected by
// lantest.HelperRoleEnv: lantest's advertiser roles, and "serve", which runs
// `posbridge serve --config $POSBRIDGE_ROUTING_TEST_CONFIG` until its
// standard input closes.
func TestRoutingHelperProcess(t *testing.T) {
	role := lantest.HelperRole()
	if role == "" {
		t.Skip("helper process body; runs only when started by another test")
	}
	if lantest.RunAdvertiser(role) {
		return
	}
	switch role {
	case "serve":
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
		os.Exit(run(ctx, []string{"serve", "--config", os.Getenv(routingConfigEnv)}, os.Stdout, os.Stderr))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role", role)
		os.Exit(3)
	}
}

// rtNetnsRig is a terminal in namespace A and a daemon in namespace B.
type rtNetnsRig struct {
	pair        lantest.NetnsPair
	serial, svc string
	sim         *sim.Sim
	lanDoor     *rtDoor // in A, on the veth address
	cloudDoor   *rtDoor // in B, on its loopback; nil without cloud
	daemon      *lantest.Proc
	api         *rtAPI
}

const rtNetnsSecret = "netns-test-credential-51c2"

// rtNewNetnsRig creates the namespaces, the simulator (LAN door in A; with
// cloud, a cloud door on B's loopback at cloud.base_url) and starts the
// daemon in B with discovery on B's veth, no lan_address and the default
// timeouts, and waits until it is ready.
func rtNewNetnsRig(t *testing.T, cloud bool) *rtNetnsRig {
	t.Helper()
	lantest.RequireNetns(t)
	r := &rtNetnsRig{pair: lantest.NewNetnsPair(t), serial: lantest.Serial(t), svc: lantest.Service(t)}
	s, err := sim.New(sim.Config{
		Serial: r.serial, Auth: hmac.ModeHMAC, Credential: hmac.Credential{Secret: rtNetnsSecret, Serial: r.serial},
		Currency: money.PEN, ThinkTime: 50 * time.Millisecond, VoidMinWait: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r.sim = s
	r.lanDoor = rtOpenDoor(t, "lan", s, lantest.ListenInNetns(t, r.pair.A, r.pair.IPA+":0"))
	cloudYAML := "cloud:\n  environment: \"off\"\n"
	cloudFlag := "false"
	if cloud {
		r.cloudDoor = rtOpenDoor(t, "cloud", s, lantest.ListenInNetns(t, r.pair.B, "127.0.0.1:0"))
		cloudYAML = "cloud:\n  environment: uat\n  base_url: http://" + r.cloudDoor.addr + "/terminal/v1/{serial}\n"
		cloudFlag = "true"
	}
	dir := t.TempDir()
	cfg := "listen: 127.0.0.1:0\n" +
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"log:\n  level: debug\n  format: json\n" +
		"terminals:\n" +
		"  - name: lane1\n" +
		"    serial: \"" + r.serial + "\"\n" +
		"    auth: hmac\n" +
		"    credential_env: " + routingCredEnv + "\n" +
		"    currency: PEN\n" +
		"    cloud: " + cloudFlag + "\n" +
		"discovery:\n  enabled: true\n  service: " + r.svc + "\n  interfaces: [" + r.pair.VethB + "]\n" +
		cloudYAML +
		"timeouts:\n  response: 10s\n"
	path := filepath.Join(dir, "posbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.daemon = lantest.StartHelper(t, routingHelper, r.pair.B, "serve",
		routingConfigEnv+"="+path, routingCredEnv+"="+rtNetnsSecret)
	var ready struct{ Listen string }
	r.logLine(t, "posbridge ready", &ready, func() bool { return ready.Listen != "" })
	r.api = &rtAPI{base: "http://" + ready.Listen, http: &http.Client{Timeout: 90 * time.Second,
		Transport: &http.Transport{DialContext: lantest.DialInNetns(r.pair.B), DisableKeepAlives: true}}}
	return r
}

// logLine waits for the daemon's next JSON log line with message msg that
// decodes into v and satisfies ok, and returns when it was read.
func (r *rtNetnsRig) logLine(t *testing.T, msg string, v any, ok func() bool) time.Time {
	t.Helper()
	_, at := r.daemon.WaitLine(t, "log "+msg, routingTimeout, func(l string) bool {
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal([]byte(l), &m) != nil || m.Message != msg {
			return false
		}
		return json.Unmarshal([]byte(l), v) == nil && ok()
	})
	return at
}

// discovered waits until the daemon logs that discovery gave it address.
func (r *rtNetnsRig) discovered(t *testing.T, address string) time.Time {
	t.Helper()
	var u struct{ Address, Source string }
	return r.logLine(t, "lan address", &u, func() bool { return u.Address == address && u.Source == "discovered" })
}

func (r *rtNetnsRig) lanAddress() string { return r.lanDoor.addr }

// TestDiscoveryAvahiNetns: avahi-daemon (private D-Bus) in the terminal's
// namespace publishes the simulator's address with avahi-publish-service
// and TXT serial=…; the daemon in the other namespace finds it and a charge
// goes through it.
func TestDiscoveryAvahiNetns(t *testing.T) {
	lantest.RequireNetns(t)
	lantest.RequireAvahi(t)
	r := rtNewNetnsRig(t, false)
	avahi := lantest.StartAvahi(t, r.pair.A, r.pair.VethA)
	_, published, _ := avahi.Publish(t, "Lane avahi "+lantest.RandHex(t, 3), r.svc, r.lanDoor.port(),
		"txtv=1", lantest.SerialKey+"="+r.serial)
	found := r.discovered(t, r.lanAddress())
	t.Logf("FIGURE advertisement to discovery, netns + avahi (avahi-publish-service start → daemon logs the address): %v", found.Sub(published))

	id := uuid.NewString()
	status, tx := r.api.charge(t, id)
	if status != http.StatusOK || tx.Status != "approved" || tx.Route != "lan" {
		t.Fatalf("charge: got %d %+v, want approved over lan", status, tx)
	}
	if n := r.lanDoor.count(terminal.EndpointCharge); n != 1 {
		t.Errorf("charges through the LAN door: got %d, want 1; %s", n, r.lanDoor.summary())
	}
	rtCheckLedger(t, r.sim, id)
	if v := r.api.terminal(t); v.LAN.Address != r.lanAddress() || !v.LAN.Up || v.Route != "lan" {
		t.Errorf("GET /v1/terminals: got %+v, want lan in use at %s", v, r.lanAddress())
	}
}

// TestRoutingBlackholeFailoverNetns: the terminal advertises itself with a
// plain zeroconf registration (a real device's host name and veth address);
// the daemon finds it and charges over the LAN. Then the terminal's link goes
// down, so the LAN silently drops packets: the next charge waits for the LAN
// connect timeout (timeouts.lan_connect, default) and goes over the cloud,
// taken once; the charge after it goes straight to the cloud. The link comes
// back: the probe fails back and the next charge goes over the LAN.
func TestRoutingBlackholeFailoverNetns(t *testing.T) {
	r := rtNewNetnsRig(t, true)
	reg := lantest.StartHelper(t, routingHelper, r.pair.A, lantest.RoleRegister,
		lantest.AdvertiserEnv("lane-netns", r.svc, r.serial, r.lanDoor.port())...)
	registered := lantest.ParseStamp(t, reg.Expect(t, "REGISTERED", lantest.FindTimeout))
	found := r.discovered(t, r.lanAddress())
	t.Logf("FIGURE advertisement to discovery, netns (zeroconf.Register in A → daemon in B logs the address): %v", found.Sub(registered))

	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	if status, tx := r.api.charge(t, ids[0]); status != http.StatusOK || tx.Route != "lan" {
		t.Fatalf("first charge: got %d %+v, want approved over lan", status, tx)
	}

	lantest.IP(t, "-n", r.pair.A, "link", "set", r.pair.VethA, "down")
	lost := time.Now()
	status, tx := r.api.charge(t, ids[1])
	if status != http.StatusOK || tx.Status != "approved" || tx.Route != "cloud" || tx.routes() != "lan cloud cloud" {
		t.Fatalf("charge after the LAN went silent: got %d %+v, want approved over cloud, events lan → cloud", status, tx)
	}
	v := r.api.terminal(t)
	t.Logf("FIGURE LAN loss (link down: packets dropped) to the next charge arriving on the cloud: %v (answered after %v); LAN error: %s",
		r.cloudDoor.arrivedAt(terminal.EndpointCharge).Sub(lost), time.Since(lost), v.LastError)
	if v.Route != "cloud" || v.LAN.Up || v.LastError == "" {
		t.Errorf("GET /v1/terminals after failover: got %+v, want cloud in use, LAN down, its error", v)
	}
	if status, tx := r.api.charge(t, ids[2]); status != http.StatusOK || tx.Route != "cloud" || tx.routes() != "cloud cloud" {
		t.Fatalf("charge with the LAN down: got %d %+v, want approved over cloud only", status, tx)
	}

	lantest.IP(t, "-n", r.pair.A, "link", "set", r.pair.VethA, "up")
	back := time.Now()
	up := rtWaitFor(t, "failback", routingTimeout, func() bool {
		time.Sleep(10 * time.Millisecond) // every poll dials into B on a new thread: go easy
		return r.api.terminal(t).LAN.Up
	})
	status, tx = r.api.charge(t, ids[3])
	if status != http.StatusOK || tx.Route != "lan" || tx.routes() != "lan lan" {
		t.Fatalf("charge after the link came back: got %d %+v, want approved over lan", status, tx)
	}
	t.Logf("FIGURE fail back, netns link case (link up → GET /v1/terminals says LAN up): %v; → next charge answered over LAN: %v",
		up.Sub(back), time.Since(back))

	if got := [2]int{r.lanDoor.count(terminal.EndpointCharge), r.cloudDoor.count(terminal.EndpointCharge)}; got != [2]int{2, 2} {
		t.Errorf("charges by door: got lan %d, cloud %d; want 2 and 2", got[0], got[1])
	}
	rtCheckLedger(t, r.sim, ids...)
}
