package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/sim"
)

// TestResolveNeedsAttentionEndToEnd: an approval whose answer was lost and
// that nobody claims, under the report policy, waits for a person; the CLI
// records the decision through the daemon, and the daemon is ready again.
func TestResolveNeedsAttentionEndToEnd(t *testing.T) {
	td := startTestDaemon(t, testDaemonOptions{Config: func(c *config.Config) {
		c.Recovery.Abandoned = "report"
	}})
	if err := td.Sim.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove, Count: 1}); err != nil {
		t.Fatal(err)
	}
	const id = "0d6f0c5e-3b7a-4f1e-8c2d-9a1b2c3d4e5f"
	status, body, _ := td.do(t, "POST", "/v1/charges", `{"client_transaction_id":"`+id+`","amount":{"subtotal_iva0":33}}`)
	if status != http.StatusGatewayTimeout {
		t.Fatalf("charge with a lost answer: got %d %s, want 504 outcome_unknown", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body, _ = td.do(t, "GET", "/readyz", "")
		if status == http.StatusServiceUnavailable && strings.Contains(string(body), id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never listed %s as needing attention: %d %s", id, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var stdout, stderr bytes.Buffer
	code := runJournal(context.Background(), []string{"resolve", id, "--url", td.URL, "--status", "approved",
		"--note", "customer confirmed the sale at the till"}, &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), "resolved as approved") {
		t.Fatalf("journal resolve: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "source: running daemon at "+td.URL) {
		t.Errorf("journal resolve did not say its source: %q", stderr.String())
	}
	status, body, _ = td.do(t, "GET", "/readyz", "")
	if status != http.StatusOK {
		t.Errorf("readyz after resolve: got %d %s, want 200", status, body)
	}
	// The POS's retry gets the settled answer; the money was taken once.
	status, body, _ = td.do(t, "POST", "/v1/charges", `{"client_transaction_id":"`+id+`","amount":{"subtotal_iva0":33}}`)
	if tx := decode(t, body); status != http.StatusOK || tx["status"] != "approved" || tx["transaction_reference"] == "" {
		t.Errorf("retry after resolve: got %d %s", status, body)
	}
	if e, ok := td.Sim.Ledger().Entry(id); !ok || e.Taken.String() != "33" {
		t.Errorf("ledger: got %+v, want 33 taken once", e)
	}

	// A second resolution is refused; so are a bad status and a missing daemon.
	stdout.Reset()
	stderr.Reset()
	if code := runJournal(context.Background(), []string{"resolve", id, "--url", td.URL, "--status", "not_charged", "--note", "x"}, &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "invalid_state") {
		t.Errorf("second resolve: exit %d, stderr %q, want 1 invalid_state", code, stderr.String())
	}
	if code := runJournal(context.Background(), []string{"resolve", id, "--url", td.URL, "--status", "approved"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("resolve without a note: exit %d, want %d", code, exitUsage)
	}
}
