// Package config is posbridge's configuration: a plain struct with defaults and
// a Validate method that names the bad key and says why. Loading it from a YAML
// file, POSBRIDGE_* environment variables and flags (viper) happens in
// cmd/posbridge only; packages receive plain values.
//
// Secrets (terminal credentials, the API bearer token, the raw-API credential)
// never live in the file itself: the file names a file or an environment
// variable that holds them, and String/print paths redact them.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/posbridge/posbridge/internal/lan"
	"github.com/posbridge/posbridge/internal/money"
)

// Config is the whole configuration. Field tags are the YAML keys (and, upper
// cased with "." → "_", the POSBRIDGE_* environment names).
type Config struct {
	// Listen is the local REST API address. Loopback by default; any other
	// address requires api.token_file or api.token_env.
	Listen  string `mapstructure:"listen" yaml:"listen"`
	DataDir string `mapstructure:"data_dir" yaml:"data_dir"`

	API       API        `mapstructure:"api" yaml:"api"`
	Log       Log        `mapstructure:"log" yaml:"log"`
	Terminals []Terminal `mapstructure:"terminals" yaml:"terminals"`
	Discovery Discovery  `mapstructure:"discovery" yaml:"discovery"`
	Cloud     Cloud      `mapstructure:"cloud" yaml:"cloud"`
	Timeouts  Timeouts   `mapstructure:"timeouts" yaml:"timeouts"`
	Recovery  Recovery   `mapstructure:"recovery" yaml:"recovery"`
}

// API configures the local REST API's safety rails.
type API struct {
	// TokenFile or TokenEnv hold a bearer token. When set, every request
	// (but /healthz) must carry "Authorization: Bearer <token>".
	TokenFile string `mapstructure:"token_file" yaml:"token_file"`
	TokenEnv  string `mapstructure:"token_env" yaml:"token_env"`
	// AllowedHosts are extra Host header values accepted besides
	// 127.0.0.1:PORT, [::1]:PORT and localhost:PORT (DNS-rebinding defence).
	AllowedHosts []string `mapstructure:"allowed_hosts" yaml:"allowed_hosts"`
	// AllowedOrigins are browser origins allowed to call the API; requests
	// with any other Origin header are refused. Empty: no browser access.
	AllowedOrigins []string `mapstructure:"allowed_origins" yaml:"allowed_origins"`
	// MaxBodyBytes caps a request body (413 above it).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" yaml:"max_body_bytes"`
	// MaxWait caps a ?wait= long poll on GET /v1/transactions/{id}.
	MaxWait time.Duration `mapstructure:"max_wait" yaml:"max_wait"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug, info, warn, error
	Format string `mapstructure:"format" yaml:"format"` // auto (JSON under systemd or when not a terminal), json, console
}

// Terminal is one Kushki ONE terminal.
type Terminal struct {
	Name   string `mapstructure:"name" yaml:"name"`
	Serial string `mapstructure:"serial" yaml:"serial"`
	// LANAddress is host:port of the terminal's LAN API. Empty: discover it
	// by DNS-SD (matched by serial).
	LANAddress string `mapstructure:"lan_address" yaml:"lan_address"`
	// Auth is the terminal's authentication generation: hmac or encrypted.
	Auth string `mapstructure:"auth" yaml:"auth"`
	// CredentialFile or CredentialEnv hold the Private-Credential-Id (hmac)
	// or the business code (encrypted).
	CredentialFile string `mapstructure:"credential_file" yaml:"credential_file"`
	CredentialEnv  string `mapstructure:"credential_env" yaml:"credential_env"`
	Currency       string `mapstructure:"currency" yaml:"currency"`
	// Cloud enables the cloud route for this terminal (when cloud.environment
	// is not off).
	Cloud bool `mapstructure:"cloud" yaml:"cloud"`
}

// Discovery configures DNS-SD browsing for terminals.
type Discovery struct {
	Enabled    bool     `mapstructure:"enabled" yaml:"enabled"`
	Service    string   `mapstructure:"service" yaml:"service"`
	Domain     string   `mapstructure:"domain" yaml:"domain"`
	Interfaces []string `mapstructure:"interfaces" yaml:"interfaces"`
	// Interval between browses.
	Interval time.Duration `mapstructure:"interval" yaml:"interval"`
	// ProbeInterval between LAN health probes (TCP connect) while a terminal
	// is on the cloud route.
	ProbeInterval time.Duration `mapstructure:"probe_interval" yaml:"probe_interval"`
}

// Cloud configures the cloud route and Kushki's cloud APIs.
type Cloud struct {
	// Environment is uat, production or off.
	Environment string `mapstructure:"environment" yaml:"environment"`
	// BaseURL overrides the cloud sync base URL ({serial} is replaced by the
	// terminal serial). For tests and proxies.
	BaseURL string `mapstructure:"base_url" yaml:"base_url"`
	// RawAPI is Kushki's raw card-present API, used by recovery to reverse a
	// charge by client_transaction_id where its credential is configured.
	RawAPI RawAPI `mapstructure:"raw_api" yaml:"raw_api"`
}

// RawAPI configures the raw card-present API (POST /pos/v1/transaction).
type RawAPI struct {
	CredentialFile string `mapstructure:"credential_file" yaml:"credential_file"`
	CredentialEnv  string `mapstructure:"credential_env" yaml:"credential_env"`
	BaseURL        string `mapstructure:"base_url" yaml:"base_url"`
}

// Timeouts of terminal calls.
type Timeouts struct {
	// Connect bounds getting a connection on the cloud route and to
	// Kushki's raw API: dial, proxy CONNECT and TLS handshake across the
	// Internet.
	Connect time.Duration `mapstructure:"connect" yaml:"connect"`
	// LANConnect bounds the TCP connect to a terminal's LAN API, and the
	// LAN health probe. It is short because it is on the path of a
	// failover: when a LAN silently drops packets, the next operation waits
	// this long before it may go over the cloud. A LAN connect takes
	// milliseconds; 1.5 s still rides out one lost SYN (Linux resends it
	// after 1 s).
	LANConnect time.Duration `mapstructure:"lan_connect" yaml:"lan_connect"`
	Response   time.Duration `mapstructure:"response" yaml:"response"` // blocking payment operations
	Control    time.Duration `mapstructure:"control" yaml:"control"`   // abort and searches
}

// Recovery configures how unknown outcomes are settled.
type Recovery struct {
	// ReverseDelay is the mandatory wait after the original before an
	// abandoned approval is voided or reversed (vendor: at least 1 minute).
	ReverseDelay time.Duration `mapstructure:"reverse_delay" yaml:"reverse_delay"`
	// Abandoned is reverse (void/refund/reverse it) or report (leave it to a
	// person: needs_attention).
	Abandoned string `mapstructure:"abandoned" yaml:"abandoned"`
	// ClaimWindow is how long an approval found by recovery waits for the
	// POS to claim it before it counts as abandoned.
	ClaimWindow time.Duration `mapstructure:"claim_window" yaml:"claim_window"`
	// Budget is how long recovery keeps trying before needs_attention.
	Budget time.Duration `mapstructure:"budget" yaml:"budget"`
	// NotFoundGrace is added to timeouts.response: once a payment is that
	// old, no terminal can still be working on it, so "not in the
	// terminal's history" means it never ran (not_charged).
	NotFoundGrace time.Duration `mapstructure:"not_found_grace" yaml:"not_found_grace"`
	// Backoff bounds the wait between attempts.
	BackoffMin time.Duration `mapstructure:"backoff_min" yaml:"backoff_min"`
	BackoffMax time.Duration `mapstructure:"backoff_max" yaml:"backoff_max"`
	// Cutoff is the processor's daily cutoff (HH:MM in Timezone): after it,
	// an approval of that day is refunded instead of voided.
	Cutoff   string `mapstructure:"cutoff" yaml:"cutoff"`
	Timezone string `mapstructure:"timezone" yaml:"timezone"`
}

// Default returns the configuration used when a key is not set.
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8740",
		DataDir: "/var/lib/posbridge",
		API: API{
			MaxBodyBytes: 16 << 10,
			MaxWait:      150 * time.Second,
		},
		Log: Log{Level: "info", Format: "auto"},
		Discovery: Discovery{
			Enabled:       true,
			Service:       lan.DefaultService,
			Domain:        lan.DefaultDomain,
			Interval:      30 * time.Second,
			ProbeInterval: 2 * time.Second,
		},
		Cloud: Cloud{Environment: "off"},
		Timeouts: Timeouts{
			Connect:    3 * time.Second,
			LANConnect: 1500 * time.Millisecond,
			Response:   120 * time.Second,
			Control:    15 * time.Second,
		},
		Recovery: Recovery{
			ReverseDelay:  time.Minute,
			Abandoned:     "reverse",
			ClaimWindow:   2 * time.Minute,
			Budget:        30 * time.Minute,
			NotFoundGrace: 10 * time.Second,
			BackoffMin:    2 * time.Second,
			BackoffMax:    time.Minute,
			Cutoff:        "23:30",
			Timezone:      "America/Lima",
		},
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks every key and returns all problems at once, each naming
// the key and saying why ("terminals[0].currency: "USD" is not supported …").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		bad("listen", "%q is not host:port: %v", c.Listen, err)
	} else if !isLoopback(host) && c.API.TokenFile == "" && c.API.TokenEnv == "" {
		bad("listen", "%q is not a loopback address: set api.token_file or api.token_env so the API requires a bearer token", c.Listen)
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.API.TokenFile != "" && c.API.TokenEnv != "" {
		bad("api", "set token_file or token_env, not both")
	}
	if c.API.MaxBodyBytes < 1024 || c.API.MaxBodyBytes > 1<<20 {
		bad("api.max_body_bytes", "%d is outside 1024..1048576", c.API.MaxBodyBytes)
	}
	if c.API.MaxWait <= 0 {
		bad("api.max_wait", "must be positive")
	}
	for i, o := range c.API.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			bad(fmt.Sprintf("api.allowed_origins[%d]", i), "%q must be an origin such as https://pos.example", o)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		bad("log.format", "%q is not one of auto, json, console", c.Log.Format)
	}

	if len(c.Terminals) == 0 {
		bad("terminals", "at least one terminal must be configured")
	}
	names, serials := map[string]bool{}, map[string]bool{}
	for i, t := range c.Terminals {
		key := fmt.Sprintf("terminals[%d]", i)
		if !nameRE.MatchString(t.Name) {
			bad(key+".name", "%q must be 1-32 of a-z, 0-9, '-' or '_', starting with a letter or digit", t.Name)
		} else if names[t.Name] {
			bad(key+".name", "%q is used twice", t.Name)
		}
		names[t.Name] = true
		if t.Serial == "" {
			bad(key+".serial", "must be set (it matches the terminal in DNS-SD and names it on the cloud route)")
		} else if serials[t.Serial] {
			bad(key+".serial", "%q is used twice", t.Serial)
		}
		serials[t.Serial] = true
		if t.LANAddress != "" {
			if _, _, err := net.SplitHostPort(t.LANAddress); err != nil {
				bad(key+".lan_address", "%q is not host:port", t.LANAddress)
			}
		}
		switch t.Auth {
		case "hmac", "encrypted":
		default:
			bad(key+".auth", "%q is not one of hmac, encrypted", t.Auth)
		}
		switch {
		case t.CredentialFile == "" && t.CredentialEnv == "":
			bad(key, "set credential_file or credential_env (the credential itself never goes in this file)")
		case t.CredentialFile != "" && t.CredentialEnv != "":
			bad(key, "set credential_file or credential_env, not both")
		}
		if _, ok := money.Currency(t.Currency).Places(); !ok {
			bad(key+".currency", "%q is not supported (CLP, COP, MXN, PEN)", t.Currency)
		}
		if t.LANAddress == "" && !c.Discovery.Enabled && !(t.Cloud && c.Cloud.Environment != "off") {
			bad(key, "no route: set lan_address, enable discovery, or enable the cloud route")
		}
	}

	if c.Discovery.Enabled {
		// The Browser's own check, so that what passes here also browses;
		// and TCP, since a terminal's API is HTTP.
		if svc := c.Discovery.Service; !lan.ValidService(svc) || !strings.HasSuffix(strings.TrimSuffix(svc, "."), "._tcp") {
			bad("discovery.service", "%q is not a DNS-SD service type such as _kushki-one._tcp", c.Discovery.Service)
		}
		if c.Discovery.Interval < time.Second {
			bad("discovery.interval", "must be at least 1s")
		}
	}
	if c.Discovery.ProbeInterval < 100*time.Millisecond {
		bad("discovery.probe_interval", "must be at least 100ms")
	}
	switch c.Cloud.Environment {
	case "uat", "production", "off":
	default:
		bad("cloud.environment", "%q is not one of uat, production, off", c.Cloud.Environment)
	}
	if c.Cloud.BaseURL != "" && !strings.HasPrefix(c.Cloud.BaseURL, "http") {
		bad("cloud.base_url", "%q is not an http(s) URL", c.Cloud.BaseURL)
	}
	if r := c.Cloud.RawAPI; r.CredentialFile != "" && r.CredentialEnv != "" {
		bad("cloud.raw_api", "set credential_file or credential_env, not both")
	}

	if c.Timeouts.Connect <= 0 || c.Timeouts.Connect > time.Minute {
		bad("timeouts.connect", "%v is outside (0, 1m]", c.Timeouts.Connect)
	}
	if c.Timeouts.LANConnect <= 0 || c.Timeouts.LANConnect > time.Minute {
		bad("timeouts.lan_connect", "%v is outside (0, 1m]", c.Timeouts.LANConnect)
	}
	if c.Timeouts.Response < 5*time.Second {
		bad("timeouts.response", "%v is too short for a customer to pay (at least 5s; 120s is usual)", c.Timeouts.Response)
	}
	if c.Timeouts.Control <= 0 {
		bad("timeouts.control", "must be positive")
	}

	r := c.Recovery
	if r.ReverseDelay < 0 {
		bad("recovery.reverse_delay", "must not be negative")
	}
	switch r.Abandoned {
	case "reverse", "report":
	default:
		bad("recovery.abandoned", "%q is not one of reverse, report", r.Abandoned)
	}
	if r.ClaimWindow < 0 {
		bad("recovery.claim_window", "must not be negative")
	}
	if r.Budget <= 0 {
		bad("recovery.budget", "must be positive")
	}
	if r.NotFoundGrace <= 0 {
		bad("recovery.not_found_grace", "must be positive")
	}
	if r.BackoffMin <= 0 || r.BackoffMax < r.BackoffMin {
		bad("recovery.backoff_min", "must be positive and not above backoff_max")
	}
	if _, err := time.Parse("15:04", r.Cutoff); err != nil {
		bad("recovery.cutoff", "%q is not HH:MM", r.Cutoff)
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil {
		bad("recovery.timezone", "%q: %v", r.Timezone, err)
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Secret reads a secret from a file (trailing newline trimmed) or an
// environment variable. what names it in errors; the value is never included.
func Secret(what, file, env string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: read credential file: %w", what, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("%s: credential file %s is empty", what, file)
		}
		return s, nil
	case env != "":
		s := os.Getenv(env)
		if s == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, env)
		}
		return s, nil
	}
	return "", fmt.Errorf("%s: no credential configured", what)
}

// Location returns the recovery timezone (Validate has checked it).
func (r Recovery) Location() *time.Location {
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
