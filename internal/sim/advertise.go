package sim

import (
	"errors"
	"fmt"
	"net"

	"github.com/grandcat/zeroconf"
)

// DNS-SD names the simulator advertises (DESIGN.md "Discovery"; the vendor
// documents no service type, so this is posbridge's convention).
const (
	ServiceType   = "_kushki-one._tcp"
	ServiceDomain = "local."
)

// Advertise announces the listener at addr by DNS-SD as ServiceType with
// TXT serial=<serial>, using cfg.Advertise, until Close. It may be called
// once per Sim. It fails when addr is not a TCP address, an interface is
// unknown or has no IPv4 address, or no multicast socket can be opened.
//
// grandcat/zeroconf's Register drops loopback addresses and fails on lo
// (research/tooling.md "mDNS details"), so whenever interfaces are named, or
// the listener is bound to one address, it registers a proxy record with an
// explicit host name and addresses (RegisterProxy). Only a listener on the
// unspecified address with no interfaces named uses plain Register, which
// announces the host's own name on every multicast interface.
func (s *Sim) Advertise(addr net.Addr) error {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.Port == 0 {
		return fmt.Errorf("sim: advertise: %v is not a TCP listener address", addr)
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.advert != nil:
		s.mu.Unlock()
		return errors.New("sim: advertise: already advertising")
	}
	s.mu.Unlock()

	a := s.cfg.Advertise
	txt := []string{"serial=" + s.cfg.Serial, "txtv=1", "path=/terminal/v1"}
	ifaces, err := interfacesByName(a.Interfaces)
	if err != nil {
		return fmt.Errorf("sim: advertise: %w", err)
	}
	var ips []string
	switch {
	case !ta.IP.IsUnspecified():
		ips = []string{ta.IP.String()}
		if len(ifaces) == 0 && ta.IP.IsLoopback() {
			if ifaces, err = loopbackInterfaces(); err != nil {
				return fmt.Errorf("sim: advertise: %w", err)
			}
		}
	case len(ifaces) > 0:
		for _, ifi := range ifaces {
			addrs, err := ifi.Addrs()
			if err != nil {
				return fmt.Errorf("sim: advertise: addresses of %s: %w", ifi.Name, err)
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
					ips = append(ips, n.IP.String())
				}
			}
		}
		if len(ips) == 0 {
			return errors.New("sim: advertise: the named interfaces have no IPv4 address")
		}
	}
	var srv *zeroconf.Server
	if len(ips) == 0 {
		srv, err = zeroconf.Register(a.Instance, ServiceType, ServiceDomain, ta.Port, txt, nil)
	} else {
		srv, err = zeroconf.RegisterProxy(a.Instance, ServiceType, ServiceDomain, ta.Port, a.Host, ips, txt, ifaces)
	}
	if err != nil {
		return fmt.Errorf("sim: advertise: %w", err)
	}
	s.mu.Lock()
	if s.closed || s.advert != nil {
		s.mu.Unlock()
		srv.Shutdown()
		if s.closed {
			return ErrClosed
		}
		return errors.New("sim: advertise: already advertising")
	}
	s.advert = srv
	s.mu.Unlock()
	names := make([]string, 0, len(ifaces))
	for _, ifi := range ifaces {
		names = append(names, ifi.Name)
	}
	s.log.Info().Str("service", ServiceType).Str("instance", a.Instance).Int("port", ta.Port).
		Strs("ips", ips).Strs("interfaces", names).Msg("advertising by DNS-SD")
	return nil
}

// loopbackInterfaces returns the host's up loopback interfaces.
func loopbackInterfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			out = append(out, ifi)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no loopback interface is up")
	}
	return out, nil
}
