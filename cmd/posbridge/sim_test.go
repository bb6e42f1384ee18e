package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSimCommand runs "posbridge sim" with args on loopback until the test
// ends, and returns its output buffers and a stop function returning the exit
// code.
func startSimCommand(t *testing.T, args ...string) (stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"sim", "--addr", "127.0.0.1:0", "--no-advertise", "--log-format", "json"}, args...), stdout, stderr)
	}()
	var once sync.Once
	var rc int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case rc = <-code:
			case <-time.After(15 * time.Second):
				t.Fatal("posbridge sim did not stop within 15 s of its context ending")
			}
		})
		return rc
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// waitFor waits until the buffer contains s.
func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), s) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("output never contained %q:\n%s", s, b.String())
}

var lanRouteRE = regexp.MustCompile(`LAN route:\s+(http://\S+)/terminal/v1`)

func TestSimCommandDemoBothModes(t *testing.T) {
	for _, mode := range []string{"hmac", "encrypted"} {
		t.Run(mode, func(t *testing.T) {
			secret := "cmd-sim-secret-" + mode + "-0001"
			cred := filepath.Join(t.TempDir(), "credential")
			if err := os.WriteFile(cred, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--auth", mode, "--credential-file", cred, "--think-time", "0", "--demo", "--log-level", "debug"}
			if mode == "encrypted" {
				args = append(args, "--encrypt-responses", "--serial", "P3CMD0002")
			}
			stdout, stderr, stop := startSimCommand(t, args...)
			waitFor(t, stdout, "answer, as posbridge classifies it")
			out := stdout.String()
			for _, want := range []string{`"status": "approved"`, "Authorization: ", "Timestamp: ", `"masked": "424242******4242"`, "from " + cred} {
				if !strings.Contains(out, want) {
					t.Errorf("demo output lacks %q:\n%s", want, out)
				}
			}
			if mode == "encrypted" && !strings.Contains(out, `body on the wire: {"data":"`) {
				t.Errorf("encrypted demo does not show the encrypted body:\n%s", out)
			}
			// The simulator keeps serving after the demo.
			m := lanRouteRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no LAN route in the banner:\n%s", out)
			}
			resp, err := http.Get(m[1] + "/_sim/ledger")
			if err != nil {
				t.Fatalf("ledger after the demo: %v", err)
			}
			var l struct {
				Totals struct {
					Approved int `json:"approved"`
				} `json:"totals"`
			}
			json.NewDecoder(resp.Body).Decode(&l)
			resp.Body.Close()
			if l.Totals.Approved != 1 {
				t.Errorf("ledger after the demo: %d approved, want 1", l.Totals.Approved)
			}
			if rc := stop(); rc != exitOK {
				t.Errorf("exit code %d after the context ended, want 0; stderr:\n%s", rc, stderr.String())
			}
			if strings.Contains(out+stderr.String(), secret) {
				t.Error("the credential was printed")
			}
		})
	}
}

func TestSimCommandCredentialFromEnvironment(t *testing.T) {
	t.Setenv(simCredentialEnv, "env-sim-secret-0042")
	stdout, stderr, stop := startSimCommand(t, "--cloud-addr", "127.0.0.1:0")
	waitFor(t, stdout, "DNS-SD:")
	if !strings.Contains(stdout.String(), "from $"+simCredentialEnv) || !strings.Contains(stdout.String(), "cloud listener:") {
		t.Errorf("banner:\n%s", stdout.String())
	}
	if rc := stop(); rc != exitOK {
		t.Errorf("exit %d, want 0", rc)
	}
	if strings.Contains(stdout.String()+stderr.String(), "env-sim-secret-0042") {
		t.Error("the credential was printed")
	}
}

func TestSimCommandUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"sim", "--help"}, &out, &errb); rc != exitOK ||
		!strings.Contains(out.String(), "--think-time") || !strings.Contains(out.String(), simDemoCredential) {
		t.Errorf("--help: exit %d, output:\n%s", rc, out.String())
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("  \n"), 0o600)
	bad := [][]string{
		{"--auth", "basic"},
		{"--idempotency", "sometimes"},
		{"--think-time", "-1s"},
		{"--currency", "USD"},
		{"--credential-file", empty},
		{"--credential-file", filepath.Join(t.TempDir(), "missing")},
		{"--serial", ""},
		{"extra-argument"},
		{"--no-such-flag"},
	}
	for _, args := range bad {
		out.Reset()
		errb.Reset()
		if rc := run(context.Background(), append([]string{"sim", "--no-advertise"}, args...), &out, &errb); rc != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %s)", args, rc, exitUsage, errb.String())
		}
	}
	// A port already in use is a failure, not a usage error.
	stdout, _, _ := startSimCommand(t)
	waitFor(t, stdout, "LAN route:")
	addr := strings.TrimPrefix(lanRouteRE.FindStringSubmatch(stdout.String())[1], "http://")
	if rc := run(context.Background(), []string{"sim", "--no-advertise", "--addr", addr}, &out, &errb); rc != exitFailure {
		t.Errorf("listening on a busy port: exit %d, want %d", rc, exitFailure)
	}
}
