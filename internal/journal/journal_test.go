package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// t0 is the tests' clock origin; records get explicit times from it, so no
// test depends on the wall clock.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// MustOpen opens a new journal in tb.TempDir() and closes it at cleanup.
func MustOpen(tb testing.TB, opts ...Options) *Journal {
	tb.Helper()
	return MustOpenPath(tb, filepath.Join(tb.TempDir(), "journal.db"), opts...)
}

// MustOpenPath opens (or creates) the journal at path and closes it at cleanup.
func MustOpenPath(tb testing.TB, path string, opts ...Options) *Journal {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	j, err := Open(path, o)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() { _ = j.Close() })
	return j
}

// newRecord returns a charge record created at created with status st.
func newRecord(id string, created time.Time, st payment.Status) *payment.Record {
	tip := money.New(150, 2)
	return &payment.Record{
		Transaction: payment.Transaction{
			ID:        id,
			Operation: payment.OpCharge,
			Terminal:  "lane1",
			Status:    st,
			Currency:  money.PEN,
			Amount:    payment.Amount{IVA: money.New(180, 2), SubtotalIVA: money.New(1000, 2), Tip: &tip},
			Metadata:  map[string]string{"order": "A-" + id},
			CreatedAt: created,
			UpdatedAt: created,
			Events:    []payment.Event{{At: created, Status: st, Route: payment.RouteLAN}},
		},
		RequestHash: "hash-" + id,
	}
}

// put stores records, each in its own Update.
func put(tb testing.TB, j payment.Journal, recs ...*payment.Record) {
	tb.Helper()
	for _, r := range recs {
		if err := j.Update(context.Background(), func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
			tb.Fatalf("Update(Put %s): %v", r.ID, err)
		}
	}
}

// mustGet returns a record or fails the test.
func mustGet(tb testing.TB, j payment.Journal, id string) *payment.Record {
	tb.Helper()
	r, err := j.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

// sameRecord fails unless got and want are equal, showing both as JSON.
func sameRecord(tb testing.TB, got, want *payment.Record) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		tb.Fatalf("record %s:\n got %s\nwant %s", want.ID, g, w)
	}
}

// mustCheck fails the test if Check finds anything.
func mustCheck(tb testing.TB, j *Journal) {
	tb.Helper()
	if err := j.Check(context.Background()); err != nil {
		tb.Fatalf("Check: %v", err)
	}
}

func ids(recs []*payment.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// TestContract runs the payment.Journal contract against every write path:
// the default (alone: db.Update; with others: db.Batch), always db.Batch,
// and always db.Update.
func TestContract(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"auto", Options{}},
		{"batch", Options{write: writeBatch}},
		{"plain", Options{write: writePlain}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			testContract(t, func(tb testing.TB) *Journal { return MustOpen(tb, mode.opts) })
		})
	}
}

func testContract(t *testing.T, open func(testing.TB) *Journal) {
	ctx := context.Background()

	t.Run("create get replace", func(t *testing.T) {
		j := open(t)
		r := newRecord("c1", at(0), payment.StatusPending)
		put(t, j, r)
		sameRecord(t, mustGet(t, j, "c1"), r)

		// What Get returns is a copy.
		got := mustGet(t, j, "c1")
		got.Metadata["order"] = "changed"
		got.Events[0].Status = payment.StatusFailed
		sameRecord(t, mustGet(t, j, "c1"), r)

		// Replace: same id, new content.
		r2 := r.Clone()
		r2.AddEvent(payment.Event{At: at(5), Status: payment.StatusApproved, Code: "000"})
		r2.Reference = "ref-c1"
		r2.TicketNumber = "T1"
		r2.Card = &payment.Card{Brand: "VISA", Type: "credit", Masked: "411111XXXXXX1111"}
		put(t, j, r2)
		sameRecord(t, mustGet(t, j, "c1"), r2)

		// Put encodes at once: changing r2 afterwards changes nothing stored.
		r2.TicketNumber = "mutated"
		if got := mustGet(t, j, "c1").TicketNumber; got != "T1" {
			t.Fatalf("ticket after caller mutation: got %q, want %q", got, "T1")
		}

		if _, err := j.Get(ctx, "missing"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("Get(missing): got %v, want ErrNotFound", err)
		}
		mustCheck(t, j)
	})

	t.Run("tx sees its own writes", func(t *testing.T) {
		j := open(t)
		err := j.Update(ctx, func(tx payment.Tx) error {
			if _, err := tx.Get("t1"); !errors.Is(err, payment.ErrNotFound) {
				return fmt.Errorf("Get before Put: got %v, want ErrNotFound", err)
			}
			if err := tx.Put(newRecord("t1", at(0), payment.StatusPending)); err != nil {
				return err
			}
			r, err := tx.Get("t1")
			if err != nil {
				return err
			}
			r.AddEvent(payment.Event{At: at(1), Status: payment.StatusApproved})
			return tx.Put(r)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, j, "t1"); got.Status != payment.StatusApproved || len(got.Events) != 2 {
			t.Fatalf("got status %s with %d events, want approved with 2", got.Status, len(got.Events))
		}
	})

	t.Run("errors roll back", func(t *testing.T) {
		j := open(t)
		put(t, j, newRecord("keep", at(0), payment.StatusPending))
		boom := errors.New("boom")
		err := j.Update(ctx, func(tx payment.Tx) error {
			if err := tx.Put(newRecord("gone", at(1), payment.StatusPending)); err != nil {
				return err
			}
			r, _ := tx.Get("keep")
			r.AddEvent(payment.Event{At: at(2), Status: payment.StatusApproved})
			if err := tx.Put(r); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update: got %v, want it to wrap %v", err, boom)
		}
		if errors.Is(err, ErrCommit) {
			t.Fatalf("a function's error was reported as a commit failure: %v", err)
		}
		if _, err := j.Get(ctx, "gone"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("Get(gone) after rollback: got %v, want ErrNotFound", err)
		}
		if got := mustGet(t, j, "keep").Status; got != payment.StatusPending {
			t.Fatalf("keep after rollback: got status %s, want pending", got)
		}
		if err := j.Err(); err != nil {
			t.Fatalf("Err after a function error: got %v, want nil", err)
		}
		mustCheck(t, j)
	})

	t.Run("put refuses bad records", func(t *testing.T) {
		j := open(t)
		bad := map[string]*payment.Record{
			"nil":            nil,
			"no id":          newRecord("", at(0), payment.StatusPending),
			"zero created":   newRecord("z", time.Time{}, payment.StatusPending),
			"created 1500":   newRecord("y", time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), payment.StatusPending),
			"unknown status": newRecord("s", at(0), payment.Status("paid")),
			"key too large": func() *payment.Record {
				r := newRecord("k", at(0), payment.StatusApproved)
				r.Reference = strings.Repeat("r", 40<<10) // bbolt keys are at most 32 KiB
				return r
			}(),
			"bad raw json": func() *payment.Record {
				r := newRecord("j", at(0), payment.StatusApproved)
				r.TerminalResponse = json.RawMessage(`{"truncated":`)
				return r
			}(),
		}
		for name, r := range bad {
			err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) })
			if err == nil {
				t.Errorf("%s: Update(Put) succeeded, want an error", name)
			}
		}
		if s, err := j.Stats(ctx); err != nil || s.Records != 0 {
			t.Fatalf("Stats after refused puts: got %+v, %v; want 0 records", s, err)
		}
		mustCheck(t, j)
	})

	t.Run("reply bytes kept exactly", func(t *testing.T) {
		j := open(t)
		r := newRecord("rb", at(0), payment.StatusApproved)
		r.Reply = json.RawMessage("{\n  \"status\": \"approved\",\n  \"note\": \"<b>&</b>\"\n}\n")
		put(t, j, r)
		if got := mustGet(t, j, "rb").Reply; string(got) != string(r.Reply) {
			t.Fatalf("reply: got %q, want %q", got, r.Reply)
		}
	})

	t.Run("indexes follow changes", func(t *testing.T) {
		j := open(t)
		r := newRecord("ix", at(10), payment.StatusPending)
		put(t, j, r, newRecord("other", at(20), payment.StatusApproved))
		if _, err := j.ByReference(ctx, "ref-A"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("ByReference before any reference: got %v, want ErrNotFound", err)
		}

		// Reference added.
		r.Reference = "ref-A"
		put(t, j, r)
		if got, err := j.ByReference(ctx, "ref-A"); err != nil || got.ID != "ix" {
			t.Fatalf("ByReference(ref-A): got %v, %v; want ix", got, err)
		}
		// Reference changed: the old one no longer leads anywhere.
		r.Reference = "ref-B"
		put(t, j, r)
		if _, err := j.ByReference(ctx, "ref-A"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("ByReference(old ref-A): got %v, want ErrNotFound", err)
		}
		if got, err := j.ByReference(ctx, "ref-B"); err != nil || got.ID != "ix" {
			t.Fatalf("ByReference(ref-B): got %v, %v; want ix", got, err)
		}
		// created_at changed: List order follows.
		r.CreatedAt = at(30)
		put(t, j, r)
		page, _, err := j.List(ctx, payment.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(page), []string{"ix", "other"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("List after created_at change: got %v, want %v", got, want)
		}
		// Reference removed.
		r.Reference = ""
		put(t, j, r)
		if _, err := j.ByReference(ctx, "ref-B"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("ByReference(removed ref-B): got %v, want ErrNotFound", err)
		}
		if s, err := j.Stats(ctx); err != nil || s.Records != 2 {
			t.Fatalf("Stats: got %+v, %v; want 2 records (replaces do not count)", s, err)
		}
		mustCheck(t, j)
	})

	t.Run("shared reference finds the original", func(t *testing.T) {
		j := open(t)
		orig := newRecord("orig", at(0), payment.StatusApproved)
		orig.Reference = "R1"
		void := newRecord("void1", at(60), payment.StatusApproved)
		void.Operation, void.OriginalID, void.Reference = payment.OpVoid, "orig", "R1"
		put(t, j, void, orig) // insertion order must not matter
		if got, err := j.ByReference(ctx, "R1"); err != nil || got.ID != "orig" {
			t.Fatalf("ByReference(R1): got %v, %v; want orig", got, err)
		}
		// A reference that is a prefix of another does not match it.
		if _, err := j.ByReference(ctx, "R"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("ByReference(R): got %v, want ErrNotFound", err)
		}
		mustCheck(t, j)
	})

	t.Run("in-flight set", func(t *testing.T) {
		j := open(t)
		put(t, j,
			newRecord("p1", at(3), payment.StatusPending),
			newRecord("u1", at(1), payment.StatusUnknown),
			newRecord("a1", at(2), payment.StatusApproved),
			newRecord("n1", at(4), payment.StatusNotCharged),
			newRecord("h1", at(0), payment.StatusNeedsAttention),
		)
		inflight := func() []string {
			t.Helper()
			recs, err := j.InFlight(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return ids(recs)
		}
		if got, want := inflight(), []string{"h1", "u1", "p1"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("InFlight: got %v, want %v (oldest first)", got, want)
		}
		// not final → final
		p := mustGet(t, j, "p1")
		p.AddEvent(payment.Event{At: at(9), Status: payment.StatusDeclined})
		put(t, j, p)
		// final → not final (the journal does not judge transitions)
		a := mustGet(t, j, "a1")
		a.AddEvent(payment.Event{At: at(9), Status: payment.StatusUnknown})
		put(t, j, a)
		if got, want := inflight(), []string{"h1", "u1", "a1"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("InFlight after changes: got %v, want %v", got, want)
		}
		if s, err := j.Stats(ctx); err != nil || s.InFlight != 3 || s.Records != 5 || s.FileSize <= 0 {
			t.Fatalf("Stats: got %+v, %v; want 5 records, 3 in flight, a file size", s, err)
		}
		mustCheck(t, j)
	})

	t.Run("list filters", func(t *testing.T) {
		j := open(t)
		mk := func(id string, sec int, st payment.Status, op payment.Operation, term string) *payment.Record {
			r := newRecord(id, at(sec), st)
			r.Operation, r.Terminal = op, term
			return r
		}
		put(t, j,
			mk("a", 1, payment.StatusApproved, payment.OpCharge, "lane1"),
			mk("b", 2, payment.StatusDeclined, payment.OpCharge, "lane2"),
			mk("c", 3, payment.StatusApproved, payment.OpRefund, "lane1"),
			mk("d", 4, payment.StatusPending, payment.OpAuthorization, "lane2"),
			mk("e", 5, payment.StatusApproved, payment.OpCharge, "lane2"),
			mk("f", 5, payment.StatusApproved, payment.OpCharge, "lane1"), // same second as e: id breaks the tie
		)
		cases := []struct {
			name string
			f    payment.Filter
			want []string
		}{
			{"all newest first", payment.Filter{}, []string{"f", "e", "d", "c", "b", "a"}},
			{"status", payment.Filter{Status: payment.StatusApproved}, []string{"f", "e", "c", "a"}},
			{"operation", payment.Filter{Operation: payment.OpCharge}, []string{"f", "e", "b", "a"}},
			{"terminal", payment.Filter{Terminal: "lane2"}, []string{"e", "d", "b"}},
			{"status+terminal", payment.Filter{Status: payment.StatusApproved, Terminal: "lane1"}, []string{"f", "c", "a"}},
			{"from inclusive", payment.Filter{From: at(4)}, []string{"f", "e", "d"}},
			{"to exclusive", payment.Filter{To: at(3)}, []string{"b", "a"}},
			{"range", payment.Filter{From: at(2), To: at(5)}, []string{"d", "c", "b"}},
			{"range+status", payment.Filter{From: at(2), To: at(6), Status: payment.StatusApproved}, []string{"f", "e", "c"}},
			{"empty range", payment.Filter{From: at(5), To: at(5)}, nil},
			{"nothing matches", payment.Filter{Terminal: "lane9"}, nil},
			{"limit", payment.Filter{Limit: 2}, []string{"f", "e"}},
		}
		for _, tc := range cases {
			got, _, err := j.List(ctx, tc.f)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if g := ids(got); !reflect.DeepEqual(g, tc.want) && !(len(g) == 0 && len(tc.want) == 0) {
				t.Errorf("%s: got %v, want %v", tc.name, g, tc.want)
			}
		}

		bad := []struct {
			f     payment.Filter
			field string
		}{
			{payment.Filter{Cursor: "!!"}, "cursor"},
			{payment.Filter{Cursor: "AA"}, "cursor"}, // wrong version byte
			{payment.Filter{Status: "paid"}, "status"},
			{payment.Filter{Operation: "sale"}, "operation"},
		}
		for _, tc := range bad {
			_, _, err := j.List(ctx, tc.f)
			var pe *payment.Error
			if !errors.As(err, &pe) || pe.Code != payment.CodeValidation || pe.Field != tc.field {
				t.Errorf("List(%+v): got %v, want a validation error on %s", tc.f, err, tc.field)
			}
		}
	})

	t.Run("list pages", func(t *testing.T) {
		j := open(t)
		const n = 137
		var want []string
		err := j.Update(ctx, func(tx payment.Tx) error {
			for i := range n {
				if err := tx.Put(newRecord(fmt.Sprintf("p%03d", i), at(i), payment.StatusApproved)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := n - 1; i >= 0; i-- {
			want = append(want, fmt.Sprintf("p%03d", i))
		}
		for _, limit := range []int{1, 10, 50, 136, 137, 500} {
			got := collectPages(t, j, payment.Filter{Limit: limit}, nil)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("limit %d: got %d ids %v…, want %d", limit, len(got), head(got), len(want))
			}
		}
		// Default and maximum page sizes.
		page, cur, err := j.List(ctx, payment.Filter{})
		if err != nil || len(page) != DefaultListLimit || cur == "" {
			t.Fatalf("default page: got %d records, cursor %q, %v; want %d and a cursor", len(page), cur, err, DefaultListLimit)
		}
		page, cur, err = j.List(ctx, payment.Filter{Limit: 100000})
		if err != nil || len(page) != n || cur != "" {
			t.Fatalf("huge limit: got %d records, cursor %q, %v; want all %d and no cursor", len(page), cur, err, n)
		}
		// Filtered pages with a time range.
		got := collectPages(t, j, payment.Filter{Limit: 7, From: at(20), To: at(100)}, nil)
		if len(got) != 80 || got[0] != "p099" || got[79] != "p020" {
			t.Fatalf("ranged pages: got %d ids from %v to %v, want 80 from p099 to p020", len(got), head(got), got[len(got)-1])
		}
	})

	t.Run("list pages stable under concurrent inserts", func(t *testing.T) {
		j := open(t)
		const n = 120
		for i := range n {
			put(t, j, newRecord(fmt.Sprintf("s%03d", i), at(i), payment.StatusApproved))
		}
		// A lane inserts newer records all the time, and four more between
		// every two pages.
		var insertErrs atomic.Int64
		stop := make(chan struct{})
		var bg sync.WaitGroup
		bg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := newRecord(fmt.Sprintf("bg%05d", i), at(100000+i), payment.StatusPending)
				if err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
					insertErrs.Add(1)
				}
			}
		})
		next := n
		got := collectPages(t, j, payment.Filter{Limit: 11}, func() {
			var wg sync.WaitGroup
			for range 4 {
				r := newRecord(fmt.Sprintf("s%03d", next), at(next), payment.StatusPending)
				next++
				wg.Go(func() {
					if err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
						insertErrs.Add(1)
					}
				})
			}
			wg.Wait()
		})
		close(stop)
		bg.Wait()
		if n := insertErrs.Load(); n > 0 {
			t.Fatalf("%d concurrent inserts failed", n)
		}
		if len(got) != n {
			t.Fatalf("got %d ids over the pages, want the %d that existed at the first page", len(got), n)
		}
		for i, id := range got {
			if want := fmt.Sprintf("s%03d", n-1-i); id != want {
				t.Fatalf("position %d: got %s, want %s", i, id, want)
			}
		}
	})

	t.Run("concurrent updates from 64 goroutines", func(t *testing.T) {
		j := open(t)
		const lanes, each = 64, 5
		var wg sync.WaitGroup
		errs := make(chan error, lanes*each)
		for l := range lanes {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("l%02d-%d", l, i)
					r := newRecord(id, at(l*each+i), payment.StatusPending)
					if err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
						errs <- err
						return
					}
					// The outcome, read-modify-write as the lifecycle does it.
					err := j.Update(ctx, func(tx payment.Tx) error {
						r, err := tx.Get(id)
						if err != nil {
							return err
						}
						r.AddEvent(payment.Event{At: at(1000), Status: payment.StatusApproved})
						r.Reference = "ref-" + id
						return tx.Put(r)
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Update: %v", err)
		}
		for l := range lanes {
			for i := range each {
				id := fmt.Sprintf("l%02d-%d", l, i)
				r := mustGet(t, j, id)
				if r.Status != payment.StatusApproved || len(r.Events) != 2 {
					t.Fatalf("%s: got status %s with %d events, want approved with 2", id, r.Status, len(r.Events))
				}
			}
		}
		if s, err := j.Stats(ctx); err != nil || s.Records != lanes*each || s.InFlight != 0 {
			t.Fatalf("Stats: got %+v, %v; want %d records, 0 in flight", s, err, lanes*each)
		}
		mustCheck(t, j)
	})

	t.Run("each in time order", func(t *testing.T) {
		j := open(t)
		const n = 3*eachChunk + 17 // several chunks
		err := j.Update(ctx, func(tx payment.Tx) error {
			for i := range n {
				// Insert out of time order.
				sec := (i * 7919) % n
				if err := tx.Put(newRecord(fmt.Sprintf("e%04d", sec), at(sec), payment.StatusApproved)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := j.Each(ctx, func(r *payment.Record) error { got = append(got, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != n || !sort.StringsAreSorted(got) {
			t.Fatalf("Each: got %d ids, sorted=%v; want %d in time order", len(got), sort.StringsAreSorted(got), n)
		}
		stop := errors.New("stop")
		calls := 0
		err = j.Each(ctx, func(*payment.Record) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Each stopping: got %v after %d calls, want %v after 1", err, calls, stop)
		}
	})

	t.Run("cancelled context writes nothing", func(t *testing.T) {
		j := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		err := j.Update(cctx, func(tx payment.Tx) error { ran = true; return tx.Put(newRecord("x", at(0), payment.StatusPending)) })
		if !errors.Is(err, context.Canceled) || ran {
			t.Fatalf("Update with a cancelled context: got %v (fn ran: %v), want context.Canceled without running fn", err, ran)
		}
		if _, err := j.Get(ctx, "x"); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("Get(x): got %v, want ErrNotFound", err)
		}
	})
}

// collectPages pages through List with f, calling between (if not nil)
// after each page, and returns every id seen. It fails on a repeated id.
func collectPages(tb testing.TB, j *Journal, f payment.Filter, between func()) []string {
	tb.Helper()
	var out []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			tb.Fatal("List never ended")
		}
		page, cur, err := j.List(context.Background(), f)
		if err != nil {
			tb.Fatalf("List(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page) > f.Limit {
			tb.Fatalf("List: got %d records, over the limit %d", len(page), f.Limit)
		}
		for _, r := range page {
			if seen[r.ID] {
				tb.Fatalf("List: %s on two pages", r.ID)
			}
			seen[r.ID] = true
			out = append(out, r.ID)
		}
		if cur == "" {
			return out
		}
		f.Cursor = cur
		if between != nil {
			between()
		}
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []*payment.Record
	for i := range 40 {
		st := payment.StatusApproved
		if i%9 == 0 {
			st = payment.StatusUnknown
		}
		r := newRecord(fmt.Sprintf("k%02d", i), at(i), st)
		r.Reference = fmt.Sprintf("ref%02d", i)
		want = append(want, r)
	}
	put(t, j, want...)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	if _, err := j.Get(ctx, "k00"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: got %v, want ErrClosed", err)
	}
	if err := j.Update(ctx, func(payment.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: got %v, want ErrClosed", err)
	}

	j = MustOpenPath(t, path)
	for _, w := range want {
		sameRecord(t, mustGet(t, j, w.ID), w)
		if got, err := j.ByReference(ctx, w.Reference); err != nil || got.ID != w.ID {
			t.Fatalf("ByReference(%s): got %v, %v; want %s", w.Reference, got, err, w.ID)
		}
	}
	inflight, err := j.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(inflight), []string{"k00", "k09", "k18", "k27", "k36"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("InFlight after reopen: got %v, want %v", got, want)
	}
	mustCheck(t, j)
	// No temporary files are left beside the journal, and it is private.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only journal.db", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != fileMode {
		t.Fatalf("file mode: got %v, want %v", st.Mode().Perm(), os.FileMode(fileMode))
	}
}

// TestBatchRerunSafety puts failing functions into one batch with good ones.
// bbolt then rolls the batch back and runs the good ones again (and the
// failing ones alone); every good function's writes must land exactly once
// and the failing ones' not at all.
func TestBatchRerunSafety(t *testing.T) {
	ctx := context.Background()
	const good, bad = 56, 8
	path := newFile(t, newRecord("tally", at(0), payment.StatusApproved))
	// Every function joins one batch, which runs when it is full.
	j := MustOpenPath(t, path, Options{write: writeBatch, MaxBatchSize: good + bad, MaxBatchDelay: time.Minute})

	var runs atomic.Int64
	errBad := errors.New("refused")
	var wg sync.WaitGroup
	results := make([]error, good+bad)
	for i := range good + bad {
		wg.Go(func() {
			results[i] = j.Update(ctx, func(tx payment.Tx) error {
				runs.Add(1) // counting runs is the only effect outside tx, for the test
				// Read-modify-write of a record every function shares...
				tally, err := tx.Get("tally")
				if err != nil {
					return err
				}
				tally.AddEvent(payment.Event{At: at(1), Status: payment.StatusApproved, Detail: fmt.Sprint(i)})
				if err := tx.Put(tally); err != nil {
					return err
				}
				// ...and an insert of its own.
				if err := tx.Put(newRecord(fmt.Sprintf("g%02d", i), at(i+1), payment.StatusPending)); err != nil {
					return err
				}
				if i >= good {
					return errBad
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range results {
		if i < good && err != nil {
			t.Fatalf("good function %d: %v", i, err)
		}
		if i >= good && !errors.Is(err, errBad) {
			t.Fatalf("failing function %d: got %v, want %v", i, err, errBad)
		}
	}
	tally := mustGet(t, j, "tally")
	if got := len(tally.Events) - 1; got != good {
		t.Fatalf("tally events: got %d, want exactly %d (one per good function)", got, good)
	}
	count := map[string]int{}
	for _, e := range tally.Events[1:] {
		count[e.Detail]++
	}
	for i := range good {
		if count[fmt.Sprint(i)] != 1 {
			t.Fatalf("function %d recorded %d times, want 1", i, count[fmt.Sprint(i)])
		}
	}
	for i := range good + bad {
		_, err := j.Get(ctx, fmt.Sprintf("g%02d", i))
		if i < good && err != nil {
			t.Fatalf("record of good function %d: %v", i, err)
		}
		if i >= good && !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("record of failing function %d: got %v, want ErrNotFound", i, err)
		}
	}
	// Re-runs did happen (each failing function is run again alone, and the
	// good ones that ran before it in the batch are run again).
	if n := runs.Load(); n <= good+bad {
		t.Fatalf("functions ran %d times; want more than %d, or the batch re-run path was not exercised", n, good+bad)
	}
	t.Logf("%d functions (%d failing) ran %d times in all", good+bad, bad, runs.Load())
	mustCheck(t, j)
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, j, newRecord("ro1", at(0), payment.StatusUnknown))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)

	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, ro, "ro1"); got.Status != payment.StatusUnknown {
		t.Fatalf("read-only Get: got status %s, want unknown", got.Status)
	}
	mustCheck(t, ro)
	// A second reader may share the file.
	ro2, err := OpenReadOnly(path)
	if err != nil {
		t.Fatalf("second OpenReadOnly: %v", err)
	}
	_ = ro2.Close()
	err = ro.Update(ctx, func(tx payment.Tx) error { return tx.Put(newRecord("ro2", at(1), payment.StatusPending)) })
	if err == nil || errors.Is(err, ErrCommit) {
		t.Fatalf("Update on a read-only journal: got %v, want a non-commit error", err)
	}
	if err := ro.Err(); err != nil {
		t.Fatalf("Err on a read-only journal after a refused write: got %v, want nil", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := readFile(t, path); string(after) != string(before) {
		t.Fatal("OpenReadOnly changed the file")
	}

	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenReadOnly(missing): got %v, want ErrNotExist", err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// goodFile returns the bytes of a closed journal holding a few records.
func goodFile(tb testing.TB) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 30 {
		r := newRecord(fmt.Sprintf("g%02d", i), at(i), payment.StatusApproved)
		r.TerminalResponse = json.RawMessage(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)
		put(tb, j, r)
	}
	put(tb, j, newRecord("pending", at(99), payment.StatusPending))
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	return readFile(tb, path)
}

// TestOpenRefusesDamagedFiles writes damaged files and checks that Open and
// OpenReadOnly refuse each with ErrCorrupt and leave every byte as it was.
func TestOpenRefusesDamagedFiles(t *testing.T) {
	good := goodFile(t)
	page := os.Getpagesize()
	if len(good) < 8*page {
		t.Fatalf("good file is only %d bytes; the cases below need more", len(good))
	}
	flip := func(b []byte, off int) []byte {
		c := append([]byte(nil), b...)
		c[off] ^= 0xff
		return c
	}
	cases := map[string][]byte{
		"empty":                           {},
		"garbage":                         []byte(strings.Repeat("this is not a bbolt file\n", 1000)),
		"tiny":                            []byte("x"),
		"truncated to 1 page":             good[:page],
		"truncated to 3 pages":            good[:3*page],
		"truncated by half":               good[:len(good)/2],
		"truncated below its last commit": good[:highWater(t, good)-page],
		"both metas damaged":              flip(flip(good, 16+20), page+16+20),
		"zeros":                           make([]byte, len(good)),
		// Valid meta pages over damaged data pages: bbolt itself trips.
		"data pages zeroed": func() []byte {
			c := append([]byte(nil), good...)
			clear(c[2*page:])
			return c
		}(),
		"data pages scrambled": func() []byte {
			c := append([]byte(nil), good...)
			x := uint32(2463534242)
			for i := 2 * page; i < len(c); i++ {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				c[i] = byte(x)
			}
			return c
		}(),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not modified") {
				t.Fatalf("Open error does not name the file or say it was left alone: %v", err)
			}
			if _, err := OpenReadOnly(path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenReadOnly: got %v, want ErrCorrupt", err)
			}
			if got := readFile(t, path); string(got) != string(data) {
				t.Fatalf("file changed: %d bytes, was %d", len(got), len(data))
			}
			t.Logf("refused: %v", err)
		})
	}
}

// highWater returns the bytes in use by the last commit of a journal file.
func highWater(tb testing.TB, data []byte) int {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "hw.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	m1, ok1 := readMeta(f, int64(m0.pageSize))
	if !ok0 || !ok1 {
		tb.Fatal("good file has a bad meta page")
	}
	m := max(m0.pgid, m1.pgid)
	return int(m) * int(m0.pageSize)
}

// editFile changes a closed journal with plain bbolt, to make states the
// journal itself never writes.
func editFile(tb testing.TB, path string, fn func(*bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

func newFile(tb testing.TB, recs ...*payment.Record) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	put(tb, j, recs...)
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestOpenRefusesOtherSchemas(t *testing.T) {
	cases := []struct {
		version string
		want    string
	}{
		{"2", "newer posbridge"},
		{"0", "unsupported"},
		{"one", "unsupported"},
	}
	for _, tc := range cases {
		t.Run(tc.version, func(t *testing.T) {
			path := newFile(t, newRecord("s1", at(0), payment.StatusApproved))
			editFile(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaSchema), []byte(tc.version))
			})
			before := readFile(t, path)
			_, err := Open(path, Options{})
			if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: got %v, want ErrSchema saying %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
			if string(readFile(t, path)) != string(before) {
				t.Fatal("Open changed a file of another schema")
			}
		})
	}
}

func TestOpenRefusesForeignAndBrokenJournals(t *testing.T) {
	cases := map[string]func(*bolt.Tx) error{
		"foreign bbolt file": func(tx *bolt.Tx) error {
			for _, name := range bucketNames() {
				if err := tx.DeleteBucket([]byte(name)); err != nil {
					return err
				}
			}
			_, err := tx.CreateBucket([]byte("someone-else"))
			return err
		},
		"missing bucket": func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketByTime)) },
		"undecodable in-flight record": func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketRecords)).Put([]byte("p1"), []byte(`{"client_transaction_id":`))
		},
		"in-flight entry without a record": func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketInFlight)).Put([]byte("ghost"), []byte{})
		},
		"undecodable recent record": func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketRecords)).Put([]byte("a1"), []byte(`not json`))
		},
		"no record count": func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketMeta)).Delete([]byte(metaCount)) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			path := newFile(t, newRecord("a1", at(0), payment.StatusApproved), newRecord("p1", at(1), payment.StatusPending))
			editFile(t, path, edit)
			before := readFile(t, path)
			_, err := Open(path, Options{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: got %v, want ErrCorrupt", err)
			}
			if string(readFile(t, path)) != string(before) {
				t.Fatal("Open changed the file")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestCheckFindsInconsistencies damages indexes behind the journal's back
// and checks that Check names each problem.
func TestCheckFindsInconsistencies(t *testing.T) {
	ref := newRecord("r1", at(5), payment.StatusApproved)
	ref.Reference = "REF1"
	cases := []struct {
		name string
		edit func(*bolt.Tx) error
		want string
	}{
		{"in-flight entry removed", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketInFlight)).Delete([]byte("p1"))
		}, `record "p1": status pending is not final but it is missing from in_flight`},
		{"final record in in-flight", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketInFlight)).Put([]byte("a1"), []byte{})
		}, `in_flight: entry for "a1", whose status approved is final`},
		{"by_time entry dangling", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketByTime)).Put(timeKey(at(7), "ghost"), []byte{})
		}, `by_time: entry for "ghost", which is missing`},
		{"by_time entry at the wrong time", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketByTime))
			if err := b.Delete(timeKey(at(0), "a1")); err != nil {
				return err
			}
			return b.Put(timeKey(at(3), "a1"), []byte{})
		}, `by_time: entry for "a1" at`},
		{"by_reference entry removed", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketByRef)).Delete(refKey("REF1", "r1"))
		}, `record "r1": no by_reference entry for "REF1"`},
		{"by_reference entry disagrees", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketByRef)).Put(refKey("REF9", "a1"), []byte{})
		}, `by_reference: entry "REF9" for "a1", but its transaction_reference is ""`},
		{"record undecodable", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketRecords)).Put([]byte("a1"), []byte(`{`))
		}, `record "a1": decode record`},
		{"record under the wrong id", func(tx *bolt.Tx) error {
			v := tx.Bucket([]byte(bucketRecords)).Get([]byte("a1"))
			return tx.Bucket([]byte(bucketRecords)).Put([]byte("a2"), append([]byte(nil), v...))
		}, `record "a2": stored id is "a1"`},
		{"count wrong", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaCount), encodeCount(7))
		}, `meta record count is 7 but there are 3 records`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := newFile(t, newRecord("a1", at(0), payment.StatusApproved), newRecord("p1", at(1), payment.StatusPending), ref)
			editFile(t, path, tc.edit)
			ro, err := OpenReadOnly(path)
			if err != nil {
				t.Fatalf("OpenReadOnly: %v", err)
			}
			defer ro.Close()
			err = ro.Check(context.Background())
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check: got %v, want a *CheckError", err)
			}
			if !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("Check: got %v, want a problem containing %q", ce, tc.want)
			}
		})
	}
}

func TestOpenDirectoryErrors(t *testing.T) {
	t.Run("parent is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "plain")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(filepath.Join(file, "sub", "journal.db"), Options{})
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Open under a file: got %v, want 'not a directory'", err)
		}
	})
	t.Run("path is a directory", func(t *testing.T) {
		_, err := Open(t.TempDir(), Options{})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Open(directory): got %v, want 'not a regular file'", err)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		dir := mountTmpfs(t, "ro,size=64k")
		_, err := Open(filepath.Join(dir, "journal.db"), Options{})
		if err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("Open in a read-only directory: got %v, want 'not writable'", err)
		}
		t.Logf("refused: %v", err)
		_, err = Open(filepath.Join(dir, "sub", "journal.db"), Options{})
		if err == nil || !strings.Contains(err.Error(), "create directory") {
			t.Fatalf("Open in a directory that cannot be created: got %v, want 'create directory'", err)
		}
		t.Logf("refused: %v", err)
	})
}

// TestDamagedRecordPage scrambles one page of records (leaving bbolt's meta
// and freelist intact): Open refuses the file without changing it, and Check,
// on a read-only open, reports the damage instead of crashing.
func TestDamagedRecordPage(t *testing.T) {
	good := goodFile(t)
	page := os.Getpagesize()
	off := strings.Index(string(good), `"client_transaction_id":"g05"`)
	if off < 0 {
		t.Fatal("record g05 not found in the file")
	}
	data := append([]byte(nil), good...)
	x := uint32(88172645)
	for i := off / page * page; i < (off/page+1)*page; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = byte(x)
	}
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: got %v, want ErrCorrupt", err)
	}
	t.Logf("Open refused: %v", err)
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer ro.Close()
	err = ro.Check(context.Background())
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("Check: got %v, want a *CheckError", err)
	}
	t.Logf("Check: %.600s", err)
	if got := readFile(t, path); string(got) != string(data) {
		t.Fatal("the file changed")
	}
}
