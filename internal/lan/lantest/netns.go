package lantest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// NetnsPrefix starts the name of every namespace these helpers create; the
// creating process's PID follows, so leftovers of a killed run can be found
// and deleted (see NewNetnsPair).
const NetnsPrefix = "pbl-"

// RequireNetns skips the test, saying why, unless it may create network
// namespaces: root and the ip command (iproute2).
func RequireNetns(t *testing.T) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("skipped: creating network namespaces needs root (euid is %d)", euid)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipped: the ip command (iproute2) is not installed: %v", err)
	}
}

// IP runs the ip command with args and fails the test when it fails.
func IP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// NetnsPair is two fresh network namespaces joined by a veth pair; nothing
// of it lives in the host's namespace.
type NetnsPair struct {
	A, B         string // namespace names
	VethA, VethB string // the veth ends, one in each
	IPA, IPB     string // their IPv4 addresses, in 10.250.0.0/24
}

// NewNetnsPair creates the namespaces (loopback up in both) and the veth
// pair with IPA and IPB, and registers cleanup that deletes them (and so the
// veth) even when the test fails. It first deletes namespaces left by test
// processes that died before their cleanup ran. Call RequireNetns first.
func NewNetnsPair(t *testing.T) NetnsPair {
	t.Helper()
	SweepStaleNetns(t)
	id := RandHex(t, 3)
	base := fmt.Sprintf("%s%d-%s", NetnsPrefix, os.Getpid(), id)
	p := NetnsPair{
		A: base + "-a", B: base + "-b",
		VethA: "pbl" + id + "a", VethB: "pbl" + id + "b",
		IPA: "10.250.0.1", IPB: "10.250.0.2",
	}
	for _, ns := range []string{p.A, p.B} {
		IP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// Created inside A, its peer moved straight into B: the host namespace
	// is never touched (tooling.md, mDNS c).
	IP(t, "-n", p.A, "link", "add", p.VethA, "type", "veth", "peer", "name", p.VethB, "netns", p.B)
	IP(t, "-n", p.A, "addr", "add", p.IPA+"/24", "dev", p.VethA)
	IP(t, "-n", p.B, "addr", "add", p.IPB+"/24", "dev", p.VethB)
	for _, x := range []struct{ ns, veth string }{{p.A, p.VethA}, {p.B, p.VethB}} {
		IP(t, "-n", x.ns, "link", "set", "lo", "up")
		IP(t, "-n", x.ns, "link", "set", x.veth, "up")
	}
	return p
}

// SweepStaleNetns deletes namespaces left by earlier test processes that
// died before their cleanup ran (SIGKILL, a crash). Namespaces of live
// processes, this one included, are left alone.
func SweepStaleNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, NetnsPrefix)
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

// InNetns runs fn on a goroutine whose OS thread has entered the network
// namespace netns (created with "ip netns add"), and returns fn's error.
// Sockets fn opens belong to netns for good, whatever thread uses them
// later. The thread is never given back to the Go runtime: it ends with the
// goroutine, so no other goroutine can ever run in the namespace by mistake.
// Needs root.
func InNetns(netns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open(filepath.Join("/run/netns", netns))
		if err != nil {
			errc <- fmt.Errorf("lantest: namespace %s: %w", netns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("lantest: enter namespace %s: %w", netns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ListenInNetns listens on the TCP address addr inside netns, from this
// process, and closes the listener at cleanup.
func ListenInNetns(t *testing.T, netns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := InNetns(netns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, netns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// DialInNetns returns a dial function (for http.Transport.DialContext)
// whose connections are opened inside netns.
func DialInNetns(netns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNetns(netns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
