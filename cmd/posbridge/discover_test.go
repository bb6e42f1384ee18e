package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grandcat/zeroconf"
)

// These tests run "posbridge discover" against real mDNS on loopback only
// (explicit lo; the host's network interfaces are never used), each with a
// service type nobody else advertises.

func discoverRand(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// discoverAdvertise advertises a terminal on lo the way the simulator does
// (RegisterProxy with the explicit interface and a loopback IP).
func discoverAdvertise(t *testing.T, instance, service, serial, ip string, port int) {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("skipped: no interface lo: %v", err)
	}
	s, err := zeroconf.RegisterProxy(instance, service, "local.", port, "pbt-cli", []string{ip},
		[]string{"txtv=1", "serial=" + serial}, []net.Interface{*lo})
	if err != nil {
		t.Fatalf("register on lo: %v", err)
	}
	t.Cleanup(s.Shutdown)
}

func runDiscoverT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"discover"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDiscoverCommandTableWithNames(t *testing.T) {
	t.Parallel()
	svc := "_pbt" + discoverRand(t, 4) + "._tcp"
	serial, other := "PBT"+strings.ToUpper(discoverRand(t, 4)), "PBT"+strings.ToUpper(discoverRand(t, 4))
	discoverAdvertise(t, "Lane one", svc, serial, "127.0.0.1", 6868)
	discoverAdvertise(t, "stranger", svc, other, "127.0.0.3", 7000)

	dir := t.TempDir()
	path := filepath.Join(dir, "posbridge.yaml")
	yaml := `data_dir: ` + dir + `
terminals:
  - name: lane1
    serial: "` + serial + `"
    auth: hmac
    credential_env: POSBRIDGE_TEST_UNUSED
    currency: PEN
  - name: lane2
    serial: "PBTNOTTHERE"
    auth: hmac
    credential_env: POSBRIDGE_TEST_UNUSED
    currency: PEN
discovery:
  service: ` + svc + `
  interfaces: [lo]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDiscoverT(t, "--config", path, "--timeout", "5s")
	if code != exitOK {
		t.Fatalf("exit code: got %d, want 0; stderr:\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) >= 6 {
			rows[f[1]] = f
		}
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "NAME SERIAL ADDRESS PORT SERVICE INSTANCE" {
		t.Errorf("header: got %q, want NAME SERIAL ADDRESS PORT SERVICE INSTANCE", lines[0])
	}
	want := map[string]string{
		serial: "lane1 " + serial + " 127.0.0.1 6868 " + svc + " Lane one",
		other:  "- " + other + " 127.0.0.3 7000 " + svc + " stranger",
	}
	for s, w := range want {
		if got := strings.Join(rows[s], " "); got != w {
			t.Errorf("row for %s: got %q, want %q\noutput:\n%s", s, got, w, out)
		}
	}
	if len(lines) != 3 {
		t.Errorf("output: got %d lines, want a header and 2 rows:\n%s", len(lines), out)
	}
	if !strings.Contains(errOut, "lane2 (serial PBTNOTTHERE) did not answer") {
		t.Errorf("stderr: got %q, want a note that lane2 did not answer", errOut)
	}
}

func TestDiscoverCommandJSONWithoutConfiguration(t *testing.T) {
	t.Parallel()
	svc := "_pbt" + discoverRand(t, 4) + "._tcp"
	serial := "PBT" + strings.ToUpper(discoverRand(t, 4))
	discoverAdvertise(t, "lane", svc, serial, "127.0.0.1", 6868)

	code, out, errOut := runDiscoverT(t, "--iface", "lo", "--service", svc, "--timeout", "5s", "--json")
	if code != exitOK {
		t.Fatalf("exit code: got %d, want 0; stderr:\n%s", code, errOut)
	}
	var got []struct {
		Name      string   `json:"name"`
		Serial    string   `json:"serial"`
		Address   string   `json:"address"`
		Addresses []string `json:"addresses"`
		Port      int      `json:"port"`
		Service   string   `json:"service"`
		Instance  string   `json:"instance"`
		Host      string   `json:"host"`
		LastSeen  string   `json:"last_seen"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(got) != 1 {
		t.Fatalf("got %d entries, want 1:\n%s", len(got), out)
	}
	g := got[0]
	if g.Name != "" || g.Serial != serial || g.Address != "127.0.0.1:6868" || g.Port != 6868 || g.Service != svc ||
		g.Instance != "lane" || g.Host != "pbt-cli.local." || len(g.Addresses) != 1 || g.LastSeen == "" {
		t.Errorf("entry: got %+v, want serial %s at 127.0.0.1:6868, service %s, instance lane, host pbt-cli.local., no name", g, serial, svc)
	}
}

func TestDiscoverCommandNothingAnswers(t *testing.T) {
	t.Parallel()
	svc := "_pbt" + discoverRand(t, 4) + "._tcp"
	for _, args := range [][]string{
		{"--iface", "lo", "--service", svc, "--timeout", "2s"},
		{"--iface", "lo", "--service", svc, "--timeout", "2s", "--json"},
	} {
		code, out, errOut := runDiscoverT(t, args...)
		if code != exitFailure {
			t.Errorf("%v: exit code: got %d, want 1", args, code)
		}
		if !strings.Contains(errOut, "nothing answered for "+svc+" on lo within 2s") {
			t.Errorf("%v: stderr: got %q, want it to say nothing answered", args, errOut)
		}
		if want := map[bool]string{false: "", true: "[]\n"}[len(args) == 7]; out != want {
			t.Errorf("%v: stdout: got %q, want %q", args, out, want)
		}
	}
}

func TestDiscoverCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "help", args: []string{"--help"}, code: exitOK, stdout: "--iface stringArray"},
		{name: "unknown flag", args: []string{"--bogus"}, code: exitUsage, stderr: "unknown flag: --bogus"},
		{name: "argument", args: []string{"lane1"}, code: exitUsage, stderr: `unexpected argument "lane1"`},
		{name: "zero timeout", args: []string{"--timeout", "0s"}, code: exitUsage, stderr: "--timeout must be positive"},
		{name: "bad service", args: []string{"--service", "kushki", "--iface", "lo"}, code: exitUsage, stderr: `--service "kushki" is not a DNS-SD service type`},
		{name: "unknown interface", args: []string{"--iface", "pbt-nonexistent", "--timeout", "1s"}, code: exitFailure, stderr: `interface "pbt-nonexistent"`},
		{name: "missing configuration", args: []string{"--config", "/nonexistent/posbridge.yaml", "--iface", "lo"}, code: exitFailure, stderr: "read configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runDiscoverT(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tc.code, errOut)
			}
			if !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("got stdout %q stderr %q; want them to contain %q and %q", out, errOut, tc.stdout, tc.stderr)
			}
		})
	}
}
