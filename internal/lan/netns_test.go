package lan

import (
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/lan/lantest"
)

// These tests send real DNS-SD packets between two network namespaces joined
// by a veth pair, created and deleted by the test itself (lantest): nothing
// is sent on the host's own interfaces. They need root and iproute2; the
// avahi test also needs avahi-daemon, avahi-utils and dbus (Debian:
// apt-get install -y --no-install-recommends iproute2 avahi-daemon avahi-utils dbus).

// TestNetnsRegisterFoundByBrowser: a plain zeroconf.Register in one namespace
// (the host name and the veth's addresses, as a real device would advertise)
// is found by the Browser in the other, on its default interfaces.
func TestNetnsRegisterFoundByBrowser(t *testing.T) {
	lantest.RequireNetns(t)
	p := lantest.NewNetnsPair(t)
	svc, serial := testService(t), testSerial(t)
	env := lantest.AdvertiserEnv("lane-netns", svc, serial, 6868)

	browser := startHelper(t, p.B, "browse", env...)
	browser.Expect(t, "BROWSING", findTimeout)
	registrar := startHelper(t, p.A, lantest.RoleRegister, env...)
	registered := lantest.ParseStamp(t, registrar.Expect(t, "REGISTERED", findTimeout))
	f, found := parseFound(t, browser.Expect(t, "FOUND", findTimeout+5*time.Second))
	t.Logf("netns veth, plain Register: advertisement to discovery by the running Browser: %v", found.Sub(registered))

	want := p.IPA + ":6868"
	if f.Update.Address != want || f.Update.Name != "lane1" || f.Update.Source != SourceDiscovered {
		t.Errorf("update: got %+v, want lane1 discovered at %s", f.Update, want)
	}
	if f.Update.Found == nil || f.Update.Found.Serial != serial || f.Update.Found.Instance != "lane-netns" || f.Update.Found.Host == "" {
		t.Errorf("update.Found: got %+v, want serial %s, instance lane-netns and a host name", f.Update.Found, serial)
	}

	// A one-shot Discover started after the advertisement.
	d := parseDiscovered(t, startHelper(t, p.B, "discover", env...).Expect(t, "DISCOVERED", findTimeout+5*time.Second))
	if d.Err != "" || len(d.Found) != 1 || d.Found[0].Address() != want || d.Found[0].Serial != serial {
		t.Fatalf("Discover in %s: got %+v, want %s at %s", p.B, d, serial, want)
	}
	t.Logf("netns veth, plain Register: Discover started after the advertisement found it in %v", d.Elapsed)
}

// TestNetnsAvahiFoundByBrowser: a responder we did not write. avahi-daemon
// (with a private D-Bus system bus) runs in one namespace and publishes the
// service with avahi-publish-service; the Browser in the other namespace
// finds it, with its IPv4 address (tooling.md, mDNS gotcha 1).
func TestNetnsAvahiFoundByBrowser(t *testing.T) {
	lantest.RequireNetns(t)
	lantest.RequireAvahi(t)
	p := lantest.NewNetnsPair(t)
	svc, serial := testService(t), testSerial(t)
	instance := "Lane avahi " + lantest.RandHex(t, 3)
	avahi := lantest.StartAvahi(t, p.A, p.VethA)

	env := []string{lantest.EnvService + "=" + svc, lantest.EnvSerial + "=" + serial, lantest.EnvIface + "=" + p.VethB}
	browser := startHelper(t, p.B, "browse", env...)
	browser.Expect(t, "BROWSING", findTimeout)

	_, published, established := avahi.Publish(t, instance, svc, 6868, "txtv=1", SerialKey+"="+serial)
	f, found := parseFound(t, browser.Expect(t, "FOUND", findTimeout+5*time.Second))
	t.Logf("netns veth, avahi: avahi-publish-service start to discovery by the running Browser: %v (%v after avahi said Established; that line is read by this test, so it may come late)",
		found.Sub(published), found.Sub(established))

	want := p.IPA + ":6868"
	if f.Update.Address != want || f.Update.Source != SourceDiscovered {
		t.Errorf("update: got %+v, want discovered at %s", f.Update, want)
	}
	if g := f.Update.Found; g == nil || g.Host != avahi.HostName+".local." || g.Instance != instance || g.Serial != serial || g.Port != 6868 {
		t.Errorf("update.Found: got %+v, want host %q instance %q serial %q port 6868", g, avahi.HostName+".local.", instance, serial)
	}

	// A one-shot Discover started after the advertisement. avahi rate-limits
	// answers to 1 per record per second (RFC 6762), so a query right after
	// the browser's may go unanswered until zeroconf asks again.
	d := parseDiscovered(t, startHelper(t, p.B, "discover", env...).Expect(t, "DISCOVERED", findTimeout+5*time.Second))
	if d.Err != "" || len(d.Found) != 1 || d.Found[0].Address() != want || d.Found[0].Serial != serial {
		t.Fatalf("Discover in %s: got %+v, want %s at %s", p.B, d, serial, want)
	}
	t.Logf("netns veth, avahi: Discover started after the advertisement found it in %v", d.Elapsed)
}
