// Package lan finds Kushki ONE terminals on the local network and checks that
// they can be reached: DNS-SD (mDNS) browsing with github.com/grandcat/zeroconf,
// static addresses from the configuration, a durable memory of the last good
// address per terminal serial, and a cheap TCP health probe.
//
// The vendor documents no DNS-SD service for the terminal (research/kushki-one.md
// §5), so the service type is configurable; posbridge's default is
// "_kushki-one._tcp" in "local." with a TXT record "serial=<terminal serial>",
// which the simulator advertises. A terminal is matched by that serial, never by
// its instance or host name.
//
// It is not a terminal client: it hands host:port addresses to its caller
// (cmd/posbridge), which hands them to internal/terminal. It does not import
// internal/terminal.
package lan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
)

// Defaults of the DNS-SD browse.
const (
	// DefaultService is the service type browsed when none is configured.
	DefaultService = "_kushki-one._tcp"
	// DefaultDomain is the DNS-SD domain browsed when none is configured.
	DefaultDomain = "local."
	// SerialKey is the TXT key that carries a terminal's serial.
	SerialKey = "serial"
)

// Found is one service instance seen on the network.
type Found struct {
	// Serial is the value of the TXT key "serial" ("" when the instance has
	// none; such instances are listed but never matched to a terminal).
	Serial   string `json:"serial"`
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Domain   string `json:"domain"`
	// Host is the target host name of the SRV record ("p3.local.").
	Host string `json:"host"`
	// Addrs are the host's addresses in order of preference: IPv4 first, then
	// global IPv6, then link-local IPv6.
	Addrs []netip.Addr `json:"addresses"`
	Port  int          `json:"port"`
	// Text is the whole TXT record.
	Text     []string  `json:"txt,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

// Addr returns the preferred usable address of f: the first IPv4 address, or
// else the first global IPv6 one. A link-local IPv6 address is not usable, as
// DNS-SD does not say on which interface it lives. It returns false when f has
// no usable address.
func (f Found) Addr() (netip.Addr, bool) {
	for _, a := range f.Addrs {
		if usable(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Address returns the preferred usable address of f with its port as
// "host:port", or "" when f has no usable address or no port.
func (f Found) Address() string {
	a, ok := f.Addr()
	if !ok || f.Port <= 0 {
		return ""
	}
	return netip.AddrPortFrom(a, uint16(f.Port)).String()
}

// has reports whether hostport is one of f's usable addresses with f's port.
func (f Found) has(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil || int(ap.Port()) != f.Port {
		return false
	}
	for _, a := range f.Addrs {
		if usable(a) && a == ap.Addr() {
			return true
		}
	}
	return false
}

func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() &&
		!(a.Is6() && (a.IsLinkLocalUnicast() || a.Zone() != ""))
}

// foundFrom converts a zeroconf entry. The DNS-SD TXT keys are
// case-insensitive (RFC 6763 §6.4), so "Serial=" matches too.
func foundFrom(e *zeroconf.ServiceEntry, seen time.Time) Found {
	f := Found{
		Instance: unescapeInstance(e.Instance),
		Service:  e.Service,
		Domain:   e.Domain,
		Host:     e.HostName,
		Port:     e.Port,
		Text:     append([]string(nil), e.Text...),
		LastSeen: seen,
	}
	f.Serial = serialOf(e.Text)
	var v4, v6, ll []netip.Addr
	for _, ip := range e.AddrIPv4 {
		if a, ok := netip.AddrFromSlice(ip); ok {
			v4 = append(v4, a.Unmap())
		}
	}
	for _, ip := range e.AddrIPv6 {
		a, ok := netip.AddrFromSlice(ip)
		switch {
		case !ok:
		case a.Is4In6():
			v4 = append(v4, a.Unmap())
		case a.IsLinkLocalUnicast():
			ll = append(ll, a)
		default:
			v6 = append(v6, a)
		}
	}
	f.Addrs = dedupe(append(append(v4, v6...), ll...))
	return f
}

// serialOf returns the value of the first TXT entry whose key is "serial"
// (any case), trimmed of spaces; "" when there is none.
func serialOf(txt []string) string {
	for _, kv := range txt {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), SerialKey) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// unescapeInstance undoes the DNS presentation escapes zeroconf leaves in
// instance names ("Lane\ 1" → "Lane 1", "\046" → ".").
func unescapeInstance(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if n, err := strconv.Atoi(s[i+1 : i+4]); err == nil && n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func dedupe(as []netip.Addr) []netip.Addr {
	out := as[:0]
	seen := make(map[netip.Addr]bool, len(as))
	for _, a := range as {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ValidService reports whether s looks like a DNS-SD service type:
// "_name._tcp" or "_name._udp", with a name of 1 to 15 characters (RFC 6763 §7).
func ValidService(s string) bool {
	name, proto, ok := strings.Cut(strings.TrimSuffix(s, "."), ".")
	if !ok || (proto != "_tcp" && proto != "_udp") || !strings.HasPrefix(name, "_") {
		return false
	}
	n := name[1:]
	if len(n) < 1 || len(n) > 15 || n[0] == '-' || n[len(n)-1] == '-' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '-' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// checkServices fails naming the first of services that is not ValidService.
func checkServices(services []string) error {
	for _, s := range services {
		if !ValidService(s) {
			return fmt.Errorf("lan: service %q is not a DNS-SD service type like _name._tcp", s)
		}
	}
	return nil
}

// interfaces resolves interface names. No names means zeroconf's default:
// every interface that is up and has the MULTICAST flag. An explicit name is
// used as given, flags or not (loopback works when named; tooling.md, mDNS b).
func interfaces(names []string) ([]net.Interface, error) {
	var out []net.Interface
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("lan: interface %q: %w", n, err)
		}
		out = append(out, *ifi)
	}
	return out, nil
}

// browse browses one service type on ifaces until ctx ends, calling fn for
// every instance zeroconf reports (at most once per instance: grandcat
// v1.0.0 drops later answers for an instance it has already reported, unless
// a goodbye came in between, so following changes needs a new browse).
//
// It listens for IPv4 traffic only: over IPv6 the first answer may carry only
// a link-local address that cannot be dialled without its zone, and zeroconf
// would then drop the later answer with the IPv4 address (tooling.md, mDNS
// gotcha 1). It returns an error when the multicast sockets cannot be opened
// or the first query cannot be sent; the end of ctx is not an error.
func browse(ctx context.Context, ifaces []net.Interface, service, domain string, now func() time.Time, fn func(Found)) error {
	r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err != nil {
		return fmt.Errorf("lan: browse %s: %w", service, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry)
	err = r.Browse(ctx, service, domain, entries)
	if err != nil {
		cancel()
	}
	// zeroconf closes entries once its loop has seen ctx end; reading to the
	// end is what lets its goroutine exit.
	for e := range entries {
		if err == nil {
			fn(foundFrom(e, now()))
		}
	}
	if err != nil {
		return fmt.Errorf("lan: browse %s: %w", service, err)
	}
	return nil
}

// browseAll browses every service type at once until ctx ends and calls fn,
// from one goroutine at a time, for every instance seen. It returns the
// errors of the services that could not be browsed, joined.
func browseAll(ctx context.Context, ifaces []net.Interface, services []string, domain string, now func() time.Time, fn func(Found)) error {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make([]error, len(services))
	)
	for i, svc := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = browse(ctx, ifaces, svc, domain, now, func(f Found) {
				mu.Lock()
				defer mu.Unlock()
				fn(f)
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DiscoverOptions configures Discover. The zero value browses the default
// service and domain on every multicast interface.
type DiscoverOptions struct {
	// Services are the DNS-SD service types browsed (default DefaultService).
	Services []string
	// Domain is the DNS-SD domain (default DefaultDomain).
	Domain string
	// Interfaces are interface names to browse on (default: every interface
	// that is up and multicast-capable). Loopback must be named to be used.
	Interfaces []string
	// Want, when not empty, ends the browse as soon as every serial in it has
	// been found.
	Want []string
	// Now stamps Found.LastSeen (default time.Now).
	Now func() time.Time
}

func (o *DiscoverOptions) defaults() error {
	if len(o.Services) == 0 {
		o.Services = []string{DefaultService}
	}
	if err := checkServices(o.Services); err != nil {
		return err
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Discover browses once, until ctx ends (the caller sets the deadline) or
// every serial in opts.Want has been found, and returns every instance seen,
// sorted by serial, then service and instance. An instance seen more than
// once is listed once, as last seen.
//
// It returns an error (with whatever was found) when an option is invalid,
// an interface does not exist, or a service type could not be browsed; the
// end of ctx is the normal end and not an error. It is safe for concurrent
// use.
func Discover(ctx context.Context, opts DiscoverOptions) ([]Found, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ifaces, err := interfaces(opts.Interfaces)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	want := make(map[string]bool, len(opts.Want))
	for _, s := range opts.Want {
		want[s] = true
	}
	seen := make(map[string]Found)
	err = browseAll(ctx, ifaces, opts.Services, opts.Domain, opts.Now, func(f Found) {
		seen[f.key()] = f
		if len(want) > 0 {
			delete(want, f.Serial)
			if len(want) == 0 {
				cancel()
			}
		}
	})
	return sortedFound(seen), err
}

// key identifies a service instance: an instance seen again replaces the
// earlier sighting.
func (f Found) key() string { return f.Service + "\x00" + f.Instance }

// sortedFound returns the instances of m sorted by serial, then service and
// instance.
func sortedFound(m map[string]Found) []Found {
	out := make([]Found, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Serial != b.Serial {
			return a.Serial < b.Serial
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Instance < b.Instance
	})
	return out
}
