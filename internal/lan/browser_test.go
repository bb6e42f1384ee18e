package lan

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/lan/lantest"
)

// recorder collects the updates a Browser reports.
type recorder struct {
	mu      sync.Mutex
	updates []Update
	signal  chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) add(u Update) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Update(nil), r.updates...)
}

// waitFor returns the first update from index from on that matches, and the
// time it was seen; it fails the test after findTimeout.
func (r *recorder) waitFor(t *testing.T, from int, what string, match func(Update) bool) (Update, time.Time) {
	t.Helper()
	deadline := time.NewTimer(findTimeout)
	defer deadline.Stop()
	for {
		for _, u := range r.all()[from:] {
			if match(u) {
				return u, time.Now()
			}
		}
		select {
		case <-r.signal:
		case <-deadline.C:
			t.Fatalf("no update %s within %v; got %+v", what, findTimeout, r.all())
		}
	}
}

func openBrowser(t *testing.T, opts Options) (*Browser, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts.OnUpdate = rec.add
	b := New(opts)
	if err := b.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, rec
}

func TestBrowserFindsLoopbackAdvertiser(t *testing.T) {
	svc, serial, other := testService(t), testSerial(t), testSerial(t)
	dir := t.TempDir()
	b, rec := openBrowser(t, Options{
		Services:   []string{svc},
		Interfaces: []string{"lo"},
		Interval:   2 * time.Second,
		Terminals:  []Terminal{{Name: "lane1", Serial: strings.ToLower(serial)}}, // serials match in any case
		Store:      NewStore(dir),
	})
	if ups := rec.all(); len(ups) != 0 {
		t.Fatalf("updates before any answer: got %+v, want none", ups)
	}

	advertise(t, "someone else", svc, other, "127.0.0.9", 7000)
	registered := time.Now()
	advertise(t, "Lane 1 terminal", svc, serial, "127.0.0.1", 6868)
	u, seen := rec.waitFor(t, 0, "for "+serial, func(u Update) bool { return u.Name == "lane1" })
	t.Logf("loopback: advertisement to discovery by the running Browser: %v", seen.Sub(registered))

	if u.Address != "127.0.0.1:6868" || u.Source != SourceDiscovered || u.Serial != strings.ToLower(serial) {
		t.Errorf("update: got address %q source %q serial %q, want %q %q %q",
			u.Address, u.Source, u.Serial, "127.0.0.1:6868", SourceDiscovered, strings.ToLower(serial))
	}
	if u.Found == nil || u.Found.Instance != "Lane 1 terminal" || u.Found.Service != svc || u.Found.Port != 6868 ||
		u.Found.Serial != serial || u.Found.Host != "pbt-127-0-0-1.local." || u.Found.LastSeen.IsZero() {
		t.Errorf("update.Found: got %+v, want instance %q service %q port 6868 serial %q host %q and a LastSeen",
			u.Found, "Lane 1 terminal", svc, serial, "pbt-127-0-0-1.local.")
	}
	st, ok := b.Lookup(serial)
	if !ok || st.Address != "127.0.0.1:6868" || st.Source != SourceDiscovered || st.LastSeen.IsZero() {
		t.Errorf("Lookup(%q): got %+v, %v; want the discovered address with a LastSeen", serial, st, ok)
	}
	if ts := b.Terminals(); len(ts) != 1 || ts[0].Name != "lane1" || ts[0].Address != "127.0.0.1:6868" {
		t.Errorf("Terminals(): got %+v, want lane1 at 127.0.0.1:6868", ts)
	}

	// The unconfigured instance is listed but never reported as an update.
	deadline := time.Now().Add(findTimeout)
	for !hasSerial(b.Found(), other) {
		if time.Now().After(deadline) {
			t.Fatalf("Found(): %s never listed; got %+v", other, b.Found())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, u := range rec.all() {
		if u.Name != "lane1" || u.Address != "127.0.0.1:6868" {
			t.Errorf("unexpected update %+v", u)
		}
	}

	// The address was remembered durably.
	m, err := NewStore(dir).Load()
	if err != nil {
		t.Fatalf("Store.Load: %v", err)
	}
	if r := m[serialKey(serial)]; r.Address != "127.0.0.1:6868" || r.SeenAt.IsZero() {
		t.Errorf("remembered: got %+v, want 127.0.0.1:6868 with a time", m)
	}
	if err := b.Err(); err != nil {
		t.Errorf("Err(): got %v, want nil", err)
	}
}

func hasSerial(fs []Found, serial string) bool {
	for _, f := range fs {
		if f.Serial == serial {
			return true
		}
	}
	return false
}

// TestBrowserFollowsAddressChange re-advertises a terminal on another
// loopback address. With a goodbye, zeroconf forgets the instance and reports
// it again at once; without one (the advertiser is killed), only the next
// browse can see the change, which is why the Browser browses again and again.
func TestBrowserFollowsAddressChange(t *testing.T) {
	tests := []struct {
		name    string
		goodbye bool
	}{
		{"withdrawn with a goodbye", true},
		{"advertiser killed without goodbye", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, serial := testService(t), testSerial(t)
			_, rec := openBrowser(t, Options{
				Services:   []string{svc},
				Interfaces: []string{"lo"},
				Interval:   time.Second,
				Terminals:  []Terminal{{Name: "lane1", Serial: serial}},
			})
			advertiseAt := func(ip string) func() {
				if tc.goodbye {
					return advertise(t, "lane", svc, serial, ip, 6868)
				}
				h := startHelper(t, "", lantest.RoleAdvertiseProxy, append(lantest.AdvertiserEnv("lane", svc, serial, 6868),
					lantest.EnvIface+"=lo", lantest.EnvIP+"="+ip, lantest.EnvHost+"=pbt-host")...)
				h.Expect(t, "REGISTERED", findTimeout)
				return h.Kill
			}

			stop := advertiseAt("127.0.0.1")
			rec.waitFor(t, 0, "to 127.0.0.1", func(u Update) bool { return u.Address == "127.0.0.1:6868" })
			n := len(rec.all())
			stop()
			moved := time.Now()
			advertiseAt("127.0.0.2")
			_, seen := rec.waitFor(t, n, "to 127.0.0.2", func(u Update) bool { return u.Address == "127.0.0.2:6868" })
			t.Logf("loopback, %s: re-advertisement to new address reported: %v", tc.name, seen.Sub(moved))
		})
	}
}

func TestBrowserStaticAddressWins(t *testing.T) {
	svc, serial := testService(t), testSerial(t)
	dir := t.TempDir()
	// Even a remembered address does not override a static one.
	if err := NewStore(dir).Save(map[string]Remembered{serial: {Address: "127.0.0.5:6868"}}); err != nil {
		t.Fatal(err)
	}
	b, rec := openBrowser(t, Options{
		Services:   []string{svc},
		Interfaces: []string{"lo"},
		Interval:   time.Second,
		Terminals:  []Terminal{{Name: "lane1", Serial: serial, Static: "192.0.2.10:6868"}},
		Store:      NewStore(dir),
	})
	want := Update{Name: "lane1", Serial: serial, Address: "192.0.2.10:6868", Source: SourceStatic}
	if ups := rec.all(); len(ups) != 1 || ups[0] != want {
		t.Fatalf("updates after Open: got %+v, want [%+v]", ups, want)
	}

	advertise(t, "lane", svc, serial, "127.0.0.1", 6868)
	deadline := time.Now().Add(findTimeout)
	for {
		st, _ := b.Lookup(serial)
		if !st.LastSeen.IsZero() {
			if st.Address != want.Address || st.Source != SourceStatic {
				t.Errorf("after discovery: got %q from %q, want %q from %q", st.Address, st.Source, want.Address, SourceStatic)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal never seen by DNS-SD within %v", findTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ups := rec.all(); len(ups) != 1 {
		t.Errorf("updates: got %+v, want only the static one", ups)
	}
}

func TestBrowserRemembersAcrossRestart(t *testing.T) {
	svc, serial := testService(t), testSerial(t)
	dir := t.TempDir()
	if err := NewStore(dir).Save(map[string]Remembered{serial: {Address: "127.0.0.7:6868"}}); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Services:   []string{svc},
		Interfaces: []string{"lo"},
		Interval:   time.Second,
		Terminals:  []Terminal{{Name: "lane1", Serial: serial}},
		Store:      NewStore(dir),
	}

	// Before any answer, Open reports the remembered address.
	b, rec := openBrowser(t, opts)
	want := Update{Name: "lane1", Serial: serial, Address: "127.0.0.7:6868", Source: SourceRemembered}
	if ups := rec.all(); len(ups) != 1 || ups[0] != want {
		t.Fatalf("updates after Open: got %+v, want [%+v]", ups, want)
	}

	// Discovery finds it elsewhere: reported and remembered.
	advertise(t, "lane", svc, serial, "127.0.0.1", 6870)
	rec.waitFor(t, 1, "to 127.0.0.1:6870", func(u Update) bool {
		return u.Address == "127.0.0.1:6870" && u.Source == SourceDiscovered
	})
	b.Close()

	// A restart uses the newly remembered address before discovery answers.
	_, rec2 := openBrowser(t, Options{
		Services:   []string{testService(t)}, // nothing answers this one
		Interfaces: []string{"lo"},
		Interval:   time.Hour,
		Terminals:  opts.Terminals,
		Store:      NewStore(dir),
	})
	want = Update{Name: "lane1", Serial: serial, Address: "127.0.0.1:6870", Source: SourceRemembered}
	if ups := rec2.all(); len(ups) != 1 || ups[0] != want {
		t.Errorf("updates after restart: got %+v, want [%+v]", ups, want)
	}
}

func TestBrowserCorruptStoreIsLoggedNotFatal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StoreFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b, rec := openBrowser(t, Options{
		Services:   []string{testService(t)},
		Interfaces: []string{"lo"},
		Interval:   time.Hour,
		Terminals:  []Terminal{{Name: "lane1", Serial: "P3SN0001"}},
		Store:      NewStore(dir),
		Logger:     zerolog.New(&logs),
	})
	if ups := rec.all(); len(ups) != 0 {
		t.Errorf("updates: got %+v, want none", ups)
	}
	if st, _ := b.Lookup("P3SN0001"); st.Address != "" {
		t.Errorf("address: got %q, want none", st.Address)
	}
	if got := logs.String(); !strings.Contains(got, ErrCorrupt.Error()) || !strings.Contains(got, `"level":"warn"`) {
		t.Errorf("log: got %q, want a warning naming %q", got, ErrCorrupt)
	}
}

func TestBrowserOpenRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad service", Options{Services: []string{"kushki"}}, `service "kushki"`},
		{"unknown interface", Options{Interfaces: []string{"pbt-nonexistent"}}, `interface "pbt-nonexistent"`},
		{"negative interval", Options{Interval: -time.Second}, "negative"},
		{"terminal without serial", Options{Terminals: []Terminal{{Name: "lane1"}}}, "no serial"},
		{"duplicate serial", Options{Terminals: []Terminal{{Name: "a", Serial: "X1"}, {Name: "b", Serial: "x1"}}}, "configured twice"},
		{"static not host:port", Options{Terminals: []Terminal{{Name: "a", Serial: "X1", Static: "192.0.2.1"}}}, "static address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			tc.opts.OnUpdate = func(Update) { called = true }
			b := New(tc.opts)
			err := b.Open()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: got %v, want an error containing %q", err, tc.want)
			}
			if called {
				t.Errorf("OnUpdate called by a failed Open")
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close after failed Open: %v", err)
			}
		})
	}

	b := New(Options{Interfaces: []string{"lo"}, Services: []string{testService(t)}, Interval: time.Hour})
	if err := b.Open(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Open(); err == nil {
		t.Errorf("second Open: got nil, want an error")
	}
}

func TestBrowserRescanStartsANewBrowse(t *testing.T) {
	b, _ := openBrowser(t, Options{Services: []string{testService(t)}, Interfaces: []string{"lo"}, Interval: time.Hour})
	if n := b.Browses(); n != 0 {
		t.Fatalf("Browses before Rescan: got %d, want 0 (the interval is an hour)", n)
	}
	b.Rescan()
	deadline := time.Now().Add(findTimeout)
	for b.Browses() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Rescan did not end the browse within %v", findTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDiscoverLoopback(t *testing.T) {
	svc, serial := testService(t), testSerial(t)
	advertise(t, "lane", svc, serial, "127.0.0.1", 6868)

	ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
	defer cancel()
	start := time.Now()
	fs, err := Discover(ctx, DiscoverOptions{Services: []string{svc}, Interfaces: []string{"lo"}, Want: []string{serial}})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Discover ran to its deadline; want it to stop once %s was found (got %+v)", serial, fs)
	}
	t.Logf("loopback: Discover started after the advertisement found it in %v", elapsed)
	if len(fs) != 1 || fs[0].Serial != serial || fs[0].Address() != "127.0.0.1:6868" || fs[0].Instance != "lane" {
		t.Errorf("Discover: got %+v, want lane %s at 127.0.0.1:6868", fs, serial)
	}
}

func TestDiscoverNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	fs, err := Discover(ctx, DiscoverOptions{Services: []string{testService(t)}, Interfaces: []string{"lo"}})
	if err != nil || len(fs) != 0 {
		t.Errorf("Discover with no advertiser: got %+v, %v; want nothing and no error", fs, err)
	}
}

func TestDiscoverRejects(t *testing.T) {
	tests := []struct {
		name string
		opts DiscoverOptions
	}{
		{"bad service", DiscoverOptions{Services: []string{"_x"}}},
		{"unknown interface", DiscoverOptions{Interfaces: []string{"pbt-nonexistent"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Discover(context.Background(), tc.opts)
			if err == nil {
				t.Errorf("Discover: got nil error, want one")
			}
		})
	}
}

// BenchmarkDiscoverLoopback measures a one-shot Discover, started after the
// advertisement, until it has the terminal.
func BenchmarkDiscoverLoopback(b *testing.B) {
	svc, serial := testService(b), testSerial(b)
	advertise(b, "lane", svc, serial, "127.0.0.1", 6868)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
		fs, err := Discover(ctx, DiscoverOptions{Services: []string{svc}, Interfaces: []string{"lo"}, Want: []string{serial}})
		timedOut := ctx.Err() != nil
		cancel()
		if err != nil || timedOut || len(fs) != 1 {
			b.Fatalf("Discover: got %+v, %v (timed out: %v)", fs, err, timedOut)
		}
	}
}
