package lan

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests send real DNS-SD packets between two network namespaces joined
// by a veth pair, created and deleted by the test itself: nothing is sent on
// the host's own interfaces. They need root and iproute2; the avahi test also
// needs avahi-daemon, avahi-utils and dbus (Debian:
// apt-get install -y --no-install-recommends iproute2 avahi-daemon avahi-utils dbus).

// netnsPrefix starts the name of every namespace these tests create; the
// creating process's PID follows, so leftovers of a killed run can be found.
const netnsPrefix = "pbl-"

// netnsPair is two fresh network namespaces joined by a veth pair.
type netnsPair struct {
	a, b         string // namespace names
	vethA, vethB string // the veth ends, one in each
	ipA, ipB     string // their IPv4 addresses (10.250.0.0/24)
}

func requireNetns(t *testing.T) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("skipped: creating network namespaces needs root (euid is %d)", euid)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipped: the ip command (iproute2) is not installed: %v", err)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetnsPair creates the namespaces and the veth pair, with cleanup that
// deletes them (and so the veth) even when the test fails. Helpers started
// later are killed first: cleanups run last-in, first-out.
func newNetnsPair(t *testing.T) netnsPair {
	t.Helper()
	sweepStaleNetns(t)
	id := randHex(t, 3)
	base := fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), id)
	p := netnsPair{
		a: base + "-a", b: base + "-b",
		vethA: "pbl" + id + "a", vethB: "pbl" + id + "b",
		ipA: "10.250.0.1", ipB: "10.250.0.2",
	}
	for _, ns := range []string{p.a, p.b} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// Created inside a, its peer moved straight into b: the host namespace
	// is never touched (tooling.md, mDNS c).
	ip(t, "-n", p.a, "link", "add", p.vethA, "type", "veth", "peer", "name", p.vethB, "netns", p.b)
	ip(t, "-n", p.a, "addr", "add", p.ipA+"/24", "dev", p.vethA)
	ip(t, "-n", p.b, "addr", "add", p.ipB+"/24", "dev", p.vethB)
	for _, x := range []struct{ ns, veth string }{{p.a, p.vethA}, {p.b, p.vethB}} {
		ip(t, "-n", x.ns, "link", "set", "lo", "up")
		ip(t, "-n", x.ns, "link", "set", x.veth, "up")
	}
	return p
}

// sweepStaleNetns deletes namespaces left by earlier test processes that
// died before their cleanup ran (SIGKILL, a crash).
func sweepStaleNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("deleted namespace %s left by dead process %d", name, pid)
		}
	}
}

func stampTime(t *testing.T, js string) time.Time {
	t.Helper()
	var s stamp
	if err := json.Unmarshal([]byte(js), &s); err != nil || s.UnixNano == 0 {
		t.Fatalf("helper line %q: %v", js, err)
	}
	return time.Unix(0, s.UnixNano)
}

func parseFound(t *testing.T, js string) (foundLine, time.Time) {
	t.Helper()
	var f foundLine
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatalf("helper FOUND line %q: %v", js, err)
	}
	return f, time.Unix(0, f.UnixNano)
}

func parseDiscovered(t *testing.T, js string) discoveredLine {
	t.Helper()
	var d discoveredLine
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("helper DISCOVERED line %q: %v", js, err)
	}
	return d
}

// TestNetnsRegisterFoundByBrowser: a plain zeroconf.Register in one namespace
// (the host name and the veth's addresses, as a real device would advertise)
// is found by the Browser in the other, on its default interfaces.
func TestNetnsRegisterFoundByBrowser(t *testing.T) {
	requireNetns(t)
	p := newNetnsPair(t)
	svc, serial := testService(t), testSerial(t)
	env := []string{"LAN_SERVICE=" + svc, "LAN_SERIAL=" + serial, "LAN_INSTANCE=lane-netns", "LAN_PORT=6868"}

	browser := startHelper(t, p.b, "browse", env...)
	browser.expect(t, "BROWSING", findTimeout)
	registrar := startHelper(t, p.a, "register", env...)
	registered := stampTime(t, registrar.expect(t, "REGISTERED", findTimeout))
	f, found := parseFound(t, browser.expect(t, "FOUND", findTimeout+5*time.Second))
	t.Logf("netns veth, plain Register: advertisement to discovery by the running Browser: %v", found.Sub(registered))

	want := p.ipA + ":6868"
	if f.Update.Address != want || f.Update.Name != "lane1" || f.Update.Source != SourceDiscovered {
		t.Errorf("update: got %+v, want lane1 discovered at %s", f.Update, want)
	}
	if f.Update.Found == nil || f.Update.Found.Serial != serial || f.Update.Found.Instance != "lane-netns" || f.Update.Found.Host == "" {
		t.Errorf("update.Found: got %+v, want serial %s, instance lane-netns and a host name", f.Update.Found, serial)
	}

	// A one-shot Discover started after the advertisement.
	d := parseDiscovered(t, startHelper(t, p.b, "discover", env...).expect(t, "DISCOVERED", findTimeout+5*time.Second))
	if d.Err != "" || len(d.Found) != 1 || d.Found[0].Address() != want || d.Found[0].Serial != serial {
		t.Fatalf("Discover in %s: got %+v, want %s at %s", p.b, d, serial, want)
	}
	t.Logf("netns veth, plain Register: Discover started after the advertisement found it in %v", d.Elapsed)
}

// TestNetnsAvahiFoundByBrowser: a responder we did not write. avahi-daemon
// (with a private D-Bus system bus) runs in one namespace and publishes the
// service with avahi-publish-service; the Browser in the other namespace
// finds it, with its IPv4 address (tooling.md, mDNS gotcha 1).
func TestNetnsAvahiFoundByBrowser(t *testing.T) {
	requireNetns(t)
	for _, cmd := range []string{"avahi-daemon", "avahi-publish-service", "dbus-daemon"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("skipped: %s is not installed (apt-get install avahi-daemon avahi-utils dbus): %v", cmd, err)
		}
	}
	p := newNetnsPair(t)
	svc, serial := testService(t), testSerial(t)
	id := randHex(t, 3)
	hostName := "pbt-avahi-" + id
	instance := "Lane avahi " + id

	// avahi-daemon refuses to start without a system bus, and
	// avahi-publish-service talks to it over D-Bus (tooling.md, avahi
	// setup). A private bus on a socket in the test's directory.
	dir := t.TempDir()
	sock := filepath.Join(dir, "system_bus_socket")
	busConf := filepath.Join(dir, "dbus-system.conf")
	writeFile(t, busConf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	bus := startProc(t, "dbus-daemon", "", nil, "dbus-daemon", "--config-file="+busConf, "--nofork", "--print-address")
	bus.waitLine(t, "its address", findTimeout, func(l string) bool { return strings.HasPrefix(l, "unix:path="+sock) })
	busEnv := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sock}

	avahiConf := filepath.Join(dir, "avahi-daemon.conf")
	writeFile(t, avahiConf, `[server]
host-name=`+hostName+`
allow-interfaces=`+p.vethA+`
use-ipv4=yes
use-ipv6=yes
enable-dbus=yes

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes

[reflector]
enable-reflector=no
`)
	avahi := startProc(t, "avahi-daemon", p.a, busEnv,
		"avahi-daemon", "-f", avahiConf, "--no-drop-root", "--no-chroot", "--no-rlimits", "--debug")
	avahi.waitLine(t, "Server startup complete", findTimeout, func(l string) bool {
		return strings.Contains(l, "Server startup complete")
	})

	env := []string{"LAN_SERVICE=" + svc, "LAN_SERIAL=" + serial, "LAN_IFACE=" + p.vethB}
	browser := startHelper(t, p.b, "browse", env...)
	browser.expect(t, "BROWSING", findTimeout)

	published := time.Now()
	pub := startProc(t, "avahi-publish-service", p.a, busEnv,
		"avahi-publish-service", "-s", instance, svc, "6868", "txtv=1", SerialKey+"="+serial)
	_, established := pub.waitLine(t, "Established", findTimeout, func(l string) bool {
		return strings.Contains(l, "Established under name")
	})
	f, found := parseFound(t, browser.expect(t, "FOUND", findTimeout+5*time.Second))
	t.Logf("netns veth, avahi: avahi-publish-service start to discovery by the running Browser: %v (%v after avahi said Established; that line is read by this test, so it may come late)",
		found.Sub(published), found.Sub(established))

	want := p.ipA + ":6868"
	if f.Update.Address != want || f.Update.Source != SourceDiscovered {
		t.Errorf("update: got %+v, want discovered at %s", f.Update, want)
	}
	if g := f.Update.Found; g == nil || g.Host != hostName+".local." || g.Instance != instance || g.Serial != serial || g.Port != 6868 {
		t.Errorf("update.Found: got %+v, want host %q instance %q serial %q port 6868", g, hostName+".local.", instance, serial)
	}

	// A one-shot Discover started after the advertisement. avahi rate-limits
	// answers to 1 per record per second (RFC 6762), so a query right after
	// the browser's may go unanswered until zeroconf asks again.
	d := parseDiscovered(t, startHelper(t, p.b, "discover", env...).expect(t, "DISCOVERED", findTimeout+5*time.Second))
	if d.Err != "" || len(d.Found) != 1 || d.Found[0].Address() != want || d.Found[0].Serial != serial {
		t.Fatalf("Discover in %s: got %+v, want %s at %s", p.b, d, serial, want)
	}
	t.Logf("netns veth, avahi: Discover started after the advertisement found it in %v", d.Elapsed)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
