package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// readyzServer is a fake daemon whose /readyz answers status and body, and
// which remembers the last request's Host and Authorization headers.
type readyzServer struct {
	*httptest.Server
	mu         sync.Mutex
	host, auth string
	path       string
}

func newReadyzServer(t *testing.T, status int, body string) *readyzServer {
	t.Helper()
	s := &readyzServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.host, s.auth, s.path = r.Host, r.Header.Get("Authorization"), r.URL.Path
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *readyzServer) seen() (host, auth, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host, s.auth, s.path
}

// writeHealthConfig writes a valid configuration listening on listen, with
// the bearer token in a file when token is not empty, and returns its path.
func writeHealthConfig(t *testing.T, listen, token string) string {
	t.Helper()
	dir := t.TempDir()
	tokenLine := ""
	if token != "" {
		tf := filepath.Join(dir, "api.token")
		if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tokenLine = "  token_file: " + tf + "\n"
	}
	yaml := "listen: " + listen + "\n" +
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"api:\n" + tokenLine + "  allowed_hosts: [\"pos.example:8740\"]\n" +
		"terminals:\n" +
		"  - name: lane1\n" +
		"    serial: P3SN0001\n" +
		"    lan_address: 192.0.2.10:6868\n" +
		"    auth: hmac\n" +
		"    credential_file: " + filepath.Join(dir, "lane1.credential") + "\n" +
		"    currency: PEN\n"
	path := filepath.Join(dir, "posbridge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runHealthT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runHealth(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHealthAnswers(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode int
		wantOut  string // printed on stdout
		wantErr  string // substring of stderr; empty: stderr must be empty
	}{
		{"ready", 200, `{"ready": true, "checks": {"journal": "ok"}}`, exitOK, `{"ready":true,"checks":{"journal":"ok"}}` + "\n", ""},
		{"not ready", 503, `{"ready":false,"checks":{"route":"no terminal reachable"}}`, exitFailure,
			`{"ready":false,"checks":{"route":"no terminal reachable"}}` + "\n", "/readyz: HTTP 503 Service Unavailable"},
		{"200 saying not ready", 200, `{"ready":false}`, exitFailure, `{"ready":false}` + "\n", `says "ready": false`},
		{"200 without ready field", 200, `{"status":"ok"}`, exitFailure, `{"status":"ok"}` + "\n", `no "ready" field`},
		{"200 not JSON", 200, "OK", exitFailure, "OK\n", "not a JSON object"},
		{"500 empty", 500, "", exitFailure, "", "HTTP 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newReadyzServer(t, tt.status, tt.body)
			cfg := writeHealthConfig(t, "127.0.0.1:8740", "")
			code, out, errs := runHealthT(t, "--config", cfg, "--url", srv.URL+"/readyz")
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if out != tt.wantOut {
				t.Errorf("stdout: got %q, want %q", out, tt.wantOut)
			}
			if tt.wantErr == "" && errs != "" {
				t.Errorf("stderr: got %q, want nothing", errs)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errs, tt.wantErr)
			}
		})
	}
}

// With no --url, the address comes from listen, the token from
// api.token_file, and the Host header is one the daemon accepts.
func TestHealthFromConfiguration(t *testing.T) {
	const token = "s3cret-token-value"
	srv := newReadyzServer(t, 200, `{"ready":true,"checks":{}}`)
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	for _, listen := range []string{srv.Listener.Addr().String(), net.JoinHostPort("0.0.0.0", strconv.Itoa(port))} {
		t.Run(listen, func(t *testing.T) {
			cfg := writeHealthConfig(t, listen, token)
			code, out, errs := runHealthT(t, "--config", cfg)
			if code != exitOK {
				t.Fatalf("exit code: got %d, want %d (stderr %q)", code, exitOK, errs)
			}
			host, auth, path := srv.seen()
			if want := "127.0.0.1:" + strconv.Itoa(port); host != want {
				t.Errorf("Host: got %q, want %q", host, want)
			}
			if auth != "Bearer "+token {
				t.Errorf("Authorization: got %q, want the bearer token", auth)
			}
			if path != "/readyz" {
				t.Errorf("path: got %q, want /readyz", path)
			}
			if strings.Contains(out+errs, token) {
				t.Errorf("output contains the token: stdout %q stderr %q", out, errs)
			}
		})
	}
}

func TestHealthClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := writeHealthConfig(t, addr, "")
	code, out, errs := runHealthT(t, "--config", cfg)
	if code != exitFailure {
		t.Errorf("exit code: got %d, want %d", code, exitFailure)
	}
	if out != "" {
		t.Errorf("stdout: got %q, want nothing", out)
	}
	if !strings.Contains(errs, "not reachable") || !strings.Contains(errs, addr) {
		t.Errorf("stderr: got %q, want 'not reachable' and the address %s", errs, addr)
	}
}

// A daemon that never answers is not ready once --timeout has passed.
func TestHealthTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	cfg := writeHealthConfig(t, "127.0.0.1:8740", "")
	code, _, errs := runHealthT(t, "--config", cfg, "--url", srv.URL+"/readyz", "--timeout", "300ms")
	if code != exitFailure {
		t.Errorf("exit code: got %d, want %d", code, exitFailure)
	}
	if !strings.Contains(errs, "not reachable") {
		t.Errorf("stderr: got %q, want 'not reachable'", errs)
	}
}

// A redirect is an answer, not readiness, and is not followed.
func TestHealthDoesNotFollowRedirects(t *testing.T) {
	target := newReadyzServer(t, 200, `{"ready":true}`)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/readyz", http.StatusFound))
	t.Cleanup(redirect.Close)
	cfg := writeHealthConfig(t, "127.0.0.1:8740", "tok")
	code, _, errs := runHealthT(t, "--config", cfg, "--url", redirect.URL+"/readyz")
	if code != exitFailure {
		t.Errorf("exit code: got %d, want %d", code, exitFailure)
	}
	if !strings.Contains(errs, "HTTP 302") {
		t.Errorf("stderr: got %q, want HTTP 302", errs)
	}
	if _, _, path := target.seen(); path != "" {
		t.Errorf("redirect target got a request for %q, want none", path)
	}
}

func TestHealthCommandLine(t *testing.T) {
	cfg := writeHealthConfig(t, "127.0.0.1:8740", "")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{"help", []string{"--help"}, exitOK, "usage: posbridge health", ""},
		{"unknown flag", []string{"--bogus"}, exitUsage, "", "unknown flag: --bogus"},
		{"extra argument", []string{"--config", cfg, "now"}, exitUsage, "", `unexpected argument "now"`},
		{"zero timeout", []string{"--config", cfg, "--timeout", "0s"}, exitUsage, "", "--timeout must be positive"},
		{"bad url", []string{"--config", cfg, "--url", "ftp://x/readyz"}, exitUsage, "", "not an http(s) URL"},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, exitFailure, "", "read configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runHealthT(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.wantCode, errs)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout: got %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errs, tt.wantErr)
			}
		})
	}
}

// With --url and no configuration at all, nothing is loaded and no token
// is sent.
func TestHealthURLWithoutConfiguration(t *testing.T) {
	if fileExists(defaultConfigPath) {
		t.Skipf("%s exists on this machine; the no-configuration case cannot be tested here", defaultConfigPath)
	}
	srv := newReadyzServer(t, 200, `{"ready":true}`)
	code, _, errs := runHealthT(t, "--url", srv.URL+"/readyz")
	if code != exitOK {
		t.Fatalf("exit code: got %d, want %d (stderr %q)", code, exitOK, errs)
	}
	if _, auth, _ := srv.seen(); auth != "" {
		t.Errorf("Authorization: got %q, want none", auth)
	}
}

func TestReadyURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"127.0.0.1:8740", "http://127.0.0.1:8740/readyz"},
		{"0.0.0.0:8740", "http://127.0.0.1:8740/readyz"},
		{"[::]:8740", "http://127.0.0.1:8740/readyz"},
		{":8740", "http://127.0.0.1:8740/readyz"},
		{"[::1]:8740", "http://[::1]:8740/readyz"},
		{"localhost:8740", "http://localhost:8740/readyz"},
		{"192.0.2.7:9000", "http://192.0.2.7:9000/readyz"},
	}
	for _, tt := range tests {
		got, err := readyURL(tt.listen)
		if err != nil || got != tt.want {
			t.Errorf("readyURL(%q): got %q, %v; want %q", tt.listen, got, err, tt.want)
		}
	}
	if _, err := readyURL("8740"); err == nil {
		t.Errorf(`readyURL("8740"): got no error, want one`)
	}
}

func TestHostHeader(t *testing.T) {
	allowed := []string{"pos.example:8740"}
	tests := []struct{ url, want string }{
		{"http://127.0.0.1:8740/readyz", "127.0.0.1:8740"},
		{"http://[::1]:8740/readyz", "[::1]:8740"},
		{"http://localhost:8740/readyz", "localhost:8740"},
		{"http://POS.example:8740/readyz", "POS.example:8740"},
		{"http://192.0.2.7:8740/readyz", "localhost:8740"},
		{"http://192.0.2.7/readyz", "localhost:80"},
		{"https://192.0.2.7/readyz", "localhost:443"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostHeader(u, allowed); got != tt.want {
			t.Errorf("hostHeader(%s): got %q, want %q", tt.url, got, tt.want)
		}
	}
}
