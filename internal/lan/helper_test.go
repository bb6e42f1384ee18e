package lan

import (
	"bufio"
	"bytes"
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

// helper is a running helper process.
type helper struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	out   bytes.Buffer // everything it printed, for failure messages
	done  chan struct{}
}

// startHelper runs this test binary in role, with env added, inside the
// network namespace netns ("" for the current one). The process is killed
// at cleanup.
func startHelper(t *testing.T, netns, role string, env ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{exe, "-test.run=^TestHelperProcess$", "-test.timeout=120s"}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), helperRoleEnv+"="+role), env...)
	h := &helper{name: role + "@" + netns, cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = &lockedWriter{mu: &h.mu, w: &h.out}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", h.name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			h.mu.Lock()
			h.out.WriteString(line + "\n")
			h.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, helperPrefix); ok {
				h.lines <- rest
			}
		}
		close(h.lines)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(h.done)
	}()
	t.Cleanup(h.kill)
	return h
}

// kill ends the helper at once (SIGKILL: a registrar sends no goodbye) and
// waits for it.
func (h *helper) kill() {
	h.cmd.Process.Kill()
	<-h.done
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// expect waits for a line "<word> <rest>" from the helper and returns rest.
// Other lines are skipped. It fails the test when the helper ends or is
// silent for longer than timeout.
func (h *helper) expect(t *testing.T, word string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper %s ended before printing %s; its output:\n%s", h.name, word, h.output())
			}
			w, rest, _ := strings.Cut(line, " ")
			if w == word {
				return rest
			}
		case <-timer.C:
			t.Fatalf("helper %s did not print %s within %v; its output:\n%s", h.name, word, timeout, h.output())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
