package sim_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/sim"
)

// loopback returns the host's loopback interface; DNS-SD tests never touch
// another one (research/tooling.md "mDNS details": RegisterProxy with an
// explicit lo works without root).
func loopback(t *testing.T) net.Interface {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi
		}
	}
	t.Skip("no loopback interface is up")
	return net.Interface{}
}

func TestAdvertiseOnLoopback(t *testing.T) {
	lo := loopback(t)
	serial := fmt.Sprintf("ADV%d", time.Now().UnixNano()%1_000_000) // distinct from concurrent runs
	s, err := sim.New(sim.Config{
		Serial:     serial,
		Credential: hmac.Credential{Secret: testSecret},
		Advertise:  sim.Advertise{Enabled: true, Interfaces: []string{lo.Name}, Instance: "sim-" + serial},
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe("127.0.0.1:0") }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})

	res, err := zeroconf.NewResolver(zeroconf.SelectIfaces([]net.Interface{lo}), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err != nil {
		t.Fatalf("resolver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 16)
	if err := res.Browse(ctx, sim.ServiceType, sim.ServiceDomain, entries); err != nil {
		t.Fatalf("browse: %v", err)
	}
	var found *zeroconf.ServiceEntry
	for found == nil {
		select {
		case e := <-entries:
			if e != nil && slices.Contains(e.Text, "serial="+serial) {
				found = e
			}
		case <-ctx.Done():
			t.Fatalf("no %s instance with TXT serial=%s within 15 s", sim.ServiceType, serial)
		}
	}
	cancel()
	if found.Instance != "sim-"+serial || found.Port == 0 || len(found.AddrIPv4) == 0 || !found.AddrIPv4[0].IsLoopback() {
		t.Fatalf("entry %+v, want instance %q on a loopback address", found, "sim-"+serial)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/_sim/state", found.AddrIPv4[0], found.Port))
	if err != nil {
		t.Fatalf("the advertised address does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("state at the advertised address: %d", resp.StatusCode)
	}
	if err := s.Advertise(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: found.Port}); err == nil {
		t.Error("a second Advertise succeeded, want an error")
	}
}

func TestAdvertiseErrors(t *testing.T) {
	s, err := sim.New(sim.Config{Serial: "S1", Credential: hmac.Credential{Secret: testSecret},
		Advertise: sim.Advertise{Interfaces: []string{"no-such-interface0"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Advertise(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6868}); err == nil {
		t.Error("advertising on a missing interface succeeded")
	}
	if err := s.Advertise(&net.UDPAddr{Port: 5}); err == nil {
		t.Error("advertising a UDP address succeeded")
	}
}
