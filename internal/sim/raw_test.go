package sim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// rawPOS calls the raw card-present API the way the cloud adapter will.
func (f *fixture) rawPOS(t *testing.T, credential string, body map[string]any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, f.base+"/pos/v1/transaction", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Private-Credential-Id", credential)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("raw API answer %q is not JSON: %v", raw, err)
	}
	return resp.StatusCode, m
}

func reverse(id string) map[string]any {
	return map[string]any{
		"amount":           map[string]any{"currency": "PEN", "iva": 0, "subtotal_iva": 0, "subtotal_iva0": 25},
		"transaction_mode": "Reverse", "transaction_type": "charge", "client_transaction_id": id, "omit_card": true,
	}
}

func rawVoid(id, ref string) map[string]any {
	return map[string]any{"transaction_mode": "Void", "transaction_type": "charge",
		"client_transaction_id": id, "transaction_reference": ref, "omit_card": true}
}

func wantRawError(t *testing.T, st int, m map[string]any, status int, code string) {
	t.Helper()
	if st != status || m["code"] != code {
		t.Fatalf("got %d %v, want %d code %s", st, m, status, code)
	}
	if d, ok := m["details"].(map[string]any); !ok || d["Message"] == "" {
		t.Errorf("error without details: %v", m)
	}
}

func TestRawReverse(t *testing.T) {
	f := startSim(t, nil)
	id := newID()
	ch := f.charge(t, id, "25")

	st, m := f.rawPOS(t, "wrong", reverse(id))
	if st != http.StatusUnauthorized || m["message"] != "Unauthorized" {
		t.Fatalf("bad credential: %d %v, want 401 Unauthorized", st, m)
	}
	st, m = f.rawPOS(t, testSecret, reverse(id))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed) // under a minute
	st, m = f.rawPOS(t, testSecret, reverse(newID()))
	wantRawError(t, st, m, http.StatusNotFound, sim.RawCodeNotFound)
	bad := reverse(id)
	bad["amount"].(map[string]any)["currency"] = "CLP"
	st, m = f.rawPOS(t, testSecret, bad)
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeCurrency)

	f.clock.Advance(time.Minute)
	st, m = f.rawPOS(t, testSecret, reverse(id))
	if st != http.StatusOK {
		t.Fatalf("reverse: %d %v", st, m)
	}
	// The seed's answer shape.
	for _, k := range []string{"additional_amounts", "authorized_amount", "card_type", "cvm_type", "F11", "franchise",
		"kushki_response", "message_fields", "transaction_reference", "transaction_status", "transaction_type", "ticket_number"} {
		if _, ok := m[k]; !ok {
			t.Errorf("reverse answer lacks %q: %v", k, m)
		}
	}
	if m["transaction_status"] != "APPROVAL" || m["authorized_amount"] != 25.0 || len(m["ticket_number"].(string)) != 18 ||
		m["kushki_response"].(map[string]any)["code"] != "000" {
		t.Errorf("reverse answer %v, want an approval of 25", m)
	}
	e := f.entry(t, id)
	if !e.Reversed || !e.Outstanding.IsZero() || e.Returned != money.MustParse("25") {
		t.Errorf("ledger after reverse %+v, want reversed and nothing outstanding", e)
	}
	st, m = f.rawPOS(t, testSecret, reverse(id))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeAlreadyDone)
	f.acquirerRefusal(t, terminal.EndpointVoid, followUp(newID(), ch.TransactionReference, nil), sim.CodeAlreadyVoided)

	// A declined charge has nothing to reverse.
	d := newID()
	f.payment(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": d, "amount": amount("5e1")})
	f.clock.Advance(time.Minute)
	st, m = f.rawPOS(t, testSecret, reverse(d))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed)
	// The next day it is too late.
	late := newID()
	f.charge(t, late, "26")
	f.clock.Advance(14 * time.Hour)
	st, m = f.rawPOS(t, testSecret, reverse(late))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed)
	if n := f.sim.State().Requests[sim.EndpointRaw]; n != 8 {
		t.Errorf("raw requests counted %d, want 8", n)
	}
}

func TestRawReverseFindsTheChargeOfADoubleCharge(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.Idempotency = sim.IdempotencyCharge })
	id := newID()
	f.charge(t, id, "25")
	f.charge(t, id, "25")
	f.clock.Advance(time.Minute)
	for i := 0; i < 2; i++ {
		if st, m := f.rawPOS(t, testSecret, reverse(id)); st != http.StatusOK {
			t.Fatalf("reverse %d: %d %v", i, st, m)
		}
	}
	e := f.entry(t, id)
	if e.TimesTaken != 2 || !e.Outstanding.IsZero() {
		t.Errorf("after two reverses %+v, want both charges returned", e)
	}
}

func TestRawVoid(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.DelayedApproval = 2 * time.Second })
	ch := f.charge(t, newID(), "174")
	f.clock.Advance(time.Minute)
	vid := newID()
	partial := rawVoid(newID(), ch.TransactionReference)
	partial["amount"] = map[string]any{"currency": "PEN", "iva": 0, "subtotal_iva": 0, "subtotal_iva0": 100}
	st, m := f.rawPOS(t, testSecret, partial)
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed)

	done := make(chan map[string]any, 1)
	go func() { _, m := f.rawPOS(t, testSecret, rawVoid(vid, ch.TransactionReference)); done <- m }()
	if tm := f.timers.next(t); tm.d != 2*time.Second {
		t.Errorf("delay %s, want 2s for an original of 174", tm.d)
	} else {
		tm.fire()
	}
	m = <-done
	if m["transaction_status"] != "APPROVAL" || m["transaction_type"] != "charge" {
		t.Fatalf("raw void answer %v, want an approval", m)
	}
	if e := f.entry(t, ch.ClientTransactionID); !e.Voided || !e.Outstanding.IsZero() {
		t.Errorf("after raw void %+v, want voided", e)
	}
	if e := f.entry(t, vid); e.Operation != "void" || e.OriginalReference != ch.TransactionReference {
		t.Errorf("raw void entry %+v", e)
	}
	// Online search lists it, local does not (the terminal never saw it).
	if r := f.search(t, terminal.EndpointSearchOnline, terminal.SearchRequest{Page: 1, Size: 5,
		Filters: terminal.SearchFilters{ClientTransactionID: vid}}); r.Total != 1 {
		t.Errorf("online search found %d raw voids, want 1", r.Total)
	}
	if r := f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 5,
		Filters: terminal.SearchFilters{ClientTransactionID: vid}}); r.Total != 0 {
		t.Errorf("local search found %d raw voids, want 0", r.Total)
	}
	st, m = f.rawPOS(t, testSecret, rawVoid(newID(), ch.TransactionReference))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeAlreadyDone)
	st, m = f.rawPOS(t, testSecret, rawVoid(newID(), "unknown"))
	wantRawError(t, st, m, http.StatusNotFound, sim.RawCodeNotFound)
	st, m = f.rawPOS(t, testSecret, rawVoid(vid, ch.TransactionReference))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed) // id reused
	st, m = f.rawPOS(t, testSecret, map[string]any{"transaction_mode": "Capture"})
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeNotAllowed)
	st, m = f.rawPOS(t, testSecret, map[string]any{"transaction_mode": 5})
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeInvalidBody)

	// After the cut-off a void is processed as a refund (seed).
	late := f.charge(t, newID(), "30")
	f.clock.Advance(14 * time.Hour)
	st, m = f.rawPOS(t, testSecret, rawVoid(newID(), late.TransactionReference))
	if st != http.StatusOK || m["transaction_type"] != "refund" {
		t.Fatalf("late raw void: %d %v, want an approved refund", st, m)
	}
	if e := f.entry(t, late.ClientTransactionID); e.Voided || e.Refunded != money.MustParse("30") {
		t.Errorf("late raw void entry %+v, want refunded 30 and not voided", e)
	}
}

func TestRawAPIFaults(t *testing.T) {
	f := startSim(t, nil)
	id := newID()
	f.charge(t, id, "25")
	f.clock.Advance(time.Minute)
	send := func() (*http.Response, error) {
		b, _ := json.Marshal(reverse(id))
		req, _ := http.NewRequest(http.MethodPost, f.base+"/pos/v1/transaction", strings.NewReader(string(b)))
		req.Header.Set("Private-Credential-Id", testSecret)
		return f.client.Do(req)
	}
	if err := f.sim.ArmFault(sim.Fault{Mode: sim.FaultError500, Endpoints: []string{sim.EndpointRaw}}); err != nil {
		t.Fatal(err)
	}
	resp, err := send()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || f.entry(t, id).Reversed {
		t.Fatalf("error_500: status %d, reversed %v; want 500 and nothing done", resp.StatusCode, f.entry(t, id).Reversed)
	}
	f.sim.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{sim.EndpointRaw}})
	if _, err := send(); !isConnError(err) {
		t.Fatalf("drop_after_approve: got %v, want a dropped connection", err)
	}
	if e := f.entry(t, id); !e.Reversed {
		t.Errorf("drop_after_approve did not reverse: %+v", e)
	}
	// Payment faults do not touch the raw API unless it is named.
	f.sim.ArmFault(sim.Fault{Mode: sim.FaultDropBefore})
	st, m := f.rawPOS(t, testSecret, reverse(id))
	wantRawError(t, st, m, http.StatusBadRequest, sim.RawCodeAlreadyDone)
	if n := len(f.sim.Faults()); n != 1 {
		t.Errorf("%d faults armed, want the payment fault still armed", n)
	}
}
