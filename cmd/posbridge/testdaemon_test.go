package main

// Shared test helpers for booting the REAL daemon wiring in-process: a
// simulator on 127.0.0.1:0 and newDaemon/Open/Serve on 127.0.0.1:0. Tests in
// this package that need the daemon in-process use startTestDaemon rather
// than wiring their own.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
)

// testDaemon is a daemon and its simulated terminal, both in this process.
type testDaemon struct {
	Cfg    *config.Config
	Sim    *sim.Sim
	SimLn  net.Listener
	URL    string      // http://127.0.0.1:PORT of the API
	Logs   *syncBuffer // defined in sim_test.go
	Secret string      // the terminal credential

	d      *daemon
	cancel context.CancelFunc
	done   chan error
}

// testDaemonOptions adjusts the configuration and the simulator.
type testDaemonOptions struct {
	Config func(*config.Config)
	Sim    func(*sim.Config)
}

// startTestDaemon boots a simulator and the daemon wired as serve wires it,
// with logs at debug level in td.Logs; everything is stopped at cleanup.
func startTestDaemon(t testing.TB, opts testDaemonOptions) *testDaemon {
	t.Helper()
	const secret = "test-credential-7f3a9c"
	scfg := sim.Config{
		Serial:      "SIMTEST0001",
		Auth:        hmac.ModeHMAC,
		Credential:  hmac.Credential{Secret: secret, Serial: "SIMTEST0001"},
		Currency:    money.PEN,
		ThinkTime:   50 * time.Millisecond,
		VoidMinWait: time.Second,
	}
	if opts.Sim != nil {
		opts.Sim(&scfg)
	}
	s, err := sim.New(scfg)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(simLn) }()
	t.Cleanup(func() { _ = s.Close() })

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Log.Level, cfg.Log.Format = "debug", "json"
	cfg.Discovery.Enabled = false
	cfg.Timeouts.Response = 10 * time.Second
	cfg.Recovery.ReverseDelay = time.Second
	cfg.Recovery.ClaimWindow = time.Second
	cfg.Recovery.NotFoundGrace = time.Second
	cfg.Recovery.BackoffMin, cfg.Recovery.BackoffMax = 100*time.Millisecond, time.Second
	cfg.Terminals = []config.Terminal{{
		Name: "lane1", Serial: scfg.Serial, LANAddress: simLn.Addr().String(), Auth: string(scfg.Auth),
		CredentialEnv: "POSBRIDGE_TEST_UNUSED", Currency: string(scfg.Currency),
	}}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}

	logs := &syncBuffer{}
	log, err := newLogger(logs, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{}
	for _, term := range cfg.Terminals {
		creds[term.Name] = secret
	}
	dopts := daemonOptions{Logger: log, Credentials: creds, Listener: ln}
	d := newDaemon(&cfg, dopts)
	if err := d.Open(context.Background(), dopts); err != nil {
		t.Fatalf("daemon Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{Cfg: &cfg, Sim: s, SimLn: simLn, URL: "http://" + ln.Addr().String(),
		Logs: logs, Secret: secret, d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.Serve(ctx, notifier{log: log}) }()
	t.Cleanup(func() { td.Stop(t) })
	return td
}

// Stop shuts the daemon down (once) and returns Serve's error.
func (td *testDaemon) Stop(t testing.TB) error {
	t.Helper()
	if td.cancel == nil {
		return nil
	}
	td.cancel()
	td.cancel = nil
	select {
	case err := <-td.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not stop within 60s")
	}
	return nil
}

// do sends a request to the API and returns the status and body.
func (td *testDaemon) do(t *testing.T, method, path, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, td.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// decode unmarshals a JSON body into a map, failing the test otherwise.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}
