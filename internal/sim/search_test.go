package sim_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

func TestSearches(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = time.Minute, -1 })
	// History, one second apart: approved charge, declined charge, an
	// aborted charge, an authorization, its capture.
	var ids []string
	start := f.clock.Now()
	run := func(ep terminal.Endpoint, body map[string]any) {
		t.Helper()
		done := make(chan struct{})
		go func() { f.post(t, ep, body); close(done) }()
		if ep == terminal.EndpointCharge || ep == terminal.EndpointAuthorization {
			f.timers.next(t).fire()
		}
		<-done
		ids = append(ids, body["client_transaction_id"].(string))
		f.clock.Advance(time.Second)
	}
	run(terminal.EndpointCharge, map[string]any{"client_transaction_id": newID(), "amount": amount("11")})
	run(terminal.EndpointCharge, map[string]any{"client_transaction_id": newID(), "amount": amount("40")})
	abortedID := newID()
	go func() {
		f.post(t, terminal.EndpointCharge, map[string]any{"client_transaction_id": abortedID, "amount": amount("12")})
	}()
	f.timers.next(t)
	f.waitActive(t, "customer")
	am, ap := lan(terminal.EndpointAbort)
	if st, b := f.do(t, am, ap, nil); st != 200 {
		t.Fatalf("abort: %d %s", st, b)
	}
	for f.sim.State().Active != nil {
		time.Sleep(time.Millisecond)
	}
	ids = append(ids, abortedID)
	f.clock.Advance(time.Second)
	authID := newID()
	run(terminal.EndpointAuthorization, map[string]any{"client_transaction_id": authID, "amount": amount("30")})
	auth := f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 1,
		Filters: terminal.SearchFilters{ClientTransactionID: authID}}).Items[0]
	run(terminal.EndpointCapture, followUp(newID(), auth.TransactionReference, amount("30")))

	local := f.search(t, terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 500})
	if local.Total != 5 || len(local.Items) != 5 {
		t.Fatalf("local total %d items %d, want 5", local.Total, len(local.Items))
	}
	for i, it := range local.Items { // newest first
		if want := ids[len(ids)-1-i]; it.ClientTransactionID != want {
			t.Errorf("local item %d = %s, want %s", i, it.ClientTransactionID, want)
		}
	}
	wantStatus := []string{"APPROVAL", "APPROVAL", "CANCELLED", "DECLINED", "APPROVAL"}
	wantType := []string{"capture", "preAuth", "charge", "charge", "charge"}
	for i, it := range local.Items {
		if it.TransactionStatus != wantStatus[i] || it.TransactionType != wantType[i] {
			t.Errorf("local item %d: %s %s, want %s %s", i, it.TransactionType, it.TransactionStatus, wantType[i], wantStatus[i])
		}
	}
	if c := local.Items[2]; c.MaskedCard != "" || c.TransactionReference != "" {
		t.Errorf("the cancelled item carries card or reference: %+v", c)
	}
	if a := local.Items[4]; a.MaskedCard != "424242******4242" || len(a.TicketNumber) != 18 || a.AuthorizationCode == "" ||
		a.Amount.SubtotalIVA0.String() != "11" || a.Created != start.UnixMilli() {
		t.Errorf("approved item %+v, want card, ticket, code, amount 11, created at the start", a)
	}

	online := f.search(t, terminal.EndpointSearchOnline, terminal.SearchRequest{Page: 1, Size: 500})
	if online.Total != 4 {
		t.Errorf("online total %d, want 4 (no cancelled transaction)", online.Total)
	}
	for _, it := range online.Items {
		if it.ClientTransactionID == abortedID {
			t.Error("the online search lists a transaction cancelled before approval")
		}
	}

	cases := []struct {
		name   string
		ep     terminal.Endpoint
		req    terminal.SearchRequest
		wantID []string
		total  int
	}{
		{"by id", terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 10,
			Filters: terminal.SearchFilters{ClientTransactionID: ids[1]}}, []string{ids[1]}, 1},
		{"by reference", terminal.EndpointSearchOnline, terminal.SearchRequest{Page: 1, Size: 10,
			Filters: terminal.SearchFilters{TransactionReference: auth.TransactionReference}}, []string{authID}, 1},
		{"aborted id online", terminal.EndpointSearchOnline, terminal.SearchRequest{Page: 1, Size: 10,
			Filters: terminal.SearchFilters{ClientTransactionID: abortedID}}, nil, 0},
		{"dates inclusive", terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1, Size: 10,
			Filters: terminal.SearchFilters{StartDate: start.Add(time.Second).UnixMilli(), EndDate: start.Add(2 * time.Second).UnixMilli()}},
			[]string{ids[2], ids[1]}, 2},
		{"type online", terminal.EndpointSearchOnline, terminal.SearchRequest{Page: 1, Size: 10,
			Filters: terminal.SearchFilters{TransactionType: "preAuth"}}, []string{authID}, 1},
		{"page 2 of size 2", terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 2, Size: 2},
			[]string{ids[2], ids[1]}, 5},
		{"page 3 of size 2", terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 3, Size: 2},
			[]string{ids[0]}, 5},
		{"past the end", terminal.EndpointSearchLocal, terminal.SearchRequest{Page: 1 << 60, Size: 500}, nil, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.search(t, c.ep, c.req)
			got := make([]string, 0, len(r.Items))
			for _, it := range r.Items {
				got = append(got, it.ClientTransactionID)
			}
			if fmt.Sprint(got) != fmt.Sprint(nilToEmpty(c.wantID)) || r.Total != c.total {
				t.Errorf("got %v total %d, want %v total %d", got, r.Total, c.wantID, c.total)
			}
			if r.Page != c.req.Page || r.Size != c.req.Size || r.Items == nil {
				t.Errorf("page/size/items = %d/%d/%v, want %d/%d and a non-nil list", r.Page, r.Size, r.Items, c.req.Page, c.req.Size)
			}
		})
	}
	// The cloud route serves the same searches.
	m, p := cloud(terminal.EndpointSearchOnline)
	if st, b := f.do(t, m, p, mustMarshal(t, terminal.SearchRequest{Page: 1, Size: 1})); st != http.StatusOK {
		t.Errorf("cloud online search: %d %s", st, b)
	}
}

func nilToEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
