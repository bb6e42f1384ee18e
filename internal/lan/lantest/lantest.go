// Package lantest helps tests send real DNS-SD (mDNS) traffic without ever
// touching a host interface: advertisements on loopback, child processes
// (the helper-process pattern, optionally inside a network namespace), pairs
// of network namespaces joined by a veth pair that the test creates and
// deletes itself, sockets opened inside such a namespace from the test
// process, and avahi-daemon with a private D-Bus system bus as a responder
// we did not write (research/tooling.md, "mDNS details").
//
// It is for tests only (it imports testing and fails or skips the calling
// test); nothing in the daemon imports it. Every helper that needs root,
// iproute2 or avahi skips the test with the reason when the machine cannot
// do it.
package lantest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
)

// FindTimeout is a generous limit for anything DNS-SD: nothing asserts
// speed, it only stops a broken test. avahi's 1 s per-record rate limit and
// zeroconf's query backoff make single answers take seconds at worst
// (tooling.md, gotcha 2).
const FindTimeout = 20 * time.Second

// SerialKey is the TXT key that carries a terminal's serial (lan.SerialKey;
// repeated here so that lan's own tests can import this package).
const SerialKey = "serial"

// RandHex returns n random bytes in hex.
func RandHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Service returns a DNS-SD service type nobody else on this machine
// advertises ("_pbt1a2b3c4d._tcp"), so that tests running at the same time,
// in this package or another, cannot interfere.
func Service(tb testing.TB) string { return "_pbt" + RandHex(tb, 4) + "._tcp" }

// Serial returns a random terminal serial ("PBT0A1B2C3D4E").
func Serial(tb testing.TB) string { return "PBT" + strings.ToUpper(RandHex(tb, 5)) }

// Loopback returns the loopback interface, skipping the test when there is
// none that is up.
func Loopback(tb testing.TB) net.Interface {
	tb.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		tb.Fatal(err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi
		}
	}
	tb.Skip("skipped: no loopback interface is up on this machine")
	return net.Interface{}
}

// AdvertiseLoopback registers instance of service on loopback only, at ip
// (a 127.0.0.0/8 address) and port, with the TXT record "txtv=1" and
// "serial=<serial>", as the simulator does: RegisterProxy with the explicit
// lo interface, since plain Register drops loopback addresses (tooling.md,
// mDNS b). It is shut down, with a goodbye, at cleanup unless the returned
// stop function was called first. The host name is derived from ip.
func AdvertiseLoopback(tb testing.TB, instance, service, serial, ip string, port int) (stop func()) {
	tb.Helper()
	lo := Loopback(tb)
	s, err := zeroconf.RegisterProxy(instance, service, "local.", port, "pbt-"+strings.ReplaceAll(ip, ".", "-"),
		[]string{ip}, []string{"txtv=1", SerialKey + "=" + serial}, []net.Interface{lo})
	if err != nil {
		tb.Fatalf("register %s on lo: %v", service, err)
	}
	var once sync.Once
	stop = func() { once.Do(s.Shutdown) }
	tb.Cleanup(stop)
	return stop
}
