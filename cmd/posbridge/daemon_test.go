package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestDaemonWiring boots the real wiring (journal, gateway, service, API,
// metrics) against the simulator and runs a payment through it.
func TestDaemonWiring(t *testing.T) {
	td := startTestDaemon(t, testDaemonOptions{})
	const body = `{"client_transaction_id":"6f9d2f1e-7c1b-4b7e-9a35-1d2e3f4a5b6c","amount":{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0}}`

	status, first, _ := td.do(t, "POST", "/v1/charges", body)
	if status != http.StatusOK {
		t.Fatalf("charge: got %d %s, want 200", status, first)
	}
	tx := decode(t, first)
	if tx["status"] != "approved" || tx["route"] != "lan" || tx["transaction_reference"] == "" {
		t.Fatalf("charge: got %s", first)
	}
	status, again, h := td.do(t, "POST", "/v1/charges", body)
	if status != http.StatusOK || !bytes.Equal(again, first) || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: got %d replayed=%q, want the same 200 body", status, h.Get("Idempotent-Replayed"))
	}
	if n := td.Sim.State().TotalRequests; n != 1 {
		t.Errorf("terminal requests: got %d, want 1", n)
	}
	if e, ok := td.Sim.Ledger().Entry("6f9d2f1e-7c1b-4b7e-9a35-1d2e3f4a5b6c"); !ok || e.Taken.String() != "11.8" {
		t.Errorf("ledger: got %+v, want 11.8 taken", e)
	}

	status, ready, _ := td.do(t, "GET", "/readyz", "")
	if status != http.StatusOK || !strings.Contains(string(ready), `"ready":true`) {
		t.Errorf("readyz: got %d %s", status, ready)
	}
	status, m, _ := td.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`posbridge_payments_total{operation="charge",route="lan",status="approved"} 1`,
		`posbridge_terminal_request_seconds_count{endpoint="charge",result="ok",route="lan"} 1`,
		`posbridge_route_up{route="lan",terminal="lane1"} 1`,
		`posbridge_journal_records 1`,
		`posbridge_build_info{`,
	} {
		if status != http.StatusOK || !strings.Contains(string(m), want) {
			t.Errorf("metrics: missing %s", want)
		}
	}
	if err := td.Stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
