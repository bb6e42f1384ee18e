package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/payment"
)

// benchDir is where benchmark journals live: b.TempDir(), or
// $JOURNAL_BENCH_DIR to measure another disk. Group commit only pays off where
// fsync costs something, so a tmpfs gives meaningless ratios.
func benchDir(b *testing.B) string {
	if d := os.Getenv("JOURNAL_BENCH_DIR"); d != "" {
		d, err := os.MkdirTemp(d, "journal-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkUpdate measures durable Updates (one intent record each) from 1,
// 8 and 64 concurrent lanes: the default (auto: alone db.Update, with others
// db.Batch), always group commit (db.Batch) and one commit per Update
// (db.Update). ns/op is per Update over all lanes; the ratio plain/auto at
// equal lanes is the group-commit gain. $JOURNAL_BENCH_BATCH_DELAY (a
// duration) overrides MaxBatchDelay.
func BenchmarkUpdate(b *testing.B) {
	for _, mode := range []struct {
		name  string
		write writeMode
	}{{"auto", writeAuto}, {"batch", writeBatch}, {"plain", writePlain}} {
		for _, lanes := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/lanes=%d", mode.name, lanes), func(b *testing.B) {
				opts := Options{write: mode.write}
				if d, err := time.ParseDuration(os.Getenv("JOURNAL_BENCH_BATCH_DELAY")); err == nil {
					opts.MaxBatchDelay = d
				}
				j := MustOpenPath(b, filepath.Join(benchDir(b), "journal.db"), opts)
				ctx := context.Background()
				var next atomic.Int64
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range lanes {
					wg.Go(func() {
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							r := newRecord(fmt.Sprintf("b%09d", i), at(int(i)), payment.StatusPending)
							if err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
								failed.Add(1)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d Updates failed", n)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
			})
		}
	}
}

// buildLarge writes n records, inFlight of them pending and the rest
// approved, in transactions of 2000 records.
func buildLarge(b *testing.B, path string, n, inFlight int) {
	j, err := Open(path, Options{write: writePlain})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	for start := 0; start < n; start += 2000 {
		err := j.Update(ctx, func(tx payment.Tx) error {
			for i := start; i < start+2000 && i < n; i++ {
				st := payment.StatusApproved
				if i%(n/inFlight) == 0 {
					st = payment.StatusPending
				}
				r := newRecord(fmt.Sprintf("big%07d", i), at(i), st)
				if st == payment.StatusApproved {
					r.Reference = fmt.Sprintf("ref%07d", i)
					r.TerminalResponse = json.RawMessage(`{"transaction_status":"APPROVAL","ticket_number":"000123","authorization_code":"A1B2C3"}`)
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

// BenchmarkStartup measures what a restart costs before recovery can begin,
// with 100 000 records of which 10 are in flight: Open plus InFlight (the
// index), against Open plus a scan of every record for the unfinished ones.
func BenchmarkStartup(b *testing.B) {
	const n, inFlight = 100_000, 10
	path := filepath.Join(benchDir(b), "journal.db")
	start := time.Now()
	buildLarge(b, path, n, inFlight)
	st, _ := os.Stat(path)
	b.Logf("built %d records (%d in flight) in %v; file %d MB", n, inFlight, time.Since(start).Round(time.Millisecond), st.Size()>>20)
	ctx := context.Background()

	b.Run("open+in_flight_index", func(b *testing.B) {
		for b.Loop() {
			j, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			recs, err := j.InFlight(ctx)
			if err != nil || len(recs) != inFlight {
				b.Fatalf("InFlight: got %d, %v; want %d", len(recs), err, inFlight)
			}
			_ = j.Close()
		}
	})
	b.Run("open+full_scan", func(b *testing.B) {
		for b.Loop() {
			j, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			var recs []*payment.Record
			err = j.db.View(func(btx *bolt.Tx) error {
				return btx.Bucket([]byte(bucketRecords)).ForEach(func(_, v []byte) error {
					r, err := decodeRecord(v)
					if err != nil {
						return err
					}
					if !r.Status.Final() {
						recs = append(recs, r)
					}
					return nil
				})
			})
			if err != nil || len(recs) != inFlight {
				b.Fatalf("scan: got %d, %v; want %d", len(recs), err, inFlight)
			}
			_ = j.Close()
		}
	})
}

// fullRecord is a settled charge with everything the lifecycle stores.
func fullRecord() *payment.Record {
	r := newRecord("3f9c2a7e-6b1d-4c52-9a0e-8d7f1e2b3c4d", at(0), payment.StatusPending)
	r.Reference = "2503141509260000123456"
	r.TicketNumber = "000000123456"
	r.AuthorizationCode = "A1B2C3"
	r.Card = &payment.Card{Brand: "VISA", Type: "credit", Masked: "411111XXXXXX1111"}
	r.TerminalResponse = json.RawMessage(`{"rawResponse":{"transaction_status":"APPROVAL","transaction_reference":"2503141509260000123456","ticket_number":"000000123456","approval_code":"A1B2C3","masked_card_number":"411111XXXXXX1111","card_brand":"VISA","response_code":"000","response_text":"Approved","pad":"` + strings.Repeat("x", 400) + `"}}`)
	r.AddEvent(payment.Event{At: at(1), Status: payment.StatusApproved, Route: payment.RouteLAN, Code: "000", Detail: "approved by the terminal"})
	r.Reply = json.RawMessage(`{"client_transaction_id":"3f9c2a7e-6b1d-4c52-9a0e-8d7f1e2b3c4d","status":"approved","pad":"` + strings.Repeat("y", 400) + `"}`)
	r.Claimed = true
	return r
}

// BenchmarkRecordCodec measures encoding and decoding one full record.
func BenchmarkRecordCodec(b *testing.B) {
	r := fullRecord()
	enc, err := encodeRecord(r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeRecord(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeRecord(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
