package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestConfigPrintRoundTrip: config print's output is the effective
// configuration (file, environment and flags applied) and is itself a
// configuration file that loads to the same values.
func TestConfigPrintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cred := filepath.Join(dir, "lane1.credential")
	opsWriteFile(t, cred, "terminal-secret-value-123\n")
	path := filepath.Join(dir, "posbridge.yaml")
	opsWriteFile(t, path, `listen: 127.0.0.1:9001
data_dir: `+dir+`
api:
  token_env: PRINT_TEST_TOKEN
  allowed_hosts: [pos.lan:9001]
terminals:
  - name: lane1
    serial: P3SN0001
    auth: hmac
    credential_file: `+cred+`
    currency: PEN
    cloud: true
cloud:
  environment: uat
  base_url: https://proxyuser:proxy-password-456@proxy.example/terminal/v1/{serial}
  raw_api:
    credential_env: PRINT_TEST_RAW
    base_url: https://rawuser:raw-password-789@raw.example
recovery:
  abandoned: report
`)
	t.Setenv("PRINT_TEST_TOKEN", "api-token-value-abc")
	t.Setenv("PRINT_TEST_RAW", "raw-credential-value-def")
	t.Setenv("POSBRIDGE_RECOVERY_BUDGET", "45m")

	code, out, stderr := opsRunCLI(t, "config", "print", "--config", path, "--log-level", "debug")
	if code != exitOK {
		t.Fatalf("config print: got exit %d, %q", code, stderr)
	}
	for _, want := range []string{
		"# from: " + path,
		"# overridden by environment: POSBRIDGE_RECOVERY_BUDGET",
		"# overridden by flags: --log-level",
		"budget: 45m0s", "level: debug", "abandoned: report",
		"credential_file: " + cred, "token_env: PRINT_TEST_TOKEN", "credential_env: PRINT_TEST_RAW",
		"https://proxyuser:xxxxx@proxy.example/terminal/v1/{serial}", "https://rawuser:xxxxx@raw.example",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config print: output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"terminal-secret-value-123", "api-token-value-abc", "raw-credential-value-def",
		"proxy-password-456", "raw-password-789"} {
		if strings.Contains(out+stderr, secret) {
			t.Errorf("config print: shows the secret %q", secret)
		}
	}

	// Load what was printed (without the environment and flags that made
	// it): the same configuration, but for the redacted passwords.
	os.Unsetenv("POSBRIDGE_RECOVERY_BUDGET")
	printed := filepath.Join(dir, "printed.yaml")
	opsWriteFile(t, printed, out)
	want, _, err := loadT(t, path, false, "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	want.Recovery.Budget = 45 * 60e9
	got, _, err := loadT(t, printed, false)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v", err)
	}
	// Compared as YAML: an empty list may come back as nil or as [].
	gotY, err1 := yaml.Marshal(*got)
	wantY, err2 := yaml.Marshal(redacted(*want))
	if err1 != nil || err2 != nil || string(gotY) != string(wantY) {
		t.Errorf("printed configuration: got\n%s\nwant\n%s", gotY, wantY)
	}
	if got.Cloud.BaseURL != "https://proxyuser:xxxxx@proxy.example/terminal/v1/{serial}" {
		t.Errorf("cloud.base_url: got %q, want the {serial} placeholder kept", got.Cloud.BaseURL)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	cred := filepath.Join(dir, "lane1.credential")
	good := func(credLine string) string {
		p := filepath.Join(t.TempDir(), "posbridge.yaml")
		opsWriteFile(t, p, `data_dir: `+dir+`
terminals:
  - {name: lane1, serial: P3SN0001, auth: hmac, `+credLine+`, currency: PEN}
`)
		return p
	}
	opsWriteFile(t, cred, "secret-in-file\n")
	opsWriteFile(t, filepath.Join(dir, "empty.credential"), "\n")
	t.Setenv("VALIDATE_TEST_CRED", "secret-in-env")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string // in stdout+stderr
	}{
		{"credential file", []string{"--config", good("credential_file: " + cred)}, nil, exitOK, []string{"configuration ok"}},
		{"credential env", []string{"--config", good("credential_env: VALIDATE_TEST_CRED")}, nil, exitOK, []string{"configuration ok"}},
		{"missing credential file", []string{"--config", good("credential_file: " + dir + "/nope")}, nil, exitFailure,
			[]string{"terminals[0]: terminal lane1: read credential file", "secrets cannot be read"}},
		{"empty credential file", []string{"--config", good("credential_file: " + dir + "/empty.credential")}, nil, exitFailure,
			[]string{"terminals[0]", "is empty"}},
		{"unset credential env", []string{"--config", good("credential_env: VALIDATE_TEST_UNSET")}, nil, exitFailure,
			[]string{"terminals[0]", "VALIDATE_TEST_UNSET is empty or unset"}},
		{"no-secrets skips them", []string{"--no-secrets", "--config", good("credential_env: VALIDATE_TEST_UNSET")}, nil, exitOK,
			[]string{"configuration ok"}},
		{"bad values", []string{"--config", good("credential_file: " + cred + ", lan_address: nope"), "--log-level", "loud"}, nil, exitFailure,
			[]string{"terminals[0].lan_address", "log.level", "invalid configuration"}},
		{"unknown environment variable", []string{"--config", good("credential_file: " + cred)},
			map[string]string{"POSBRIDGE_LOGLEVEL": "debug"}, exitOK,
			[]string{"warning: environment variable POSBRIDGE_LOGLEVEL names no configuration key"}},
		{"dev", []string{"--dev"}, nil, exitOK, []string{"configuration ok: embedded dev configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := opsRunCLI(t, append([]string{"config", "validate"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit: got %d, want %d (%q %q)", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("got %q %q, want %q", stdout, stderr, w)
				}
			}
			for _, secret := range []string{"secret-in-file", "secret-in-env"} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("validate printed the secret %q", secret)
				}
			}
		})
	}
}

func TestConfigCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"config"}, exitUsage, "usage: posbridge config"},
		{[]string{"config", "--help"}, exitOK, "print     the effective configuration"},
		{[]string{"config", "edit"}, exitUsage, `unknown command "edit"`},
		{[]string{"config", "print", "--help"}, exitOK, "replaced by xxxxx"},
		{[]string{"config", "validate", "-h"}, exitOK, "--no-secrets"},
		{[]string{"config", "print", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"config", "print", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"config", "print", "--config", "/nonexistent/posbridge.yaml"}, exitFailure, "read configuration"},
	}
	for _, tt := range tests {
		code, stdout, stderr := opsRunCLI(t, tt.args...)
		where := stderr
		if code == exitOK {
			where = stdout
		}
		if code != tt.code || !strings.Contains(where, tt.in) {
			t.Errorf("%v: got exit %d, stdout %q, stderr %q; want %d and %q", tt.args, code, stdout, stderr, tt.code, tt.in)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "",
		"https://cloudt.kushkipagos.com/x":       "https://cloudt.kushkipagos.com/x",
		"https://user@proxy.example":             "https://user@proxy.example",
		"https://user:pw@proxy.example/{serial}": "https://user:xxxxx@proxy.example/{serial}",
		"http://u:p@h:1/x?y=1":                   "http://u:xxxxx@h:1/x?y=1",
		"http://u:p@h:bad port":                  "xxxxx",
		"https://u:p@ss@host/a@b":                "https://u:xxxxx@host/a@b",
		"HTTP://u%40x:p@host":                    "HTTP://u%40x:xxxxx@host",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q): got %q, want %q", in, got, want)
		}
	}
}
