// Package cloud is posbridge's side of Kushki's cloud: the base URL of a
// terminal's cloud route (UAT or production), the HTTP settings for reaching
// Kushki over the Internet (system roots, TLS 1.2 or later, the environment's
// proxy, a short connect timeout), and a client of Kushki's raw card-present
// API (POST /pos/v1/transaction) that reverses a charge whose outcome is
// unknown (payment.Reverser).
//
// It does not send terminal Payment API requests: internal/terminal does, on
// the cloud route too, with the base URL from BaseURL. Vendor facts are from
// research/kushki-one.md §1 (base URLs) and §7 (raw card-present API), and
// seeds/kushki-pe-raw-card-present-void-reverse.txt.
package cloud

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environments, as the configuration key cloud.environment names them.
const (
	Production = "production"
	UAT        = "uat"
	Off        = "off"
)

// Cloud route roots (research/kushki-one.md §1, P-new); the terminal serial
// follows as a path segment.
const (
	ProductionRoot = "https://cloudt.kushkipagos.com/terminal/v1"
	UATRoot        = "https://uat-cloudt.kushkipagos.com/terminal/v1"
)

// Raw card-present API hosts (research/kushki-one.md §7).
const (
	RawProductionURL = "https://api.kushkipagos.com"
	RawUATURL        = "https://api-uat.kushkipagos.com"
)

// SerialPlaceholder is replaced by the terminal serial in an overriding
// cloud base URL.
const SerialPlaceholder = "{serial}"

// DefaultConnectTimeout bounds dial, proxy CONNECT and TLS handshake when no
// connect timeout is given.
const DefaultConnectTimeout = 5 * time.Second

// ErrOff is returned (wrapped) when the cloud is switched off.
var ErrOff = errors.New("cloud is off")

// BaseURL returns the cloud route base URL of the terminal serial:
// https://cloudt.kushkipagos.com/terminal/v1/{serial} in production,
// https://uat-cloudt.kushkipagos.com/terminal/v1/{serial} in uat. A non-empty
// override (configuration key cloud.base_url, for tests and proxies) replaces
// it: "{serial}" in it is replaced by the serial, and when it has no
// "{serial}" the serial is appended as a last path segment. The serial is
// path-escaped either way.
//
// It returns an error wrapping ErrOff for environment "off", and an error for
// an unknown environment, an empty serial, or an override that is not an
// absolute http(s) URL.
func BaseURL(environment, serial, override string) (string, error) {
	if serial == "" {
		return "", errors.New("cloud: base URL: empty terminal serial")
	}
	var root string
	switch environment {
	case Production:
		root = ProductionRoot
	case UAT:
		root = UATRoot
	case Off:
		return "", fmt.Errorf("cloud: base URL for %s: %w", serial, ErrOff)
	default:
		return "", fmt.Errorf("cloud: environment %q is not one of %s, %s, %s", environment, UAT, Production, Off)
	}
	esc := url.PathEscape(serial)
	if override == "" {
		return root + "/" + esc, nil
	}
	if err := checkURL(override); err != nil {
		return "", fmt.Errorf("cloud: base URL override: %w", err)
	}
	if strings.Contains(override, SerialPlaceholder) {
		return strings.TrimRight(strings.ReplaceAll(override, SerialPlaceholder, esc), "/"), nil
	}
	return strings.TrimRight(override, "/") + "/" + esc, nil
}

// RawBaseURL returns the raw card-present API host for environment:
// https://api.kushkipagos.com (production) or https://api-uat.kushkipagos.com
// (uat). A non-empty override (configuration key cloud.raw_api.base_url)
// wins whatever the environment, so recovery can use the raw API with the
// cloud route off. It returns an error wrapping ErrOff for "off" without an
// override, and an error for an unknown environment or an override that is
// not an absolute http(s) URL.
func RawBaseURL(environment, override string) (string, error) {
	if override != "" {
		if err := checkURL(override); err != nil {
			return "", fmt.Errorf("cloud: raw API base URL: %w", err)
		}
		return strings.TrimRight(override, "/"), nil
	}
	switch environment {
	case Production:
		return RawProductionURL, nil
	case UAT:
		return RawUATURL, nil
	case Off:
		return "", fmt.Errorf("cloud: raw API base URL: %w (set cloud.raw_api.base_url to use it anyway)", ErrOff)
	}
	return "", fmt.Errorf("cloud: environment %q is not one of %s, %s, %s", environment, UAT, Production, Off)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not allowed")
	}
	return nil
}

// HTTPTransport returns a new transport for Kushki's cloud APIs:
//   - TLS 1.2 or later, verified against the system roots;
//   - the proxy named by HTTPS_PROXY / HTTP_PROXY / NO_PROXY
//     (http.ProxyFromEnvironment);
//   - connectTimeout (DefaultConnectTimeout when ≤ 0) for the TCP connect
//     and again for the TLS handshake;
//   - a fresh connection for every request and no HTTP/2: Go's transport
//     silently re-sends a request only on a reused connection, so with none
//     a payment request can never go out twice, and "no connection was
//     made" reliably means "nothing was sent".
//
// The transport is safe for concurrent use.
func HTTPTransport(connectTimeout time.Duration) *http.Transport {
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    connectTimeout,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      false,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// HTTPClient returns a client on HTTPTransport(connectTimeout) that does not
// follow redirects: a redirect is not an answer from Kushki. Deadlines come
// from each request's context.
func HTTPClient(connectTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: HTTPTransport(connectTimeout),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
