package lan

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// The helper-process pattern: a test re-runs its own binary (optionally
// under "ip netns exec NS") with -test.run=^TestHelperProcess$ and the role
// in helperRoleEnv; the helper prints lines starting with helperPrefix.
const (
	helperRoleEnv = "POSBRIDGE_LAN_HELPER"
	helperPrefix  = "lanhelper: "
)

// Generous limits: nothing asserts speed, these only stop a broken test.
const (
	findTimeout = 20 * time.Second
)

// randHex returns n random bytes in hex.
func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testService returns a DNS-SD service type nobody else on this machine
// advertises, so that parallel tests (and the simulator) cannot interfere.
func testService(t testing.TB) string { return "_pbt" + randHex(t, 4) + "._tcp" }

func testSerial(t testing.TB) string { return "PBT" + strings.ToUpper(randHex(t, 5)) }

func loopback(t testing.TB) net.Interface {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi
		}
	}
	t.Skip("no loopback interface that is up on this machine")
	return net.Interface{}
}

// advertise registers a service on loopback only, as the simulator does:
// RegisterProxy with the explicit lo interface and a loopback IP, since plain
// Register drops loopback addresses (tooling.md, mDNS b). It is shut down
// (with a goodbye) at cleanup, unless the test shuts it down first.
func advertise(t testing.TB, instance, service, serial, ip string, port int) *zeroconf.Server {
	t.Helper()
	lo := loopback(t)
	s, err := zeroconf.RegisterProxy(instance, service, "local.", port, "pbt-"+strings.ReplaceAll(ip, ".", "-"),
		[]string{ip}, []string{"txtv=1", SerialKey + "=" + serial}, []net.Interface{lo})
	if err != nil {
		t.Fatalf("register %s on lo: %v", service, err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(s.Shutdown) })
	return s
}

// proc is a running child process whose output lines (stdout and stderr
// together) are kept for waitLine and for failure messages.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu     sync.Mutex
	lines  []string
	ended  bool
	signal chan struct{}
	next   int // first line waitLine has not looked at
}

// startProc runs argv, with env added to this process's environment, inside
// the network namespace netns ("" for the current one). It is killed at
// cleanup.
func startProc(t *testing.T, name, netns string, env []string, argv ...string) *proc {
	t.Helper()
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), signal: make(chan struct{}, 1)}
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
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		<-scanned
		p.mu.Lock()
		p.ended = true
		p.mu.Unlock()
		p.poke()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) poke() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// kill ends the process at once (SIGKILL: a registrar sends no goodbye) and
// waits for it.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine returns the first line, after those already looked at, for which
// match is true, and the time it was read. It fails the test when the
// process ends first or nothing matches within timeout.
func (p *proc) waitLine(t *testing.T, what string, timeout time.Duration, match func(string) bool) (string, time.Time) {
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
			t.Fatalf("%s ended before printing %s; its output:\n%s", p.name, what, p.output())
		}
		select {
		case <-p.signal:
		case <-timer.C:
			t.Fatalf("%s did not print %s within %v; its output:\n%s", p.name, what, timeout, p.output())
		}
	}
}

// startHelper runs this test binary as a helper in role (see
// TestHelperProcess), inside netns ("" for the current one).
func startHelper(t *testing.T, netns, role string, env ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProc(t, "helper "+role+" in netns "+strconv.Quote(netns), netns,
		append([]string{helperRoleEnv + "=" + role}, env...),
		exe, "-test.run=^TestHelperProcess$", "-test.timeout=120s")
}

// expect waits for the helper line "<word> <json>" and returns the JSON.
func (p *proc) expect(t *testing.T, word string, timeout time.Duration) string {
	t.Helper()
	line, _ := p.waitLine(t, word, timeout, func(l string) bool {
		return strings.HasPrefix(l, helperPrefix+word+" ")
	})
	return strings.TrimPrefix(line, helperPrefix+word+" ")
}

// helperSay prints one protocol line from a helper process.
func helperSay(word string, rest any) {
	b, _ := json.Marshal(rest)
	fmt.Printf("%s%s %s\n", helperPrefix, word, b)
}

// stamp is a wall-clock time printed by a helper, in Unix nanoseconds. Every
// namespace shares the host clock, so stamps of two helpers compare.
type stamp struct {
	UnixNano int64 `json:"unix_nano"`
}

type discoveredLine struct {
	Elapsed time.Duration `json:"elapsed"`
	Found   []Found       `json:"found"`
	Err     string        `json:"error,omitempty"`
}

type foundLine struct {
	stamp
	Update Update `json:"update"`
}

// TestHelperProcess is not a test: it is the body of the helper processes
// that other tests start (see startHelper), selected by POSBRIDGE_LAN_HELPER.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperRoleEnv)
	if role == "" {
		t.Skip("helper process body; runs only when started by another test")
	}
	env := func(k string) string { return os.Getenv("LAN_" + k) }
	port, _ := strconv.Atoi(env("PORT"))
	txt := []string{"txtv=1", SerialKey + "=" + env("SERIAL")}
	switch role {
	case "register":
		// A plain Register, as a real device would: the host's name and
		// the addresses of every multicast interface (the veth here).
		s, err := zeroconf.Register(env("INSTANCE"), env("SERVICE"), "local.", port, txt, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "register:", err)
			os.Exit(3)
		}
		helperSay("REGISTERED", stamp{time.Now().UnixNano()})
		io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or kills us
		s.Shutdown()
	case "advertise-proxy":
		ifi, err := net.InterfaceByName(env("IFACE"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "interface:", err)
			os.Exit(3)
		}
		s, err := zeroconf.RegisterProxy(env("INSTANCE"), env("SERVICE"), "local.", port, env("HOST"),
			[]string{env("IP")}, txt, []net.Interface{*ifi})
		if err != nil {
			fmt.Fprintln(os.Stderr, "register:", err)
			os.Exit(3)
		}
		helperSay("REGISTERED", stamp{time.Now().UnixNano()})
		io.Copy(io.Discard, os.Stdin)
		s.Shutdown()
	case "browse":
		var ifaces []string
		if env("IFACE") != "" {
			ifaces = []string{env("IFACE")}
		}
		found := make(chan Update, 1)
		b := New(Options{
			Services:   []string{env("SERVICE")},
			Interfaces: ifaces,
			Interval:   2 * time.Second,
			Terminals:  []Terminal{{Name: "lane1", Serial: env("SERIAL")}},
			OnUpdate: func(u Update) {
				select {
				case found <- u:
				default:
				}
			},
		})
		if err := b.Open(); err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			os.Exit(3)
		}
		helperSay("BROWSING", stamp{time.Now().UnixNano()})
		select {
		case u := <-found:
			helperSay("FOUND", foundLine{stamp{time.Now().UnixNano()}, u})
		case <-time.After(findTimeout):
			fmt.Fprintln(os.Stderr, "nothing found; last browse error:", b.Err())
		}
		b.Close()
	case "discover":
		ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
		defer cancel()
		var ifaces []string
		if env("IFACE") != "" {
			ifaces = []string{env("IFACE")}
		}
		start := time.Now()
		fs, err := Discover(ctx, DiscoverOptions{Services: []string{env("SERVICE")}, Interfaces: ifaces, Want: []string{env("SERIAL")}})
		line := discoveredLine{Elapsed: time.Since(start), Found: fs}
		if err != nil {
			line.Err = err.Error()
		}
		helperSay("DISCOVERED", line)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role", role)
		os.Exit(3)
	}
}
