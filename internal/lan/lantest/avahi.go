package lantest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireAvahi skips the test, saying why, unless avahi-daemon,
// avahi-publish-service (Debian avahi-utils) and dbus-daemon are installed.
// (apt-get install -y --no-install-recommends avahi-daemon avahi-utils dbus)
func RequireAvahi(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"avahi-daemon", "avahi-publish-service", "dbus-daemon"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("skipped: %s is not installed (apt-get install avahi-daemon avahi-utils dbus): %v", cmd, err)
		}
	}
}

// Avahi is an avahi-daemon running inside a network namespace with a
// private D-Bus system bus of its own (neither systemd nor the system bus
// runs on the test machines, and avahi refuses to start without a bus;
// tooling.md, "avahi setup that worked").
type Avahi struct {
	// HostName is the host name avahi announces ("<HostName>.local.").
	HostName string
	// Env points avahi clients at the private bus.
	Env   []string
	netns string
}

// StartAvahi starts a private D-Bus system bus (its socket in a temporary
// directory) and avahi-daemon inside netns, answering on the interface
// iface only, with IPv4 and IPv6, and waits until avahi says its startup is
// complete. Both are killed at cleanup. Call RequireNetns and RequireAvahi
// first.
func StartAvahi(t *testing.T, netns, iface string) *Avahi {
	t.Helper()
	a := &Avahi{HostName: "pbt-avahi-" + RandHex(t, 3), netns: netns}
	dir := t.TempDir()
	sock := filepath.Join(dir, "system_bus_socket")
	busConf := filepath.Join(dir, "dbus-system.conf")
	writeFile(t, busConf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	// A path socket is reachable from every namespace, so the bus runs in
	// this one.
	bus := Start(t, "dbus-daemon", "", nil, "dbus-daemon", "--config-file="+busConf, "--nofork", "--print-address")
	bus.WaitLine(t, "its address", FindTimeout, func(l string) bool { return strings.HasPrefix(l, "unix:path="+sock) })
	a.Env = []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sock}

	conf := filepath.Join(dir, "avahi-daemon.conf")
	writeFile(t, conf, `[server]
host-name=`+a.HostName+`
allow-interfaces=`+iface+`
use-ipv4=yes
use-ipv6=yes
enable-dbus=yes

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes

[reflector]
enable-reflector=no
`)
	avahi := Start(t, "avahi-daemon", netns, a.Env,
		"avahi-daemon", "-f", conf, "--no-drop-root", "--no-chroot", "--no-rlimits", "--debug")
	avahi.WaitLine(t, "Server startup complete", FindTimeout, func(l string) bool {
		return strings.Contains(l, "Server startup complete")
	})
	return a
}

// Publish runs avahi-publish-service for instance of service on port with
// the TXT entries txt ("serial=…"), inside the daemon's namespace, and
// returns the process, when it started and when this test read avahi's
// "Established" line (which may come late). Killing the process withdraws
// the service.
func (a *Avahi) Publish(t *testing.T, instance, service string, port int, txt ...string) (p *Proc, started, established time.Time) {
	t.Helper()
	started = time.Now()
	argv := append([]string{"avahi-publish-service", "-s", instance, service, strconv.Itoa(port)}, txt...)
	p = Start(t, "avahi-publish-service", a.netns, a.Env, argv...)
	_, established = p.WaitLine(t, "Established", FindTimeout, func(l string) bool {
		return strings.Contains(l, "Established under name")
	})
	return p, started, established
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
