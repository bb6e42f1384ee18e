package lantest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
)

// Proc is a running child process whose output lines (stdout and stderr
// together) are kept for WaitLine and for failure messages. It is killed at
// the end of the test that started it. Its methods are safe for concurrent
// use.
type Proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu     sync.Mutex
	lines  []string
	ended  bool
	signal chan struct{}
	next   int // first line WaitLine has not looked at
}

// Start runs argv, with env added to this process's environment, inside the
// network namespace netns ("" for the current one, else through
// "ip netns exec"). It is killed at cleanup; cleanups run last in, first
// out, so a process started after a namespace was created is killed before
// the namespace is deleted.
func Start(t *testing.T, name, netns string, env []string, argv ...string) *Proc {
	t.Helper()
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{}), signal: make(chan struct{}, 1)}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			p.poke()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		<-scanned
		p.mu.Lock()
		p.ended = true
		p.mu.Unlock()
		p.poke()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

func (p *Proc) poke() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// Kill ends the process at once (SIGKILL: a registrar sends no goodbye) and
// waits for it. Calling it again does nothing.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// CloseStdin closes the process's standard input (helpers take it as the
// signal to stop cleanly).
func (p *Proc) CloseStdin() { p.stdin.Close() }

// Output returns every line the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitLine returns the first line, after those already looked at, for which
// match is true, and the time it was read. It fails the test when the
// process ends first or nothing matches within timeout.
func (p *Proc) WaitLine(t *testing.T, what string, timeout time.Duration, match func(string) bool) (string, time.Time) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for p.next < len(p.lines) {
			line := p.lines[p.next]
			p.next++
			if match(line) {
				p.mu.Unlock()
				return line, time.Now()
			}
		}
		ended := p.ended
		p.mu.Unlock()
		if ended {
			t.Fatalf("%s ended before printing %s; its output:\n%s", p.name, what, p.Output())
		}
		select {
		case <-p.signal:
		case <-timer.C:
			t.Fatalf("%s did not print %s within %v; its output:\n%s", p.name, what, timeout, p.Output())
		}
	}
}

// The helper-process pattern: a test re-runs its own binary (optionally
// under "ip netns exec NS") with -test.run selecting the package's helper
// function and the role in HelperRoleEnv; the helper prints protocol lines
// starting with helperPrefix (Say) that the parent reads with Expect.
const (
	// HelperRoleEnv names the helper's role; empty in a normal test run.
	HelperRoleEnv = "POSBRIDGE_TEST_HELPER"
	helperPrefix  = "testhelper: "
)

// HelperRole returns the role this process runs as a helper, "" when it is
// a normal test run.
func HelperRole() string { return os.Getenv(HelperRoleEnv) }

// StartHelper runs this test binary as a helper in role, inside netns (""
// for the current one): only the test function named by testFunc runs
// (the package's TestHelperProcess, which dispatches on HelperRole).
func StartHelper(t *testing.T, testFunc, netns, role string, env ...string) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, "helper "+role+" in netns "+strconv.Quote(netns), netns,
		append([]string{HelperRoleEnv + "=" + role}, env...),
		exe, "-test.run=^"+testFunc+"$", "-test.timeout=300s", "-test.v=false")
}

// Expect waits for the helper line "<word> <json>" and returns the JSON.
func (p *Proc) Expect(t *testing.T, word string, timeout time.Duration) string {
	t.Helper()
	line, _ := p.WaitLine(t, word, timeout, func(l string) bool {
		return strings.HasPrefix(l, helperPrefix+word+" ")
	})
	return strings.TrimPrefix(line, helperPrefix+word+" ")
}

// Say prints one protocol line from a helper process: word, then v as JSON.
func Say(word string, v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("%s%s %s\n", helperPrefix, word, b)
}

// Stamp is a wall-clock time printed by a helper, in Unix nanoseconds. Every
// namespace shares the host clock, so stamps of two processes compare.
type Stamp struct {
	UnixNano int64 `json:"unix_nano"`
}

// Now returns the current time as a Stamp.
func Now() Stamp { return Stamp{time.Now().UnixNano()} }

// Time returns s as a time.Time.
func (s Stamp) Time() time.Time { return time.Unix(0, s.UnixNano) }

// ParseStamp decodes a Stamp printed by Say, failing the test otherwise.
func ParseStamp(t *testing.T, js string) time.Time {
	t.Helper()
	var s Stamp
	if err := json.Unmarshal([]byte(js), &s); err != nil || s.UnixNano == 0 {
		t.Fatalf("helper line %q: %v", js, err)
	}
	return s.Time()
}

// Environment of the advertising roles RunAdvertiser serves.
const (
	EnvInstance = "LANTEST_INSTANCE"
	EnvService  = "LANTEST_SERVICE"
	EnvSerial   = "LANTEST_SERIAL"
	EnvPort     = "LANTEST_PORT"
	EnvIface    = "LANTEST_IFACE"
	EnvIP       = "LANTEST_IP"
	EnvHost     = "LANTEST_HOST"
)

// Advertiser roles served by RunAdvertiser.
const (
	// RoleRegister: a plain zeroconf.Register, as a real device would
	// advertise (the host's name and the addresses of every multicast
	// interface: the veth in a namespace). Env: instance, service, serial,
	// port.
	RoleRegister = "register"
	// RoleAdvertiseProxy: zeroconf.RegisterProxy on one named interface with
	// one address. Env: the above plus iface, ip and host.
	RoleAdvertiseProxy = "advertise-proxy"
)

// AdvertiserEnv returns the environment of an advertiser role.
func AdvertiserEnv(instance, service, serial string, port int) []string {
	return []string{EnvInstance + "=" + instance, EnvService + "=" + service,
		EnvSerial + "=" + serial, EnvPort + "=" + strconv.Itoa(port)}
}

// RunAdvertiser runs role when it is one of the advertiser roles and
// reports whether it was: it registers, says "REGISTERED <Stamp>", and
// keeps the registration until its standard input closes (then it sends a
// goodbye) or it is killed (then it sends none). A registration that fails
// exits the process with status 3.
func RunAdvertiser(role string) bool {
	if role != RoleRegister && role != RoleAdvertiseProxy {
		return false
	}
	env := os.Getenv
	port, _ := strconv.Atoi(env(EnvPort))
	txt := []string{"txtv=1", SerialKey + "=" + env(EnvSerial)}
	var (
		s   *zeroconf.Server
		err error
	)
	if role == RoleRegister {
		s, err = zeroconf.Register(env(EnvInstance), env(EnvService), "local.", port, txt, nil)
	} else {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(env(EnvIface)); err == nil {
			s, err = zeroconf.RegisterProxy(env(EnvInstance), env(EnvService), "local.", port, env(EnvHost),
				[]string{env(EnvIP)}, txt, []net.Interface{*ifi})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		os.Exit(3)
	}
	Say("REGISTERED", Now())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or kills us
	s.Shutdown()
	return true
}
