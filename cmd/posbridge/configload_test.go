package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/configs"
	"github.com/posbridge/posbridge/internal/config"
)

// loadT loads path (or the dev configuration) with the configuration
// flags set from args, as a command would.
func loadT(t *testing.T, path string, dev bool, args ...string) (*config.Config, string, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	load := configFlags(fs)
	if path != "" {
		args = append(args, "--config", path)
	}
	if dev {
		args = append(args, "--dev")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	return load()
}

// baseYAML writes a valid configuration file with one terminal (and the
// defaults for everything else); extra is appended to it.
func baseYAML(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "posbridge.yaml")
	opsWriteFile(t, p, `terminals:
  - name: lane1
    serial: P3SN0001
    lan_address: 192.0.2.10:6868
    auth: hmac
    credential_file: /etc/posbridge/lane1.credential
    currency: PEN
`+extra)
	return p
}

// TestConfigPrecedence: defaults < file < POSBRIDGE_* environment < flags.
func TestConfigPrecedence(t *testing.T) {
	type layer struct{ file, env, flag string }
	tests := []struct {
		name  string
		key   string // the YAML key (dotted)
		flag  string // its flag, "" when it has none
		l     layer
		want  string
		field func(c *config.Config) string
	}{
		{"listen default", "listen", "listen", layer{}, "127.0.0.1:8740", func(c *config.Config) string { return c.Listen }},
		{"listen file", "listen", "listen", layer{file: "127.0.0.1:9001"}, "127.0.0.1:9001", func(c *config.Config) string { return c.Listen }},
		{"listen env over file", "listen", "listen", layer{file: "127.0.0.1:9001", env: "127.0.0.1:9002"}, "127.0.0.1:9002", func(c *config.Config) string { return c.Listen }},
		{"listen flag over env", "listen", "listen", layer{file: "127.0.0.1:9001", env: "127.0.0.1:9002", flag: "127.0.0.1:9003"}, "127.0.0.1:9003", func(c *config.Config) string { return c.Listen }},
		{"log.level env", "log.level", "log-level", layer{file: "warn", env: "error"}, "error", func(c *config.Config) string { return c.Log.Level }},
		{"log.level flag", "log.level", "log-level", layer{file: "warn", env: "error", flag: "debug"}, "debug", func(c *config.Config) string { return c.Log.Level }},
		{"data_dir flag", "data_dir", "data-dir", layer{file: "/srv/a", flag: "/srv/c"}, "/srv/c", func(c *config.Config) string { return c.DataDir }},
		{"nested duration env", "recovery.reverse_delay", "", layer{file: "2m", env: "90s"}, "1m30s", func(c *config.Config) string { return c.Recovery.ReverseDelay.String() }},
		{"nested duration file", "recovery.reverse_delay", "", layer{file: "2m"}, "2m0s", func(c *config.Config) string { return c.Recovery.ReverseDelay.String() }},
		{"bool env", "discovery.enabled", "", layer{file: "true", env: "false"}, "false", func(c *config.Config) string {
			return map[bool]string{true: "true", false: "false"}[c.Discovery.Enabled]
		}},
		{"list env", "api.allowed_hosts", "", layer{env: "pos.lan:8740,10.0.0.5:8740"}, "pos.lan:8740|10.0.0.5:8740", func(c *config.Config) string {
			return strings.Join(c.API.AllowedHosts, "|")
		}},
		{"key with underscores env", "cloud.raw_api.base_url", "", layer{env: "https://raw.example"}, "https://raw.example", func(c *config.Config) string {
			return c.Cloud.RawAPI.BaseURL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra string
			if tt.l.file != "" {
				extra = nested(tt.key, tt.l.file)
			}
			path := baseYAML(t, extra)
			if tt.l.env != "" {
				t.Setenv(envName(tt.key), tt.l.env)
			}
			var args []string
			if tt.l.flag != "" {
				args = []string{"--" + tt.flag, tt.l.flag}
			}
			cfg, _, err := loadT(t, path, false, args...)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if got := tt.field(cfg); got != tt.want {
				t.Errorf("%s: got %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// nested writes a dotted key as nested YAML.
func nested(key, value string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{"unknown top-level key", "lisen: 127.0.0.1:1\n", []string{"lisen"}},
		{"unknown nested key", "log:\n  levle: debug\n", []string{"levle"}},
		{"unknown key in a terminal", "", []string{"serail"}},
		{"bad value", "log:\n  level: loud\n", []string{"log.level", `"loud"`, "invalid configuration"}},
		{"several bad values", "log:\n  format: xml\nrecovery:\n  cutoff: \"25:00\"\n", []string{"log.format", "recovery.cutoff"}},
		{"bad duration", "timeouts:\n  response: soon\n", []string{"timeouts.response"}},
		{"not YAML", "\t- [\n", []string{"not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := baseYAML(t, tt.extra)
			if tt.name == "unknown key in a terminal" {
				b, _ := os.ReadFile(path)
				opsWriteFile(t, path, strings.Replace(string(b), "    serial:", "    serail: X\n    serial:", 1))
			}
			_, _, err := loadT(t, path, false)
			if err == nil {
				t.Fatalf("load: got nil, want an error naming %v", tt.want)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("load: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
	if _, _, err := loadT(t, filepath.Join(t.TempDir(), "missing.yaml"), false); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: got %v, want an error naming it", err)
	}
}

func TestConfigEmbeddedDev(t *testing.T) {
	cfg, source, err := loadT(t, "", true)
	if err != nil {
		t.Fatalf("--dev: %v", err)
	}
	if source != "embedded dev configuration" || len(cfg.Terminals) != 1 || cfg.Terminals[0].LANAddress != "127.0.0.1:6868" ||
		cfg.Discovery.Enabled || cfg.Listen != "127.0.0.1:8740" {
		t.Errorf("--dev: got %q %+v", source, cfg)
	}
	if _, _, err := loadT(t, baseYAML(t, ""), true); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("--dev with --config: got %v, want an error", err)
	}
}

// TestExampleConfigurationLoads: configs/posbridge.yaml is a valid
// configuration and names every key the code knows, so the example cannot
// fall behind the code.
func TestExampleConfigurationLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "posbridge.yaml")
	opsWriteFile(t, path, string(configs.Example))
	cfg, _, err := loadT(t, path, false)
	if err != nil {
		t.Fatalf("configs/posbridge.yaml: %v", err)
	}
	def := config.Default()
	if cfg.Listen != def.Listen || cfg.Timeouts != def.Timeouts || cfg.Recovery != def.Recovery || cfg.Log != def.Log {
		t.Errorf("configs/posbridge.yaml says it shows the defaults, but differs: got %+v", cfg)
	}
	text := string(configs.Example)
	for _, key := range configKeys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*(- )?` + regexp.QuoteMeta(leaf) + `:`).MatchString(text) {
			t.Errorf("configs/posbridge.yaml does not show key %s", key)
		}
	}
}

// envExampleLine is one line of configs/posbridge.env naming a variable,
// set or commented out: "POSBRIDGE_LISTEN=…" or "# POSBRIDGE_LISTEN=…".
var envExampleLine = regexp.MustCompile(`^#?\s*(POSBRIDGE_[A-Z0-9_]+)=(.*)$`)

// TestEnvironmentExample: configs/posbridge.env names the variable of every
// key that has one, names no variable that is not a key, and its values
// load and validate when set.
func TestEnvironmentExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "posbridge.env"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, k := range configKeys() {
		if k != "terminals" {
			known[envName(k)] = true
		}
	}
	named := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := envExampleLine.FindStringSubmatch(line); m != nil {
			if !known[m[1]] {
				t.Errorf("posbridge.env line %d: %s names no configuration key", n, m[1])
			}
			if strings.ContainsAny(m[2], `"'`) {
				t.Errorf("posbridge.env line %d: quotes are read literally by docker --env-file; write the value bare", n)
			}
			named[m[1]] = m[2]
			continue
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			t.Errorf("posbridge.env line %d: neither a comment nor POSBRIDGE_…=: %q", n, line)
		}
	}
	var missing []string
	for k := range known {
		if _, ok := named[k]; !ok {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("posbridge.env does not name %v", missing)
	}

	// Every example value, set at once over the example file, loads and
	// validates (the token file it names does not exist here; loading does
	// not read secrets).
	for k, v := range named {
		if v != "" {
			t.Setenv(k, v)
		}
	}
	path := filepath.Join(t.TempDir(), "posbridge.yaml")
	opsWriteFile(t, path, string(configs.Example))
	if _, _, err := loadT(t, path, false); err != nil {
		t.Errorf("configs/posbridge.yaml with every posbridge.env value set: %v", err)
	}
}

func TestConfigKeys(t *testing.T) {
	keys := configKeys()
	for _, want := range []string{"listen", "log.level", "cloud.raw_api.credential_file", "recovery.timezone", "terminals"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("configKeys: %s missing from %v", want, keys)
		}
	}
	if got := envName("cloud.raw_api.base_url"); got != "POSBRIDGE_CLOUD_RAW_API_BASE_URL" {
		t.Errorf("envName: got %s", got)
	}
}
