package config

import (
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Default()
	c.Terminals = []Terminal{{
		Name: "lane1", Serial: "P3SN0001", Auth: "hmac",
		CredentialFile: "/etc/posbridge/lane1.credential", Currency: "PEN",
	}}
	return c
}

func TestValidateAcceptsDefaultsWithOneTerminal(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateNamesTheBadKey(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // the key (and reason) the error must name
	}{
		{"listen not host:port", func(c *Config) { c.Listen = "8740" }, "listen:"},
		{"public listen without token", func(c *Config) { c.Listen = "0.0.0.0:8740" }, "not a loopback address"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data_dir: must be set"},
		{"both token sources", func(c *Config) { c.API.TokenFile, c.API.TokenEnv = "/t", "T" }, "api: set token_file or token_env, not both"},
		{"tiny body cap", func(c *Config) { c.API.MaxBodyBytes = 10 }, "api.max_body_bytes"},
		{"origin not an origin", func(c *Config) { c.API.AllowedOrigins = []string{"pos.example"} }, "api.allowed_origins[0]"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"no terminals", func(c *Config) { c.Terminals = nil }, "terminals: at least one"},
		{"bad name", func(c *Config) { c.Terminals[0].Name = "Lane 1" }, "terminals[0].name"},
		{"duplicate name", func(c *Config) { c.Terminals = append(c.Terminals, c.Terminals[0]) }, "terminals[1].name"},
		{"no serial", func(c *Config) { c.Terminals[0].Serial = "" }, "terminals[0].serial"},
		{"bad lan address", func(c *Config) { c.Terminals[0].LANAddress = "10.0.0.1" }, "terminals[0].lan_address"},
		{"bad auth", func(c *Config) { c.Terminals[0].Auth = "basic" }, "terminals[0].auth"},
		{"no credential", func(c *Config) { c.Terminals[0].CredentialFile = "" }, "credential_file or credential_env"},
		{"two credentials", func(c *Config) { c.Terminals[0].CredentialEnv = "X" }, "not both"},
		{"currency", func(c *Config) { c.Terminals[0].Currency = "USD" }, `terminals[0].currency: "USD" is not supported`},
		{"no route", func(c *Config) { c.Discovery.Enabled = false }, "no route"},
		{"service type", func(c *Config) { c.Discovery.Service = "kushki" }, "discovery.service"},
		// Both passed Validate once, then stopped serve at start in lan.Browser.Open.
		{"service type with a domain", func(c *Config) { c.Discovery.Service = "_kushki-one._tcp.local." }, "discovery.service"},
		{"service name too long", func(c *Config) { c.Discovery.Service = "_kushki-one-terminal._tcp" }, "discovery.service"},
		{"udp service", func(c *Config) { c.Discovery.Service = "_kushki-one._udp" }, "discovery.service"},
		{"cloud environment", func(c *Config) { c.Cloud.Environment = "staging" }, "cloud.environment"},
		{"cloud base url", func(c *Config) { c.Cloud.BaseURL = "ftp://x" }, "cloud.base_url"},
		{"connect timeout", func(c *Config) { c.Timeouts.Connect = 0 }, "timeouts.connect"},
		{"lan connect timeout zero", func(c *Config) { c.Timeouts.LANConnect = 0 }, "timeouts.lan_connect: 0s is outside"},
		{"lan connect timeout too long", func(c *Config) { c.Timeouts.LANConnect = 2 * time.Minute }, "timeouts.lan_connect: 2m0s is outside"},
		{"response timeout", func(c *Config) { c.Timeouts.Response = time.Second }, "timeouts.response"},
		{"abandoned policy", func(c *Config) { c.Recovery.Abandoned = "ignore" }, "recovery.abandoned"},
		{"budget", func(c *Config) { c.Recovery.Budget = 0 }, "recovery.budget"},
		{"backoff", func(c *Config) { c.Recovery.BackoffMax = time.Millisecond }, "recovery.backoff_min"},
		{"cutoff", func(c *Config) { c.Recovery.Cutoff = "25:99" }, "recovery.cutoff"},
		{"timezone", func(c *Config) { c.Recovery.Timezone = "Mars/Olympus" }, "recovery.timezone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate: got nil, want an error naming %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := valid()
	c.Listen, c.Log.Level, c.Terminals[0].Currency = "nope", "loud", "USD"
	err := c.Validate()
	for _, key := range []string{"listen:", "log.level:", "terminals[0].currency:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: got %v, want it to name %s", err, key)
		}
	}
}

func TestPublicListenWithTokenIsAllowed(t *testing.T) {
	c := valid()
	c.Listen, c.API.TokenEnv = "0.0.0.0:8740", "POSBRIDGE_TOKEN"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSBRIDGE_TEST_SECRET", "s3cr3t")
	if got, err := Secret("lane1", "", "POSBRIDGE_TEST_SECRET"); err != nil || got != "s3cr3t" {
		t.Errorf("Secret(env): got %q, %v; want s3cr3t", got, err)
	}
	if _, err := Secret("lane1", dir+"/missing", ""); err == nil {
		t.Error("Secret(missing file): got nil error")
	}
	_, err := Secret("lane1", "", "POSBRIDGE_TEST_UNSET_VARIABLE")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Secret(unset env): got %v, want an error without the value", err)
	}
}
