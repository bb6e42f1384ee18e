package cloud

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name, env, serial, override string
		want                        string
		wantErr                     string
		off                         bool
	}{
		{name: "production", env: "production", serial: "P3SN0001", want: "https://cloudt.kushkipagos.com/terminal/v1/P3SN0001"},
		{name: "uat", env: "uat", serial: "P3SN0001", want: "https://uat-cloudt.kushkipagos.com/terminal/v1/P3SN0001"},
		{name: "serial escaped", env: "uat", serial: "P3 SN/1", want: "https://uat-cloudt.kushkipagos.com/terminal/v1/P3%20SN%2F1"},
		{name: "override with placeholder", env: "uat", serial: "P3SN0001", override: "http://127.0.0.1:8080/terminal/v1/{serial}", want: "http://127.0.0.1:8080/terminal/v1/P3SN0001"},
		{name: "placeholder mid-path", env: "production", serial: "S1", override: "https://proxy.example/{serial}/kushki/", want: "https://proxy.example/S1/kushki"},
		{name: "override without placeholder appends", env: "uat", serial: "P3SN0001", override: "http://127.0.0.1:8080/terminal/v1/", want: "http://127.0.0.1:8080/terminal/v1/P3SN0001"},
		{name: "off", env: "off", serial: "P3SN0001", wantErr: "cloud is off", off: true},
		{name: "off even with override", env: "off", serial: "P3SN0001", override: "http://127.0.0.1:1/{serial}", wantErr: "cloud is off", off: true},
		{name: "unknown environment", env: "staging", serial: "P3SN0001", wantErr: `environment "staging"`},
		{name: "empty serial", env: "uat", wantErr: "empty terminal serial"},
		{name: "relative override", env: "uat", serial: "S", override: "/terminal/v1", wantErr: "not an absolute http(s) URL"},
		{name: "ftp override", env: "uat", serial: "S", override: "ftp://h/x", wantErr: "not an absolute http(s) URL"},
		{name: "credentials in override", env: "uat", serial: "S", override: "https://u:p@h/x", wantErr: "credentials in the URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseURL(tc.env, tc.serial, tc.override)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if errors.Is(err, ErrOff) != tc.off {
					t.Errorf("errors.Is(err, ErrOff): got %v, want %v", !tc.off, tc.off)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRawBaseURL(t *testing.T) {
	tests := []struct {
		env, override, want, wantErr string
	}{
		{env: "production", want: "https://api.kushkipagos.com"},
		{env: "uat", want: "https://api-uat.kushkipagos.com"},
		{env: "off", wantErr: "cloud is off"},
		{env: "off", override: "http://127.0.0.1:9/", want: "http://127.0.0.1:9"},
		{env: "uat", override: "https://raw.example", want: "https://raw.example"},
		{env: "prod", wantErr: `environment "prod"`},
		{env: "uat", override: "raw.example", wantErr: "not an absolute"},
	}
	for _, tc := range tests {
		got, err := RawBaseURL(tc.env, tc.override)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("RawBaseURL(%q, %q): got %q, %v; want an error containing %q", tc.env, tc.override, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("RawBaseURL(%q, %q): got %q, %v; want %q", tc.env, tc.override, got, err, tc.want)
		}
	}
}

func TestHTTPTransportSettings(t *testing.T) {
	tr := HTTPTransport(2 * time.Second)
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS MinVersion: got %+v, want TLS 1.2", tr.TLSClientConfig)
	}
	if tr.TLSClientConfig.RootCAs != nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("TLS roots: got RootCAs %v InsecureSkipVerify %v, want the system roots, verified", tr.TLSClientConfig.RootCAs, tr.TLSClientConfig.InsecureSkipVerify)
	}
	if tr.Proxy == nil || reflect.ValueOf(tr.Proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Errorf("Proxy: want http.ProxyFromEnvironment")
	}
	if tr.TLSHandshakeTimeout != 2*time.Second {
		t.Errorf("TLSHandshakeTimeout: got %v, want 2s", tr.TLSHandshakeTimeout)
	}
	if !tr.DisableKeepAlives || tr.ForceAttemptHTTP2 || tr.TLSNextProto == nil || len(tr.TLSNextProto) != 0 {
		t.Errorf("got DisableKeepAlives %v ForceAttemptHTTP2 %v TLSNextProto %v; want a fresh HTTP/1.1 connection per request",
			tr.DisableKeepAlives, tr.ForceAttemptHTTP2, tr.TLSNextProto)
	}
	if d := HTTPTransport(0).TLSHandshakeTimeout; d != DefaultConnectTimeout {
		t.Errorf("default connect timeout: got %v, want %v", d, DefaultConnectTimeout)
	}
}

// The cloud client trusts the system roots only: a server whose certificate
// is not signed by them is refused.
func TestHTTPClientRefusesUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := HTTPClient(time.Second).Get(srv.URL)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET a self-signed server: got %v, want x509.UnknownAuthorityError", err)
	}
}

func TestHTTPClientRefusesOldTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	srv.StartTLS()
	defer srv.Close()
	tr := HTTPTransport(time.Second)
	tr.TLSClientConfig.RootCAs = x509.NewCertPool()
	tr.TLSClientConfig.RootCAs.AddCert(srv.Certificate())
	_, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("GET a TLS 1.1 server: got %v, want a protocol version failure", err)
	}

	// The same server allowed TLS 1.2 works with the same settings.
	ok := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ok.StartTLS()
	defer ok.Close()
	tr = HTTPTransport(time.Second)
	tr.TLSClientConfig.RootCAs = x509.NewCertPool()
	tr.TLSClientConfig.RootCAs.AddCert(ok.Certificate())
	resp, err := (&http.Client{Transport: tr}).Get(ok.URL)
	if err != nil {
		t.Fatalf("GET a modern TLS server: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("protocol: got %s, want HTTP/1.1", resp.Proto)
	}
}

func TestHTTPClientDoesNotFollowRedirects(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := HTTPClient(time.Second).Post(srv.URL+"/pos/v1/transaction", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits != 1 {
		t.Errorf("got status %d after %d requests, want 302 after 1", resp.StatusCode, hits)
	}
}
