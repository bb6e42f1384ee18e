package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	// health, like serve, validates the configuration, and validation loads
	// recovery.timezone: the container image has no zoneinfo, so the binary
	// carries its own.
	_ "time/tzdata"

	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/config"
)

// healthBodyLimit caps how much of a /readyz answer is read and printed.
const healthBodyLimit = 64 << 10

const healthUsage = `usage: posbridge health [flags]

Asks a running daemon whether it is ready: GET /readyz, with the API bearer
token when one is configured. Exits 0 when the daemon answers 200 with
{"ready": true, ...}, 1 when it is not ready, cannot be reached or the
configuration cannot be read, 2 on a bad command line. The daemon's JSON
answer (which checks failed) is printed on stdout. Used by the container
HEALTHCHECK and by people.

The URL defaults to http://<listen>/readyz from the configuration (a
wildcard listen address such as 0.0.0.0 is asked on 127.0.0.1). With --url
and no configuration file, no token is sent.

Flags:
`

// runHealth implements "posbridge health".
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("posbridge health", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	load := configFlags(fs)
	rawURL := fs.String("url", "", "readiness URL (default http://<listen>/readyz from the configuration)")
	host := fs.String("host", "", "Host header to send (default: the URL's host, or localhost:PORT when the daemon would refuse it)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, healthUsage+fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "posbridge health: %v\n\n%s%s", err, healthUsage, fs.FlagUsages())
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "posbridge health: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "posbridge health: --timeout must be positive")
		return exitUsage
	}

	// The configuration gives the address and the token. An explicit --url
	// needs it only when a configuration was asked for or is installed.
	var cfg *config.Config
	if *rawURL == "" || fs.Changed("config") || fs.Changed("dev") || fileExists(defaultConfigPath) {
		c, _, err := load()
		if err != nil {
			fmt.Fprintf(stderr, "posbridge health: %v\n", err)
			return exitFailure
		}
		cfg = c
	}

	target := *rawURL
	if target == "" {
		u, err := readyURL(cfg.Listen)
		if err != nil {
			fmt.Fprintf(stderr, "posbridge health: %v\n", err)
			return exitFailure
		}
		target = u
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "posbridge health: --url %q is not an http(s) URL\n", target)
		return exitUsage
	}

	req := healthRequest{url: u, host: *host}
	if cfg != nil {
		req.allowedHosts = cfg.API.AllowedHosts
		if cfg.API.TokenFile != "" || cfg.API.TokenEnv != "" {
			tok, err := config.Secret("api token", cfg.API.TokenFile, cfg.API.TokenEnv)
			if err != nil {
				fmt.Fprintf(stderr, "posbridge health: %v\n", err)
				return exitFailure
			}
			req.token = tok
		}
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := req.do(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge health: not reachable: %v\n", err)
		return exitFailure
	}
	if len(res.body) > 0 {
		fmt.Fprintln(stdout, string(res.body))
	}
	if !res.ready {
		fmt.Fprintf(stderr, "posbridge health: not ready: %s: %s\n", u.Redacted(), res.why)
		return exitFailure
	}
	return exitOK
}

// healthRequest is one readiness query.
type healthRequest struct {
	url          *url.URL
	host         string   // Host header override; empty: chosen by hostHeader
	allowedHosts []string // api.allowed_hosts of the configuration
	token        string   // bearer token; empty: none sent
}

// healthResult is what the daemon answered.
type healthResult struct {
	ready bool
	why   string // when not ready: the status, or why the body does not say ready
	body  []byte // the answer, compacted to one line when it is JSON
}

// do sends the query. It returns an error only when no answer came back
// (refused, timed out, reset); any answer, whatever its status, is a result.
func (h healthRequest) do(ctx context.Context) (healthResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url.String(), nil)
	if err != nil {
		return healthResult{}, fmt.Errorf("build request: %w", err)
	}
	req.Host = h.host
	if req.Host == "" {
		req.Host = hostHeader(h.url, h.allowedHosts)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "posbridge-health/"+version)
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	client := &http.Client{
		// No proxy from the environment: the token goes to the daemon only.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect is not a readiness answer, and following it could
		// carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return healthResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	if err != nil {
		return healthResult{}, fmt.Errorf("read answer: %w", err)
	}
	return judgeReadiness(resp.StatusCode, raw), nil
}

// judgeReadiness decides from a /readyz answer. Ready means status 200 and a
// JSON body whose "ready" is true: a 200 from something that is not
// posbridge's /readyz (another service on the port, a proxy page) is not
// ready.
func judgeReadiness(status int, raw []byte) healthResult {
	raw = bytes.TrimSpace(raw)
	res := healthResult{body: raw}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) == nil {
		res.body = compact.Bytes()
	}
	if status != http.StatusOK {
		res.why = fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
		return res
	}
	var body struct {
		Ready *bool `json:"ready"`
	}
	switch err := json.Unmarshal(raw, &body); {
	case err != nil:
		res.why = "HTTP 200 but the answer is not a JSON object"
	case body.Ready == nil:
		res.why = `HTTP 200 but the answer has no "ready" field`
	case !*body.Ready:
		res.why = `HTTP 200 but the answer says "ready": false`
	default:
		res.ready = true
	}
	return res
}

// readyURL returns the /readyz URL of a daemon listening on listen. A
// wildcard or empty host (0.0.0.0, ::) is asked on 127.0.0.1, which Go's
// wildcard listeners also serve.
func readyURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %w", listen, err)
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// hostHeader returns the Host header for u. The daemon accepts
// 127.0.0.1:PORT, [::1]:PORT, localhost:PORT and api.allowed_hosts (its
// DNS-rebinding defence), so the URL's own host is kept when it is one of
// those, and localhost:PORT is sent otherwise.
func hostHeader(u *url.URL, allowed []string) string {
	name := u.Hostname()
	if name == "localhost" {
		return u.Host
	}
	if a, err := netip.ParseAddr(name); err == nil && a.IsLoopback() {
		return u.Host
	}
	for _, h := range allowed {
		if strings.EqualFold(h, u.Host) {
			return u.Host
		}
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort("localhost", port)
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
