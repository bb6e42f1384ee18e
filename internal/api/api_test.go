package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// chargeBody is a charge of total (in PEN) under id.
func chargeBody(id, total string) string {
	return fmt.Sprintf(`{"client_transaction_id":%q,"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":%s},"metadata":{"ticket":"T-1"}}`, id, total)
}

// charge runs an approved charge of total and returns it.
func charge(t *testing.T, s *server, total string) txn {
	t.Helper()
	x := mustTxn(t, s.post(t, "/v1/charges", chargeBody(newID(), total)), http.StatusOK)
	if x.Status != "approved" {
		t.Fatalf("charge of %s: got status %s, want approved", total, x.Status)
	}
	return x
}

func TestChargeApprovedAndReplayed(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	id := newID()
	body := `{"client_transaction_id":"` + id + `","amount":{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0},"metadata":{"ticket":"A-1001"}}`
	first := s.post(t, "/v1/charges", body)
	x := mustTxn(t, first, http.StatusOK)
	if x.ID != id || x.Operation != "charge" || x.Status != "approved" || x.Terminal != lane || x.Route != "lan" || x.Currency != "PEN" {
		t.Fatalf("got %+v, want an approved lan charge %s on %s in PEN", x, id, lane)
	}
	if x.Reference == "" || len(x.TicketNumber) != 18 || x.Card == nil || !strings.Contains(x.Card.Masked, "*") || x.AuthCode == "" {
		t.Errorf("got reference %q, ticket %q, card %+v, auth code %q; want all set, card masked", x.Reference, x.TicketNumber, x.Card, x.AuthCode)
	}
	if len(x.Events) < 2 || x.Events[0].Status != payment.StatusPending || x.Events[len(x.Events)-1].Status != payment.StatusApproved {
		t.Errorf("events: got %+v, want pending … approved", x.Events)
	}
	if x.Metadata["ticket"] != "A-1001" {
		t.Errorf("metadata: got %v, want ticket A-1001", x.Metadata)
	}
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first answer: Idempotent-Replayed %q, want none", first.Header.Get("Idempotent-Replayed"))
	}
	calls := b.terminalCalls()

	// The same request again, and the same request spelled differently
	// (key order, number spelling), replay the recorded answer byte for byte.
	respelled := `{"metadata":{"ticket":"A-1001"},"amount":{"subtotal_iva0":0.00,"subtotal_iva":10.0,"iva":1.80},"client_transaction_id":"` + strings.ToUpper(id) + `"}`
	for _, again := range []string{body, respelled} {
		r := s.post(t, "/v1/charges", again)
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, first.Body) {
			t.Errorf("replay: got %d %s, want 200 with the first body %s", r.Status, r.Body, first.Body)
		}
		if got := r.Header.Get("Idempotent-Replayed"); got != "true" {
			t.Errorf("replay: Idempotent-Replayed %q, want true", got)
		}
	}
	if got := b.terminalCalls(); got != calls {
		t.Errorf("terminal calls after replays: got %d, want %d (no new call)", got, calls)
	}
	e, ok := b.sim.Ledger().Entry(id)
	if !ok || e.TimesTaken != 1 || e.Taken != money.MustParse("11.8") {
		t.Errorf("ledger: got %+v (found %v), want 11.8 taken once", e, ok)
	}

	// A charge without an id gets one.
	r := s.post(t, "/v1/charges", `{"amount":{"subtotal_iva0":5}}`)
	y := mustTxn(t, r, http.StatusOK)
	if len(y.ID) != 36 || y.Status != "approved" {
		t.Errorf("charge without id: got id %q status %s, want a generated UUID, approved", y.ID, y.Status)
	}
}

func TestDeclinesByAmount(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	for _, total := range []string{"10", "40", "50"} {
		t.Run(total, func(t *testing.T) {
			id := newID()
			x := mustTxn(t, s.post(t, "/v1/charges", chargeBody(id, total)), http.StatusOK)
			if x.Status != "declined" {
				t.Fatalf("got status %s, want declined", x.Status)
			}
			if e, ok := b.sim.Ledger().Entry(id); !ok || !e.Taken.IsZero() {
				t.Errorf("ledger: got %+v, want nothing taken", e)
			}
			// A decline is a final answer: the retry replays it.
			r := s.post(t, "/v1/charges", chargeBody(id, total))
			if mustTxn(t, r, http.StatusOK).Status != "declined" || r.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("retry of a decline: got %s (replayed %q), want the declined answer replayed", r.Body, r.Header.Get("Idempotent-Replayed"))
			}
		})
	}
}

func TestAuthorizationCaptureRefund(t *testing.T) {
	_, s := startBackendAPI(t, nil)
	auth := mustTxn(t, s.post(t, "/v1/authorizations", `{"amount":{"subtotal_iva0":100}}`), http.StatusOK)
	if auth.Status != "approved" || auth.Operation != "authorization" {
		t.Fatalf("authorization: got %s %s, want an approved authorization", auth.Operation, auth.Status)
	}
	base := "/v1/transactions/" + auth.ID
	re := mustTxn(t, s.post(t, base+"/reauthorize", `{"amount":{"subtotal_iva0":20}}`), http.StatusOK)
	if re.Status != "approved" || re.Operation != "reauthorization" || re.OriginalID != auth.ID {
		t.Fatalf("reauthorize: got %+v, want an approved reauthorization of %s", re, auth.ID)
	}
	tip := mustTxn(t, s.post(t, base+"/tip", `{"amount":{"tip":5}}`), http.StatusOK)
	if tip.Status != "approved" || tip.Operation != "tip" {
		t.Fatalf("tip: got %s %s, want an approved tip", tip.Operation, tip.Status)
	}
	orig := mustTxn(t, s.get(t, base), http.StatusOK)
	if orig.AuthorizedAmount != "120" || orig.TipAmount != "5" {
		t.Errorf("authorization after reauthorize and tip: authorized %s, tip %s; want 120 and 5", orig.AuthorizedAmount, orig.TipAmount)
	}
	capID := newID()
	capt := mustTxn(t, s.post(t, base+"/capture", `{"client_transaction_id":"`+capID+`","amount":{"subtotal_iva0":130}}`), http.StatusOK)
	if capt.Status != "approved" || capt.ID != capID || capt.Operation != "capture" {
		t.Fatalf("capture: got %+v, want an approved capture %s", capt, capID)
	}
	if o := mustTxn(t, s.get(t, base), http.StatusOK); o.Status != "captured" || o.CapturedAmount != "130" {
		t.Errorf("authorization after capture: got %s captured %s, want captured 130", o.Status, o.CapturedAmount)
	}
	part := mustTxn(t, s.post(t, "/v1/transactions/"+capID+"/refund", `{"amount":{"subtotal_iva0":30}}`), http.StatusOK)
	if part.Status != "approved" || part.Operation != "refund" {
		t.Fatalf("partial refund: got %s %s, want an approved refund", part.Operation, part.Status)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+capID), http.StatusOK); o.Status != "partially_refunded" || o.RefundedAmount != "30" {
		t.Errorf("capture after a partial refund: got %s refunded %s, want partially_refunded 30", o.Status, o.RefundedAmount)
	}
	rest := mustTxn(t, s.post(t, "/v1/transactions/"+capID+"/refund", `{"amount":{"subtotal_iva0":100}}`), http.StatusOK)
	if rest.Status != "approved" {
		t.Fatalf("refund of the rest: got %s, want approved", rest.Status)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+capID), http.StatusOK); o.Status != "refunded" {
		t.Errorf("capture after refunds: got %s, want refunded", o.Status)
	}
}

func TestVoidAndCancel(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	x := charge(t, s, "20")
	calls := b.terminalCalls()
	r := s.post(t, "/v1/transactions/"+x.ID+"/void", "")
	if r.Status != http.StatusConflict || r.errorCode() != "invalid_state" {
		t.Fatalf("void at once: got %d %s, want 409 invalid_state", r.Status, r.Body)
	}
	if got := b.terminalCalls(); got != calls {
		t.Errorf("terminal calls after a refused void: got %d, want %d", got, calls)
	}
	b.clock.Advance(2 * time.Minute)
	v := mustTxn(t, s.post(t, "/v1/transactions/"+x.ID+"/void", `{"metadata":{"why":"customer"}}`), http.StatusOK)
	if v.Status != "approved" || v.Operation != "void" || v.OriginalID != x.ID {
		t.Fatalf("void: got %+v, want an approved void of %s", v, x.ID)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+x.ID), http.StatusOK); o.Status != "voided" {
		t.Errorf("original after void: got %s, want voided", o.Status)
	}
	if e, _ := b.sim.Ledger().Entry(x.ID); !e.Voided || !e.Outstanding.IsZero() {
		t.Errorf("ledger after void: got %+v, want voided, nothing outstanding", e)
	}

	// cancel voids while the window is open…
	y := charge(t, s, "30")
	b.clock.Advance(2 * time.Minute)
	c := mustTxn(t, s.post(t, "/v1/transactions/"+y.ID+"/cancel", ""), http.StatusOK)
	if c.Status != "approved" || c.Operation != "void" {
		t.Errorf("cancel in the void window: got %s %s, want an approved void", c.Operation, c.Status)
	}
	// …and refunds after the processor's cutoff (23:30 in Lima).
	z := charge(t, s, "40.5")
	b.clock.Advance(14 * time.Hour) // 10:0x → after midnight's cutoff of that day
	cid := newID()
	c = mustTxn(t, s.post(t, "/v1/transactions/"+z.ID+"/cancel", `{"client_transaction_id":"`+cid+`"}`), http.StatusOK)
	if c.Status != "approved" || c.Operation != "refund" || c.ID != cid {
		t.Errorf("cancel after the cutoff: got %s %s %s, want an approved refund %s", c.Operation, c.Status, c.ID, cid)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+z.ID), http.StatusOK); o.Status != "refunded" {
		t.Errorf("original after cancel by refund: got %s, want refunded", o.Status)
	}
	// The retry of the cancel replays it.
	r = s.post(t, "/v1/transactions/"+z.ID+"/cancel", `{"client_transaction_id":"`+cid+`"}`)
	if mustTxn(t, r, http.StatusOK).Operation != "refund" || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("cancel retry: got %s replayed %q, want the refund replayed", r.Body, r.Header.Get("Idempotent-Replayed"))
	}
}

func TestAbortRunningCharge(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	r := s.post(t, "/v1/terminals/"+lane+"/abort", "")
	if r.Status != http.StatusConflict || r.errorCode() != "nothing_to_abort" {
		t.Fatalf("abort of an idle terminal: got %d %s, want 409 nothing_to_abort", r.Status, r.Body)
	}
	b.gate.Hold()
	id := newID()
	done := make(chan *response, 1)
	go func() { done <- s.post(t, "/v1/charges", chargeBody(id, "25")) }()
	if got := b.waitActive(t); got != id {
		t.Fatalf("running: got %s, want %s", got, id)
	}
	r = s.post(t, "/v1/terminals/"+lane+"/abort", "{}")
	var ab struct {
		Terminal string `json:"terminal"`
		Route    string `json:"route"`
		Aborted  bool   `json:"aborted"`
	}
	if r.Status != http.StatusOK {
		t.Fatalf("abort: got %d %s, want 200", r.Status, r.Body)
	}
	r.json(t, &ab)
	if ab.Terminal != lane || ab.Route != "lan" || !ab.Aborted {
		t.Errorf("abort: got %+v, want lane1 lan aborted", ab)
	}
	select {
	case cr := <-done:
		if x := mustTxn(t, cr, http.StatusOK); x.Status != "cancelled" {
			t.Errorf("aborted charge: got %s, want cancelled", x.Status)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the aborted charge did not answer within 30 s")
	}
	if e, _ := b.sim.Ledger().Entry(id); !e.Taken.IsZero() {
		t.Errorf("ledger: got %+v, want nothing taken", e)
	}
}

func TestBusyTerminal(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	b.gate.Hold()
	running := newID()
	done := make(chan *response, 1)
	go func() { done <- s.post(t, "/v1/charges", chargeBody(running, "15")) }()
	b.waitActive(t)
	calls := b.sim.State().Requests["charge"]

	r := s.post(t, "/v1/charges", chargeBody(newID(), "16"))
	var e struct {
		Error payment.Error `json:"error"`
	}
	r.json(t, &e)
	if r.Status != http.StatusConflict || e.Error.Code != payment.CodeTerminalBusy || e.Error.RunningID != running {
		t.Errorf("second charge: got %d %s, want 409 terminal_busy naming %s", r.Status, r.Body, running)
	}
	var list struct {
		Terminals []struct {
			Name      string `json:"name"`
			Busy      bool   `json:"busy"`
			RunningID string `json:"running_id"`
			Currency  string `json:"currency"`
			LAN       struct {
				Address string `json:"address"`
				Up      bool   `json:"up"`
			} `json:"lan"`
		} `json:"terminals"`
	}
	s.get(t, "/v1/terminals").json(t, &list)
	if len(list.Terminals) != 1 || !list.Terminals[0].Busy || list.Terminals[0].RunningID != running ||
		list.Terminals[0].Currency != "PEN" || !list.Terminals[0].LAN.Up || list.Terminals[0].LAN.Address == "" {
		t.Errorf("terminals while busy: got %+v, want lane1 busy with %s, PEN, lan up", list.Terminals, running)
	}
	b.gate.Release()
	if x := mustTxn(t, <-done, http.StatusOK); x.Status != "approved" {
		t.Errorf("running charge: got %s, want approved", x.Status)
	}
	if got := b.sim.State().Requests["charge"]; got != calls {
		t.Errorf("charge requests on the terminal: got %d, want %d (the busy one never sent)", got, calls)
	}
	list.Terminals = nil
	s.get(t, "/v1/terminals").json(t, &list)
	if list.Terminals[0].Busy || list.Terminals[0].RunningID != "" {
		t.Errorf("terminals after: got %+v, want idle", list.Terminals[0])
	}
}

func TestParallelSameID(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	b.gate.Hold()
	id := newID()
	body := chargeBody(id, "33.3")
	const n = 50
	out := make([]*response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.post(t, "/v1/charges", body)
		}()
	}
	b.waitActive(t)
	b.gate.Release()
	wg.Wait()
	for i, r := range out {
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, out[0].Body) {
			t.Errorf("answer %d: got %d %s, want 200 with the body of answer 0", i, r.Status, clipBody(r.Body))
		}
	}
	if mustTxn(t, out[0], http.StatusOK).Status != "approved" {
		t.Errorf("got %s, want approved", out[0].Body)
	}
	if got := b.sim.State().Requests["charge"]; got != 1 {
		t.Errorf("charge requests on the terminal: got %d, want 1", got)
	}
	if e, _ := b.sim.Ledger().Entry(id); e.Attempts != 1 || e.TimesTaken != 1 {
		t.Errorf("ledger: got %+v, want one attempt, taken once", e)
	}
}

func TestRespondAsync(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	b.gate.Hold()
	id := newID()
	r := s.do(t, request{Method: http.MethodPost, Path: "/v1/charges", Body: chargeBody(id, "12.5"),
		Header: map[string]string{"Prefer": "wait=5, Respond-Async"}})
	if r.Status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", r.Status, r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/transactions/"+id {
		t.Errorf("Location: got %q, want /v1/transactions/%s", loc, id)
	}
	if got := r.Header.Get("Preference-Applied"); got != "respond-async" {
		t.Errorf("Preference-Applied: got %q, want respond-async", got)
	}
	// Not final yet: a plain read says pending.
	if x := mustTxn(t, s.get(t, "/v1/transactions/"+id), http.StatusOK); x.Status != "pending" {
		t.Errorf("while running: got %s, want pending", x.Status)
	}
	done := make(chan *response, 1)
	go func() { done <- s.get(t, "/v1/transactions/"+id+"?wait=60s") }()
	b.gate.Release()
	select {
	case gr := <-done:
		if x := mustTxn(t, gr, http.StatusOK); x.Status != "approved" {
			t.Errorf("after ?wait: got %s, want approved", x.Status)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("GET ?wait=60s did not answer within 60 s")
	}
	// A retry of an operation already settled gets the result, not a 202.
	r = s.do(t, request{Method: http.MethodPost, Path: "/v1/charges", Body: chargeBody(id, "12.5"),
		Header: map[string]string{"Prefer": "respond-async"}})
	if mustTxn(t, r, http.StatusOK).Status != "approved" || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("async retry after settling: got %d %s, want the approval replayed", r.Status, r.Body)
	}
}

func TestClientHangsUpMidCharge(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	b.gate.Hold()
	id := newID()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.try(request{Method: http.MethodPost, Path: "/v1/charges", Body: chargeBody(id, "21"), Ctx: ctx})
		errc <- err
	}()
	b.waitActive(t)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled request got an answer; want a client error")
	}
	b.gate.Release()
	x := mustTxn(t, s.get(t, "/v1/transactions/"+id+"?wait=60s"), http.StatusOK)
	if x.Status != "approved" {
		t.Fatalf("after the POS hung up: got %s, want approved", x.Status)
	}
	rec, err := b.journal.Get(context.Background(), id)
	if err != nil || rec.Status != payment.StatusApproved || rec.Reference == "" {
		t.Fatalf("journal: got %+v, %v; want the approval journaled", rec, err)
	}
	if e, _ := b.sim.Ledger().Entry(id); e.TimesTaken != 1 {
		t.Errorf("ledger: got %+v, want taken once", e)
	}
	waitLog(t, s, `"status":499`)
}

// waitLog waits for the access log to hold want (the line of a request whose
// client went away is written when its handler returns).
func waitLog(t *testing.T, s *server, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.logs.String(), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("access log: no %s in\n%s", want, s.logs.String())
}

func TestSearches(t *testing.T) {
	_, s := startBackendAPI(t, nil)
	x := charge(t, s, "18")
	for _, src := range []string{"local", "online"} {
		t.Run(src, func(t *testing.T) {
			r := s.post(t, "/v1/terminals/"+lane+"/search", `{"source":"`+src+`","client_transaction_id":"`+x.ID+`","page":1,"size":10}`)
			var out struct {
				Terminal string `json:"terminal"`
				Route    string `json:"route"`
				Source   string `json:"source"`
				Result   struct {
					Items []struct {
						ID     string `json:"client_transaction_id"`
						Status string `json:"transaction_status"`
						Ref    string `json:"transaction_reference"`
					} `json:"items"`
				} `json:"result"`
			}
			if r.Status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", r.Status, r.Body)
			}
			r.json(t, &out)
			if out.Terminal != lane || out.Route != "lan" || out.Source != src || len(out.Result.Items) != 1 ||
				out.Result.Items[0].ID != x.ID || out.Result.Items[0].Status != "APPROVAL" || out.Result.Items[0].Ref != x.Reference {
				t.Errorf("got %s, want one APPROVAL item for %s", r.Body, x.ID)
			}
		})
	}
	r := s.post(t, "/v1/terminals/"+lane+"/search", `{"source":"local","from":"2026-03-10T00:00:00-05:00","to":"2026-03-11T00:00:00-05:00"}`)
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(x.ID)) {
		t.Errorf("search by dates: got %d %s, want 200 listing %s", r.Status, clipBody(r.Body), x.ID)
	}
}

func TestListTransactions(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	var ids []string
	for _, total := range []string{"11", "12", "10"} { // the last is declined
		ids = append(ids, mustTxn(t, s.post(t, "/v1/charges", chargeBody(newID(), total)), http.StatusOK).ID)
		b.clock.Advance(time.Second) // the list is ordered by created_at
	}
	var page struct {
		Transactions []txn  `json:"transactions"`
		NextCursor   string `json:"next_cursor"`
	}
	s.get(t, "/v1/transactions").json(t, &page)
	if len(page.Transactions) != 3 || page.Transactions[0].ID != ids[2] || page.NextCursor != "" {
		t.Fatalf("list: got %d transactions (first %s), cursor %q; want 3, newest first, no cursor", len(page.Transactions), page.Transactions[0].ID, page.NextCursor)
	}
	// Paging.
	var seen []string
	path := "/v1/transactions?limit=2"
	for range 4 {
		page.NextCursor = ""
		s.get(t, path).json(t, &page)
		for _, x := range page.Transactions {
			seen = append(seen, x.ID)
		}
		if page.NextCursor == "" {
			break
		}
		path = "/v1/transactions?limit=2&cursor=" + page.NextCursor
	}
	if strings.Join(seen, ",") != strings.Join([]string{ids[2], ids[1], ids[0]}, ",") {
		t.Errorf("pages: got %v, want %v newest first", seen, ids)
	}
	// Filters.
	s.get(t, "/v1/transactions?status=declined&operation=charge&terminal="+lane).json(t, &page)
	if len(page.Transactions) != 1 || page.Transactions[0].ID != ids[2] {
		t.Errorf("status=declined: got %+v, want only %s", page.Transactions, ids[2])
	}
	now := b.clock.Now()
	s.get(t, "/v1/transactions?from="+now.Add(time.Second).Format(time.RFC3339)).json(t, &page)
	if len(page.Transactions) != 0 {
		t.Errorf("from the future: got %d transactions, want 0", len(page.Transactions))
	}
	s.get(t, "/v1/transactions?from="+now.Add(-time.Hour).UTC().Format(time.RFC3339)+"&to="+now.Add(time.Hour).Format(time.RFC3339)).json(t, &page)
	if len(page.Transactions) != 3 {
		t.Errorf("from/to around now: got %d transactions, want 3", len(page.Transactions))
	}

	// An exact lookup does not claim; GET by id does.
	b.gate.Hold()
	id := newID()
	if r := s.do(t, request{Method: http.MethodPost, Path: "/v1/charges", Body: chargeBody(id, "19"),
		Header: map[string]string{"Prefer": "respond-async"}}); r.Status != http.StatusAccepted {
		t.Fatalf("async charge: got %d %s, want 202", r.Status, r.Body)
	}
	s.get(t, "/v1/transactions?client_transaction_id="+id).json(t, &page)
	if len(page.Transactions) != 1 || page.Transactions[0].Status != "pending" {
		t.Fatalf("lookup: got %+v, want the pending charge", page.Transactions)
	}
	if rec, err := b.journal.Get(context.Background(), id); err != nil || rec.Claimed {
		t.Errorf("after the list lookup: claimed %v (%v), want not claimed", rec != nil && rec.Claimed, err)
	}
	s.get(t, "/v1/transactions?client_transaction_id="+newID()).json(t, &page)
	if len(page.Transactions) != 0 {
		t.Errorf("lookup of an unknown id: got %d, want 0", len(page.Transactions))
	}
	mustTxn(t, s.get(t, "/v1/transactions/"+id), http.StatusOK)
	if rec, err := b.journal.Get(context.Background(), id); err != nil || !rec.Claimed {
		t.Errorf("after GET by id: claimed %v (%v), want claimed", rec != nil && rec.Claimed, err)
	}
	b.gate.Release()
	mustTxn(t, s.get(t, "/v1/transactions/"+id+"?wait=60s"), http.StatusOK)
}

func TestHealthReadyTerminals(t *testing.T) {
	_, s := startBackendAPI(t, func(c *api.Config) {
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_, _ = w.Write([]byte("posbridge_up 1\n"))
		})
	})
	r := s.get(t, "/healthz")
	if r.Status != http.StatusOK || string(r.Body) != `{"status":"ok"}` {
		t.Errorf("healthz: got %d %s, want 200 {\"status\":\"ok\"}", r.Status, r.Body)
	}
	var ready struct {
		Ready  bool `json:"ready"`
		Checks struct {
			Routes struct {
				OK        bool              `json:"ok"`
				Terminals map[string]string `json:"terminals"`
			} `json:"routes"`
		} `json:"checks"`
	}
	r = s.get(t, "/readyz")
	r.json(t, &ready)
	if r.Status != http.StatusOK || !ready.Ready || ready.Checks.Routes.Terminals[lane] != "lan" {
		t.Errorf("readyz: got %d %s, want 200 ready with lane1 on lan", r.Status, r.Body)
	}
	r = s.get(t, "/metrics")
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "posbridge_up 1") {
		t.Errorf("metrics: got %d %s, want 200 with the metrics", r.Status, r.Body)
	}
	charge(t, s, "14")
	var list struct {
		Terminals []api.TerminalStatus `json:"terminals"`
	}
	s.get(t, "/v1/terminals").json(t, &list)
	if len(list.Terminals) != 1 || list.Terminals[0].Name != lane || list.Terminals[0].Serial != laneSerial ||
		list.Terminals[0].Route != payment.RouteLAN || list.Terminals[0].LAN.LastRoundTripMS == nil || list.Terminals[0].Cloud.Enabled {
		t.Errorf("terminals: got %+v, want lane1 on lan with a round trip, no cloud", list.Terminals)
	}
}

func TestAccessLog(t *testing.T) {
	const token = "s3cret-token-value"
	_, s := startBackendAPI(t, func(c *api.Config) { c.Token = token })
	id := newID()
	r := s.do(t, request{Method: http.MethodPost, Path: "/v1/charges", Body: chargeBody(id, "13.7"),
		Header: map[string]string{"Authorization": "Bearer " + token, "X-Request-Id": "pos-42.a"}})
	if r.Status != http.StatusOK || r.Header.Get("X-Request-Id") != "pos-42.a" {
		t.Fatalf("got %d, X-Request-Id %q; want 200 echoing pos-42.a", r.Status, r.Header.Get("X-Request-Id"))
	}
	r = s.do(t, request{Method: http.MethodGet, Path: "/healthz", Header: map[string]string{"X-Request-Id": "bad id with spaces"}})
	if got := r.Header.Get("X-Request-Id"); len(got) != 36 {
		t.Errorf("X-Request-Id for an insane one: got %q, want a generated UUID", got)
	}
	logs := s.logs.String()
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(l, "pos-42.a") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line %s: %v", l, err)
			}
		}
	}
	want := map[string]any{"request_id": "pos-42.a", "method": "POST", "path": "/v1/charges", "status": float64(200),
		"client_transaction_id": id, "terminal": nil}
	for k, v := range want {
		if got, ok := line[k]; !ok || (v != nil && got != v) {
			t.Errorf("access log field %s: got %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := line["duration_ms"]; !ok {
		t.Error("access log: no duration_ms")
	}
	for _, secret := range []string{token, "Bearer", "subtotal", "4242"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

func TestTipOnChargeThenRefund(t *testing.T) {
	b, s := startBackendAPI(t, nil)
	x := charge(t, s, "30")
	tip := mustTxn(t, s.post(t, "/v1/transactions/"+x.ID+"/tip", `{"amount":{"tip":3}}`), http.StatusOK)
	if tip.Status != "approved" || tip.Operation != "tip" || tip.OriginalID != x.ID {
		t.Fatalf("tip: got %+v, want an approved tip on %s", tip, x.ID)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+x.ID), http.StatusOK); o.TipAmount != "3" || o.Status != "approved" {
		t.Errorf("charge after the tip: got %s tip %s, want approved tip 3", o.Status, o.TipAmount)
	}
	// A refund without an amount refunds what remains — the charge and its
	// tip — and the terminal is asked without an amount (it computes the
	// remainder itself). Journal and terminal agree.
	ref := mustTxn(t, s.post(t, "/v1/transactions/"+x.ID+"/refund", ""), http.StatusOK)
	if ref.Status != "approved" || ref.Amount["subtotal_iva0"] != float64(33) {
		t.Fatalf("refund: got %s %v, want an approved refund of 33", ref.Status, ref.Amount)
	}
	if o := mustTxn(t, s.get(t, "/v1/transactions/"+x.ID), http.StatusOK); o.Status != "refunded" || o.RefundedAmount != "33" {
		t.Errorf("charge after the refund: got %s refunded %s, want refunded 33", o.Status, o.RefundedAmount)
	}
	if tot := b.sim.Ledger().Totals; !tot.Outstanding.IsZero() {
		t.Errorf("simulator ledger: %s still outstanding, want 0", tot.Outstanding)
	}
}

func TestResolveNeedsAttention(t *testing.T) {
	// The success shape, through a fake service (a real needs_attention
	// record is made by recovery; cmd/posbridge's tests resolve one end to end).
	var got struct {
		id     string
		status payment.Status
		note   string
	}
	fs := &fakeService{resolve: func(id string, st payment.Status, note string) (*payment.Record, error) {
		got.id, got.status, got.note = id, st, note
		r := fakeRecord(id)
		r.Status = st
		return r, nil
	}}
	s := startAPI(t, fs, nil)
	id := newID()
	x := mustTxn(t, s.post(t, "/v1/transactions/"+id+"/resolve", `{"status":"not_charged","note":"no charge on the online search"}`), http.StatusOK)
	if x.Status != "not_charged" || got.id != id || got.note != "no charge on the online search" {
		t.Errorf("resolve: got %s, service saw %+v", x.Status, got)
	}

	// Refusals through the real service: nothing is sent to the terminal.
	b, rs := startBackendAPI(t, nil)
	sale := charge(t, rs, "20")
	before := b.terminalCalls()
	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/v1/transactions/" + newID() + "/resolve", `{"status":"approved","note":"x"}`, 404, "not_found"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"status":"approved","note":"x"}`, 409, "invalid_state"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"status":"declined","note":"x"}`, 422, "validation_failed"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"status":"approved"}`, 422, "validation_failed"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"note":"x"}`, 422, "validation_failed"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"status":"approved","note":"x","by":"me"}`, 400, "bad_request"},
		{"/v1/transactions/" + sale.ID + "/resolve", `{"status":1,"note":"x"}`, 400, "bad_request"},
	} {
		r := rs.post(t, tc.path, tc.body)
		if r.Status != tc.status || r.errorCode() != tc.code {
			t.Errorf("POST %s %s: got %d %s, want %d %s", tc.path, tc.body, r.Status, r.errorCode(), tc.status, tc.code)
		}
	}
	if n := b.terminalCalls(); n != before {
		t.Errorf("terminal calls: got %d more, want 0", n-before)
	}
}
