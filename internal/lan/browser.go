package lan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultInterval is how long one browse listens before the next one starts.
const DefaultInterval = 30 * time.Second

// Log field names.
const (
	logSerial  = "serial"
	logAddress = "address"
	logSource  = "source"
	logPath    = "path"
)

// Terminal is a terminal the Browser looks for.
type Terminal struct {
	// Name is the terminal's name in the configuration; it is passed back in
	// every Update so the caller need not map serials itself.
	Name string
	// Serial is matched against the TXT key "serial", ignoring case.
	Serial string
	// Static is a fixed host:port (configuration key lan_address). When set,
	// it is the terminal's address and discovery never changes it.
	Static string
}

// Source says where a terminal's current address came from.
type Source string

// Sources of an address.
const (
	SourceStatic     Source = "static"     // lan_address in the configuration
	SourceRemembered Source = "remembered" // the Store, from an earlier run
	SourceDiscovered Source = "discovered" // a DNS-SD answer in this run
)

// Update reports that a terminal's LAN address is now Address.
type Update struct {
	Name    string
	Serial  string
	Address string // host:port
	Source  Source
	// Found is the DNS-SD answer behind a discovered address; nil otherwise.
	Found *Found
}

// State is what the Browser knows about one configured terminal.
type State struct {
	Terminal
	// Address is the current host:port, "" when none is known yet.
	Address string
	Source  Source
	// LastSeen is the time of the last DNS-SD answer for the serial, zero
	// when none came in this run.
	LastSeen time.Time
}

// Options configures a Browser. The zero value browses the default service
// type and domain on every multicast interface every DefaultInterval, and
// remembers nothing.
type Options struct {
	// Services are the DNS-SD service types browsed (default DefaultService).
	Services []string
	// Domain is the DNS-SD domain (default DefaultDomain).
	Domain string
	// Interfaces are interface names to browse on (default: every interface
	// that is up and multicast-capable). Loopback must be named to be used.
	Interfaces []string
	// Interval is how long one browse listens before a new one starts
	// (default DefaultInterval). zeroconf reports an instance once per
	// browse, so a changed address is followed within about one Interval
	// (at once when the old announcement was withdrawn with a goodbye).
	Interval time.Duration
	// Terminals are the terminals to match by serial.
	Terminals []Terminal
	// Store remembers the last good address per serial across restarts;
	// nil remembers nothing.
	Store *Store
	// OnUpdate is called whenever a terminal's address is set or changes:
	// during Open for static and remembered addresses, and later from the
	// Browser's goroutine. Calls never overlap; a slow OnUpdate delays
	// browsing, so it should only hand the address over.
	OnUpdate func(Update)
	// Logger receives browse and store errors (default: discard).
	Logger zerolog.Logger
	// Now stamps sightings (default time.Now).
	Now func() time.Time
}

// Browser follows the LAN addresses of terminals: static ones from the
// configuration, remembered ones from its Store, and those found by browsing
// DNS-SD again and again. New does no I/O, Open starts browsing, Close stops
// it. All methods are safe for concurrent use.
type Browser struct {
	opts   Options
	ifaces []net.Interface
	terms  map[string]Terminal // by serialKey

	mu         sync.Mutex
	opened     bool
	current    map[string]State // by serialKey
	found      map[string]Found // by service and instance
	remembered map[string]Remembered
	lastErr    error
	browses    int

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Browser with opts and its defaults applied. It does no I/O
// and starts nothing: call Open.
func New(opts Options) *Browser {
	if len(opts.Services) == 0 {
		opts.Services = []string{DefaultService}
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Browser{
		opts:       opts,
		terms:      map[string]Terminal{},
		current:    map[string]State{},
		found:      map[string]Found{},
		remembered: map[string]Remembered{},
		kick:       make(chan struct{}, 1),
	}
}

func serialKey(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// Open validates the options, loads the Store, reports every static and
// remembered address through OnUpdate, and starts browsing in the
// background.
//
// It fails, starting nothing, when an option is invalid (service type,
// interval, a terminal without serial or with a duplicate one, a static
// address that is not host:port), an interface does not exist, or the Browser
// was already opened. A Store that cannot be loaded is not an error: it is
// logged and discovery starts from nothing. Network trouble while browsing
// (no multicast interface yet, say) is logged, kept for Err, and retried
// every Interval.
func (b *Browser) Open() error {
	updates, ctx, err := b.prepare()
	if err != nil {
		return err
	}
	// Outside the lock, so OnUpdate may call the Browser; before browsing
	// starts, so these come first.
	for _, u := range updates {
		b.notify(u)
	}
	go b.run(ctx)
	return nil
}

// prepare is Open's work under the lock: it returns the first updates and
// the context of the goroutine to start.
func (b *Browser) prepare() ([]Update, context.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened {
		return nil, nil, errors.New("lan: browser already opened")
	}
	if err := checkServices(b.opts.Services); err != nil {
		return nil, nil, err
	}
	if b.opts.Interval < 0 {
		return nil, nil, fmt.Errorf("lan: interval %v is negative", b.opts.Interval)
	}
	terms := make(map[string]Terminal, len(b.opts.Terminals))
	for i, t := range b.opts.Terminals {
		k := serialKey(t.Serial)
		if k == "" {
			return nil, nil, fmt.Errorf("lan: terminal %d (%q): no serial", i, t.Name)
		}
		if _, dup := terms[k]; dup {
			return nil, nil, fmt.Errorf("lan: terminal %q: serial %q configured twice", t.Name, t.Serial)
		}
		if t.Static != "" {
			if _, _, err := net.SplitHostPort(t.Static); err != nil {
				return nil, nil, fmt.Errorf("lan: terminal %q: static address %q: %w", t.Name, t.Static, err)
			}
		}
		terms[k] = t
	}
	ifaces, err := interfaces(b.opts.Interfaces)
	if err != nil {
		return nil, nil, err
	}
	b.terms, b.ifaces = terms, ifaces

	if b.opts.Store != nil {
		m, err := b.opts.Store.Load()
		if err != nil {
			b.opts.Logger.Warn().Err(err).Str(logPath, b.opts.Store.Path()).
				Msg("remembered terminal addresses ignored; waiting for discovery")
		}
		for serial, r := range m {
			b.remembered[serialKey(serial)] = r
		}
	}

	var updates []Update
	for _, t := range b.opts.Terminals {
		k := serialKey(t.Serial)
		st := State{Terminal: t}
		switch r, ok := b.remembered[k]; {
		case t.Static != "":
			st.Address, st.Source = t.Static, SourceStatic
		case ok:
			st.Address, st.Source = r.Address, SourceRemembered
		}
		b.current[k] = st
		if st.Address != "" {
			updates = append(updates, Update{Name: t.Name, Serial: t.Serial, Address: st.Address, Source: st.Source})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.done = make(chan struct{})
	b.opened = true
	return updates, ctx, nil
}

// Close stops browsing and waits for the Browser's goroutine to end. It
// always returns nil; calling it again, or on a Browser never opened, does
// nothing.
func (b *Browser) Close() error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.cancel = nil
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// Rescan ends the browse in progress and starts a new one at once, e.g.
// when the LAN route to a terminal has just failed. It does not wait.
func (b *Browser) Rescan() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Lookup returns the state of the configured terminal with serial (any
// case) and whether it is configured.
func (b *Browser) Lookup(serial string) (State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.current[serialKey(serial)]
	return st, ok
}

// Terminals returns the state of every configured terminal, in
// configuration order.
func (b *Browser) Terminals() []State {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]State, 0, len(b.opts.Terminals))
	for _, t := range b.opts.Terminals {
		out = append(out, b.current[serialKey(t.Serial)])
	}
	return out
}

// Found returns every service instance seen since Open, configured or not,
// sorted by serial, service and instance, each as last seen.
func (b *Browser) Found() []Found {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sortedFound(b.found)
}

// Err returns the error of the last browse, nil when it worked.
func (b *Browser) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// Browses returns how many browses have ended since Open.
func (b *Browser) Browses() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.browses
}

// run browses, one Interval at a time, until ctx ends.
func (b *Browser) run(ctx context.Context) {
	defer close(b.done)
	for ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, b.opts.Interval)
		errc := make(chan error, 1)
		go func() {
			errc <- browseAll(bctx, b.ifaces, b.opts.Services, b.opts.Domain, b.opts.Now, b.saw)
		}()
		var err error
		select {
		case err = <-errc:
		case <-b.kick:
			cancel()
			err = <-errc
		case <-ctx.Done():
			cancel()
			err = <-errc
		}
		cancel()

		b.mu.Lock()
		changed := (err == nil) != (b.lastErr == nil)
		b.lastErr = err
		b.browses++
		b.mu.Unlock()
		if err != nil {
			if changed {
				b.opts.Logger.Warn().Err(err).Msg("DNS-SD browse failed; retrying every interval")
			}
			// The sockets could not be opened: wait before trying again
			// rather than spin.
			t := time.NewTimer(b.opts.Interval)
			select {
			case <-t.C:
			case <-b.kick:
			case <-ctx.Done():
			}
			t.Stop()
		} else if changed {
			b.opts.Logger.Info().Msg("DNS-SD browse works again")
		}
	}
}

// saw records one sighting and, when it gives a configured, non-static
// terminal a new address, remembers it and reports it. browseAll calls it
// from one goroutine at a time.
func (b *Browser) saw(f Found) {
	b.mu.Lock()
	b.found[f.key()] = f
	k := serialKey(f.Serial)
	t, ok := b.terms[k]
	if !ok || k == "" {
		b.mu.Unlock()
		return
	}
	st := b.current[k]
	st.LastSeen = f.LastSeen
	addr := f.Address()
	var (
		u    *Update
		snap map[string]Remembered
	)
	switch {
	case t.Static != "" || addr == "":
		// A static address wins; an answer without a usable address
		// changes nothing.
	case st.Address != "" && f.has(st.Address):
		// Still there (maybe one of several addresses): keep it, so a host
		// with two addresses does not flap between them.
		st.Source = SourceDiscovered
	default:
		st.Address, st.Source = addr, SourceDiscovered
		fc := f
		u = &Update{Name: t.Name, Serial: t.Serial, Address: addr, Source: SourceDiscovered, Found: &fc}
		b.remembered[k] = Remembered{Address: addr, SeenAt: f.LastSeen}
		snap = maps.Clone(b.remembered)
	}
	b.current[k] = st
	b.mu.Unlock()

	if u == nil {
		return
	}
	b.opts.Logger.Info().Str(logSerial, t.Serial).Str(logAddress, addr).Str(logSource, string(SourceDiscovered)).
		Msg("terminal LAN address")
	if b.opts.Store != nil {
		if err := b.opts.Store.Save(snap); err != nil {
			b.opts.Logger.Warn().Err(err).Str(logPath, b.opts.Store.Path()).Msg("terminal address not remembered")
		}
	}
	b.notify(*u)
}

func (b *Browser) notify(u Update) {
	if b.opts.OnUpdate != nil {
		b.opts.OnUpdate(u)
	}
}
