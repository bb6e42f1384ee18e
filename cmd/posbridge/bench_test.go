package main

// Benchmarks of the bridge's own cost (DESIGN.md "Quality bars: Overhead"):
// the latency posbridge adds over a direct terminal call, start-up time with a
// large journal, and the idle daemon's memory. Journal group commit has its
// own benchmarks in internal/journal. None of these are assertions: run them
// with `go test -run '^$' -bench . ./cmd/posbridge` and compare in one run.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/journal"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// BenchmarkBridgeOverhead charges the simulator (no think time) directly
// with the terminal client, and through the whole daemon: HTTP API, strict
// decoding, idempotency, the intent fsync, the terminal call, the outcome
// fsync and the reply. The difference is what posbridge adds to a payment.
func BenchmarkBridgeOverhead(b *testing.B) {
	td := startBenchDaemon(b)

	signer, err := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: td.Secret, Serial: "SIMTEST0001"})
	if err != nil {
		b.Fatal(err)
	}
	direct, err := terminal.NewClient(terminal.ClientConfig{BaseURL: terminal.LANBaseURL(td.SimLn.Addr().String()),
		Kind: terminal.LAN, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	amount := payment.Amount{SubtotalIVA0: money.MustParse("12.5")}

	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			res, err := direct.Charge(context.Background(), terminal.ChargeRequest{ClientTransactionID: uuid.NewString(), Amount: amount})
			if err != nil || res.Status != payment.StatusApproved {
				b.Fatalf("direct charge: %v %+v", err, res)
			}
		}
	})
	client := &http.Client{Timeout: 30 * time.Second}
	b.Run("bridge", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			body := `{"client_transaction_id":"` + uuid.NewString() + `","amount":{"subtotal_iva0":12.5}}`
			resp, err := client.Post(td.URL+"/v1/charges", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("bridge charge: %d", resp.StatusCode)
			}
		}
	})
}

// startBenchDaemon is startTestDaemon without think time or logs.
func startBenchDaemon(b *testing.B) *testDaemon {
	b.Helper()
	return startTestDaemon(b, testDaemonOptions{
		Sim:    func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = -1, -1 },
		Config: func(c *config.Config) { c.Log.Level = "error" },
	})
}

// BenchmarkStartupLargeJournal measures the daemon's start (open the
// journal, read the in-flight index, build the routes, start recovery,
// listen) and stop with a journal of 100,000 settled payments and 10 that
// need attention: start-up reads only the in-flight index, not the journal.
func BenchmarkStartupLargeJournal(b *testing.B) {
	dir := b.TempDir()
	fillJournal(b, filepath.Join(dir, "journal.db"), 100_000, 10)
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.Discovery.Enabled = false
	cfg.Terminals = []config.Terminal{{Name: "lane1", Serial: "SIMTEST0001", LANAddress: "127.0.0.1:9",
		Auth: "hmac", CredentialEnv: "UNUSED", Currency: "PEN"}}
	opts := daemonOptions{Logger: zerolog.Nop(), Credentials: map[string]string{"lane1": "x"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := newDaemon(&cfg, opts)
		if err := d.Open(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		if h := d.svc.Health(); len(h.NeedsAttention) != 10 {
			b.Fatalf("needs attention after start: got %d, want 10", len(h.NeedsAttention))
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// fillJournal writes settled records and records that need attention.
func fillJournal(b *testing.B, path string, settled, attention int) {
	b.Helper()
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const perTx = 2000
	for n := 0; n < settled+attention; n += perTx {
		err := j.Update(context.Background(), func(tx payment.Tx) error {
			for i := n; i < n+perTx && i < settled+attention; i++ {
				at := start.Add(time.Duration(i) * time.Second)
				st := payment.StatusApproved
				if i >= settled {
					st = payment.StatusNeedsAttention
				}
				r := &payment.Record{Transaction: payment.Transaction{
					ID: uuid.NewString(), Operation: payment.OpCharge, Terminal: "lane1", Route: payment.RouteLAN,
					Status: st, Currency: money.PEN, Amount: payment.Amount{SubtotalIVA0: money.MustParse("12.5")},
					Reference: uuid.NewString(), TicketNumber: fmt.Sprintf("%018d", i), CreatedAt: at, UpdatedAt: at,
					Events: []payment.Event{{At: at, Status: payment.StatusPending, Route: payment.RouteLAN},
						{At: at, Status: st, Route: payment.RouteLAN, Code: "000", Detail: "Transacción aprobada."}}},
					RequestHash: strings.Repeat("a", 64)}
				if st == payment.StatusNeedsAttention {
					r.Recovery = &payment.RecoveryState{Since: at, Reason: "benchmark"}
				}
				if err := tx.Put(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleMemory runs the real binary against a simulator process and
// reports the idle daemon's resident memory (VmRSS after it has served a
// few payments and settled), and the latency of a /healthz round trip.
func BenchmarkIdleMemory(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "posbridge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	simAddr, apiAddr := freeAddr(b), freeAddr(b)
	credFile := filepath.Join(dir, "credential")
	if err := os.WriteFile(credFile, []byte("bench-credential\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	simCmd := exec.Command(bin, "sim", "--addr", simAddr, "--serial", "SIMBENCH01", "--credential-file", credFile,
		"--think-time", "0s", "--no-advertise")
	startProc(b, simCmd)
	cfgFile := filepath.Join(dir, "posbridge.yaml")
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
log: {level: warn}
discovery: {enabled: false}
terminals:
  - {name: lane1, serial: SIMBENCH01, lan_address: "%s", auth: hmac, credential_file: %s, currency: PEN}
`, apiAddr, filepath.Join(dir, "data"), simAddr, credFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	daemon := exec.Command(bin, "serve", "--config", cfgFile)
	startProc(b, daemon)

	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + apiAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("daemon not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		body := `{"amount":{"subtotal_iva0":12.5}}`
		resp, err := client.Post(base+"/v1/charges", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	time.Sleep(2 * time.Second) // let it settle into idle
	rss := vmRSS(b, daemon.Process.Pid)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(rss), "idle-rss-bytes")
}

func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(b *testing.B, pid int) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
