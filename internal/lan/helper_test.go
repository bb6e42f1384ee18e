package lan

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/lan/lantest"
)

// Shorthands for the shared helpers in lantest (loopback advertisements,
// child processes, namespaces, avahi).
const findTimeout = lantest.FindTimeout

func testService(tb testing.TB) string { return lantest.Service(tb) }
func testSerial(tb testing.TB) string  { return lantest.Serial(tb) }

// advertise registers a service on loopback only, as the simulator does
// (lantest.AdvertiseLoopback); the returned function withdraws it with a
// goodbye.
func advertise(tb testing.TB, instance, service, serial, ip string, port int) (stop func()) {
	tb.Helper()
	return lantest.AdvertiseLoopback(tb, instance, service, serial, ip, port)
}

// startHelper runs this test binary as a helper in role (see
// TestHelperProcess), inside netns ("" for the current one).
func startHelper(t *testing.T, netns, role string, env ...string) *lantest.Proc {
	t.Helper()
	return lantest.StartHelper(t, "TestHelperProcess", netns, role, env...)
}

type discoveredLine struct {
	Elapsed time.Duration `json:"elapsed"`
	Found   []Found       `json:"found"`
	Err     string        `json:"error,omitempty"`
}

type foundLine struct {
	lantest.Stamp
	Update Update `json:"update"`
}

// TestHelperProcess is not a test: it is the body of the helper processes
// that other tests start (see startHelper), selected by
// lantest.HelperRoleEnv. Besides lantest's advertiser roles it has "browse"
// (a Browser, saying BROWSING and then FOUND with the first update) and
// "discover" (one Discover, saying DISCOVERED). Both read the service,
// serial and (optional) interface from lantest's Env* variables.
func TestHelperProcess(t *testing.T) {
	role := lantest.HelperRole()
	if role == "" {
		t.Skip("helper process body; runs only when started by another test")
	}
	if lantest.RunAdvertiser(role) {
		return
	}
	var ifaces []string
	if i := os.Getenv(lantest.EnvIface); i != "" {
		ifaces = []string{i}
	}
	service, serial := os.Getenv(lantest.EnvService), os.Getenv(lantest.EnvSerial)
	switch role {
	case "browse":
		found := make(chan Update, 1)
		b := New(Options{
			Services:   []string{service},
			Interfaces: ifaces,
			Interval:   2 * time.Second,
			Terminals:  []Terminal{{Name: "lane1", Serial: serial}},
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
		lantest.Say("BROWSING", lantest.Now())
		select {
		case u := <-found:
			lantest.Say("FOUND", foundLine{lantest.Now(), u})
		case <-time.After(findTimeout):
			fmt.Fprintln(os.Stderr, "nothing found; last browse error:", b.Err())
		}
		b.Close()
	case "discover":
		ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
		defer cancel()
		start := time.Now()
		fs, err := Discover(ctx, DiscoverOptions{Services: []string{service}, Interfaces: ifaces, Want: []string{serial}})
		line := discoveredLine{Elapsed: time.Since(start), Found: fs}
		if err != nil {
			line.Err = err.Error()
		}
		lantest.Say("DISCOVERED", line)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role", role)
		os.Exit(3)
	}
}

func parseFound(t *testing.T, js string) (foundLine, time.Time) {
	t.Helper()
	var f foundLine
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatalf("helper FOUND line %q: %v", js, err)
	}
	return f, f.Time()
}

func parseDiscovered(t *testing.T, js string) discoveredLine {
	t.Helper()
	var d discoveredLine
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("helper DISCOVERED line %q: %v", js, err)
	}
	return d
}
