package lan

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
)

func TestFoundFromEntry(t *testing.T) {
	seen := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		text      []string
		v4, v6    []net.IP
		port      int
		wantAddrs []string
		wantAddr  string
		serial    string
	}{
		{
			name:      "IPv4 preferred over IPv6",
			text:      []string{"txtv=1", "serial=P3SN0001"},
			v4:        []net.IP{net.ParseIP("192.0.2.10")},
			v6:        []net.IP{net.ParseIP("fe80::1"), net.ParseIP("2001:db8::10")},
			port:      6868,
			wantAddrs: []string{"192.0.2.10", "2001:db8::10", "fe80::1"},
			wantAddr:  "192.0.2.10:6868",
			serial:    "P3SN0001",
		},
		{
			name:      "only link-local IPv6 is not usable",
			text:      []string{"serial=P3SN0002"},
			v6:        []net.IP{net.ParseIP("fe80::2")},
			port:      6868,
			wantAddrs: []string{"fe80::2"},
			wantAddr:  "",
			serial:    "P3SN0002",
		},
		{
			name:      "global IPv6 when there is no IPv4",
			text:      []string{"Serial = P3SN0003 "},
			v6:        []net.IP{net.ParseIP("2001:db8::3")},
			port:      6869,
			wantAddrs: []string{"2001:db8::3"},
			wantAddr:  "[2001:db8::3]:6869",
			serial:    "P3SN0003",
		},
		{
			name:      "IPv4-mapped IPv6 counts as IPv4, duplicates dropped",
			text:      []string{"serialnumber=x", "serial=A", "serial=B"},
			v4:        []net.IP{net.ParseIP("192.0.2.4")},
			v6:        []net.IP{net.ParseIP("::ffff:192.0.2.4"), net.ParseIP("::ffff:192.0.2.5")},
			port:      6868,
			wantAddrs: []string{"192.0.2.4", "192.0.2.5"},
			wantAddr:  "192.0.2.4:6868",
			serial:    "A",
		},
		{
			name:     "no serial, no address",
			text:     []string{"txtv=1"},
			port:     6868,
			wantAddr: "",
			serial:   "",
		},
		{
			name:      "no port",
			text:      []string{"serial=S"},
			v4:        []net.IP{net.ParseIP("192.0.2.6")},
			wantAddrs: []string{"192.0.2.6"},
			wantAddr:  "",
			serial:    "S",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := zeroconf.NewServiceEntry(`Lane\ 1`, "_kushki-one._tcp", "local.")
			e.HostName = "p3.local."
			e.Port = tc.port
			e.Text = tc.text
			e.AddrIPv4 = tc.v4
			e.AddrIPv6 = tc.v6
			f := foundFrom(e, seen)
			var got []string
			for _, a := range f.Addrs {
				got = append(got, a.String())
			}
			if !reflect.DeepEqual(got, tc.wantAddrs) {
				t.Errorf("Addrs: got %v, want %v", got, tc.wantAddrs)
			}
			if a := f.Address(); a != tc.wantAddr {
				t.Errorf("Address(): got %q, want %q", a, tc.wantAddr)
			}
			if f.Serial != tc.serial {
				t.Errorf("Serial: got %q, want %q", f.Serial, tc.serial)
			}
			if f.Instance != "Lane 1" || f.Host != "p3.local." || f.Service != "_kushki-one._tcp" || !f.LastSeen.Equal(seen) {
				t.Errorf("got instance %q host %q service %q seen %v, want %q %q %q %v",
					f.Instance, f.Host, f.Service, f.LastSeen, "Lane 1", "p3.local.", "_kushki-one._tcp", seen)
			}
		})
	}
}

func TestFoundHas(t *testing.T) {
	f := Found{Port: 6868, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("fe80::1")}}
	tests := []struct {
		hostport string
		want     bool
	}{
		{"192.0.2.1:6868", true},
		{"192.0.2.2:6868", true},
		{"192.0.2.2:6869", false},
		{"192.0.2.3:6868", false},
		{"[fe80::1]:6868", false},
		{"p3.local:6868", false},
	}
	for _, tc := range tests {
		if got := f.has(tc.hostport); got != tc.want {
			t.Errorf("has(%q): got %v, want %v", tc.hostport, got, tc.want)
		}
	}
}

func TestUnescapeInstance(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{`Lane\ 1`, "Lane 1"},
		{`a\.b`, "a.b"},
		{`a\046b`, "a.b"},
		{`end\`, `end\`},
		{`x\\y`, `x\y`},
	}
	for _, tc := range tests {
		if got := unescapeInstance(tc.in); got != tc.want {
			t.Errorf("unescapeInstance(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidService(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"_kushki-one._tcp", true},
		{"_kushki-one._tcp.", true},
		{"_http._udp", true},
		{"_a1b2c3d4e5f6g7h._tcp", true}, // 15 characters
		{"_a1b2c3d4e5f6g7h8._tcp", false},
		{"kushki-one._tcp", false},
		{"_kushki-one._sctp", false},
		{"_kushki-one", false},
		{"_._tcp", false},
		{"_-x._tcp", false},
		{"_x_y._tcp", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := ValidService(tc.in); got != tc.want {
			t.Errorf("ValidService(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}
