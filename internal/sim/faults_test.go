package sim_test

import (
	"bytes"
	"context"
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

// rawCharge sends a signed charge with a plain net/http client and returns
// what the client saw.
func (f *fixture) rawCharge(ctx context.Context, id, total string) (int, []byte, error) {
	body, _ := json.Marshal(map[string]any{"client_transaction_id": id, "amount": amount(total)})
	m, p := lan(terminal.EndpointCharge)
	sealed, err := f.signer.Seal(m, body, f.clock.Now())
	if err != nil {
		return 0, nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, m, f.base+p, bytes.NewReader(sealed.Body))
	req.Header = sealed.Header.Clone()
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitTaken waits until the ledger shows money taken under id.
func (f *fixture) waitTaken(t *testing.T, id string) sim.LedgerEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e, ok := f.sim.Ledger().Entry(id); ok && e.TimesTaken > 0 {
			return e
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no money taken under %s within 10 s", id)
	return sim.LedgerEntry{}
}

func TestFaultModes(t *testing.T) {
	t.Run("hang", func(t *testing.T) {
		f := startSim(t, nil)
		if err := f.sim.ArmFault(sim.Fault{Mode: sim.FaultHang}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		id := newID()
		errc := make(chan error, 1)
		go func() { _, _, err := f.rawCharge(ctx, id, "15"); errc <- err }()
		f.waitTaken(t, id)
		// The terminal is free although the answer never came.
		f.charge(t, newID(), "16")
		select {
		case err := <-errc:
			t.Fatalf("the hung charge answered (%v) before the client gave up", err)
		case <-time.After(50 * time.Millisecond):
		}
		cancel()
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("got %v, want the client's own cancellation", err)
		}
	})
	t.Run("drop_after_approve", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove})
		id := newID()
		_, _, err := f.rawCharge(context.Background(), id, "15")
		if !isConnError(err) {
			t.Fatalf("got %v, want a dropped connection", err)
		}
		if e := f.entry(t, id); e.TimesTaken != 1 || e.Taken != money.MustParse("15") {
			t.Errorf("ledger %+v, want 15 taken once", e)
		}
	})
	t.Run("drop_before", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultDropBefore})
		id := newID()
		_, _, err := f.rawCharge(context.Background(), id, "15")
		if !isConnError(err) {
			t.Fatalf("got %v, want a dropped connection", err)
		}
		if _, ok := f.sim.Ledger().Entry(id); ok {
			t.Error("drop_before processed the charge")
		}
		if st := f.sim.State(); st.Requests["charge"] != 1 || st.Transactions != 0 {
			t.Errorf("state %+v, want one charge request and no transaction", st)
		}
	})
	t.Run("error_500", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultError500})
		id := newID()
		st, b, err := f.rawCharge(context.Background(), id, "15")
		if err != nil {
			t.Fatal(err)
		}
		failure(t, st, b, http.StatusInternalServerError, terminal.TypeTerminal, sim.CodeInternal)
		if _, ok := f.sim.Ledger().Entry(id); ok {
			t.Error("error_500 processed the charge")
		}
	})
	t.Run("approve_then_500", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultApproveThen500})
		id := newID()
		st, b, err := f.rawCharge(context.Background(), id, "15")
		if err != nil {
			t.Fatal(err)
		}
		failure(t, st, b, http.StatusInternalServerError, terminal.TypeTerminal, sim.CodeInternal)
		e := f.entry(t, id)
		if e.TimesTaken != 1 {
			t.Fatalf("ledger %+v, want taken once", e)
		}
		// A retry with the same id replays the approval without charging again.
		r := f.charge(t, id, "15")
		if r.TransactionReference != e.Reference || f.entry(t, id).TimesTaken != 1 {
			t.Errorf("retry: reference %s (want %s), taken %d times (want 1)", r.TransactionReference, e.Reference, f.entry(t, id).TimesTaken)
		}
	})
	t.Run("slow", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultSlow, Delay: 4 * time.Second})
		id := newID()
		type res struct {
			st  int
			err error
		}
		done := make(chan res, 1)
		go func() { st, _, err := f.rawCharge(context.Background(), id, "15"); done <- res{st, err} }()
		tm := f.timers.next(t)
		if tm.d != 4*time.Second {
			t.Errorf("delay %s, want 4s", tm.d)
		}
		f.waitTaken(t, id)
		select {
		case r := <-done:
			t.Fatalf("answered before the delay ended: %+v", r)
		default:
		}
		tm.fire()
		if r := <-done; r.err != nil || r.st != http.StatusOK {
			t.Errorf("got %+v, want 200", r)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultCancel})
		id := newID()
		st, b, err := f.rawCharge(context.Background(), id, "15")
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}` || st != 200 {
			t.Errorf("got %d %s, want 200 and the TERMINAL-SUNMI cancel body", st, b)
		}
		if e := f.entry(t, id); e.Status != "CANCELLED" || e.TimesTaken != 0 {
			t.Errorf("ledger %+v, want CANCELLED and nothing taken", e)
		}
	})
	t.Run("leak_pan", func(t *testing.T) {
		f := startSim(t, nil)
		f.sim.ArmFault(sim.Fault{Mode: sim.FaultLeakPAN, Endpoints: []string{"charge", "transaction_search_local"}, Count: 2})
		r := f.charge(t, newID(), "15")
		if r.MaskedCard != "4242424242424242" || r.RawResponse.MaskedCard != "4242424242424242" {
			t.Errorf("masked_card = %q / %q, want the full test PAN at both levels", r.MaskedCard, r.RawResponse.MaskedCard)
		}
		s := f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 1})
		if s.Items[0].MaskedCard != "4242424242424242" {
			t.Errorf("search masked_card = %q, want the full PAN", s.Items[0].MaskedCard)
		}
		if r := f.charge(t, newID(), "15"); r.MaskedCard != "424242******4242" {
			t.Errorf("after the fault ran out: masked_card = %q", r.MaskedCard)
		}
	})
}

func TestFaultSelectionAndCount(t *testing.T) {
	f := startSim(t, nil)
	if err := f.sim.ArmFault(sim.Fault{Mode: sim.FaultError500, Endpoints: []string{"capture"}, Count: 2}); err != nil {
		t.Fatal(err)
	}
	auth := f.authorize(t, newID(), "20") // not a capture: untouched
	for i := 0; i < 2; i++ {
		st, b := f.post(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("20")))
		failure(t, st, b, http.StatusInternalServerError, terminal.TypeTerminal, sim.CodeInternal)
	}
	f.approved(t, terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("20")))
	if n := len(f.sim.Faults()); n != 0 {
		t.Errorf("%d faults left, want 0", n)
	}

	bad := []sim.Fault{
		{Mode: "explode"},
		{Mode: sim.FaultHang, Count: -1},
		{Mode: sim.FaultHang, Endpoints: []string{"print"}},
		{Mode: sim.FaultCancel, Endpoints: []string{"transaction_search_local"}},
		{Mode: sim.FaultLeakPAN, Endpoints: []string{"abort"}},
		{Mode: sim.FaultSlow, Delay: -time.Second},
	}
	for _, b := range bad {
		if err := f.sim.ArmFault(b); err == nil {
			t.Errorf("ArmFault(%+v) succeeded, want an error", b)
		}
	}
}

func TestFaultControlAPI(t *testing.T) {
	f := startSim(t, nil)
	post := func(body string) (int, []byte) {
		resp, err := http.Post(f.base+"/_sim/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, b := post(`{"mode":"slow","count":2,"endpoints":["refund"],"delay":"1.5s"}`); st != http.StatusCreated {
		t.Fatalf("arm: %d %s", st, b)
	}
	for _, bad := range []string{`{"mode":"nope"}`, `{"mode":"slow","delay":"soon"}`, `{"mode":"hang","extra":1}`, `not json`} {
		if st, _ := post(bad); st != http.StatusBadRequest {
			t.Errorf("arm %s: status %d, want 400", bad, st)
		}
	}
	resp, err := http.Get(f.base + "/_sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	var got []sim.Fault
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	want := sim.Fault{Mode: sim.FaultSlow, Count: 2, Endpoints: []string{"refund"}, Delay: 1500 * time.Millisecond}
	if len(got) != 1 || got[0].Mode != want.Mode || got[0].Count != 2 || got[0].Delay != want.Delay || got[0].Endpoints[0] != "refund" {
		t.Fatalf("GET faults = %+v, want [%+v]", got, want)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.base+"/_sim/faults", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(f.sim.Faults()) != 0 {
		t.Errorf("DELETE: %d, %d faults left; want 204 and none", resp.StatusCode, len(f.sim.Faults()))
	}
}

func TestStateAndReset(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = time.Minute, -1 })
	var st sim.State
	get := func() {
		resp, err := http.Get(f.base + "/_sim/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		st = sim.State{}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
	}
	get()
	if st.TotalRequests != 0 || st.Active != nil || st.Serial != testSerial {
		t.Fatalf("fresh state %+v, want no requests and idle", st)
	}
	id := newID()
	done := make(chan struct{})
	go func() {
		f.post(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": id, "amount": amount("20")})
		close(done)
	}()
	tm := f.timers.next(t)
	f.waitActive(t, "customer")
	get()
	if st.Active == nil || st.Active.ClientTransactionID != id || st.Active.Phase != "customer" {
		t.Errorf("active = %+v, want the charge in the customer phase", st.Active)
	}
	resp, err := http.Post(f.base+"/_sim/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("reset while busy: %d, want 409", resp.StatusCode)
	}
	tm.fire()
	<-done
	f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 1})
	get()
	if st.Requests["charge"] != 1 || st.Requests["transaction_search_local"] != 1 || st.TotalRequests != 2 || st.Transactions != 1 {
		t.Errorf("counters %+v, want one charge and one search", st)
	}
	resp, err = http.Post(f.base+"/_sim/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	get()
	if resp.StatusCode != http.StatusNoContent || st.TotalRequests != 0 || st.Transactions != 0 || len(f.sim.Ledger().Entries) != 0 {
		t.Errorf("after reset: %d %+v, want 204 and a fresh terminal", resp.StatusCode, st)
	}
}
