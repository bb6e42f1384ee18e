package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/payment"
)

// Stats are the journal's sizes, for metrics and the CLI.
type Stats struct {
	Records  int   // records stored
	InFlight int   // records whose status is not final
	FileSize int64 // bytes of the file on disk
}

// Stats returns the journal's sizes. Records comes from a counter kept in
// step by every insert, InFlight from the in-flight index: neither scans the
// journal. It fails when the journal is closed or the file cannot be stat'd.
func (j *Journal) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := j.view(ctx, func(b buckets) error {
		n, ok := decodeCount(b.meta.Get([]byte(metaCount)))
		if !ok {
			return fmt.Errorf("%w: meta record count is missing or malformed", ErrCorrupt)
		}
		s.Records = int(n)
		return b.inFlight.ForEach(func(_, _ []byte) error { s.InFlight++; return nil })
	})
	if err != nil {
		return Stats{}, fmt.Errorf("journal: stats: %w", err)
	}
	if s.FileSize, err = j.fileSize(); err != nil {
		return Stats{}, fmt.Errorf("journal: stats: %w", err)
	}
	return s, nil
}

// eachChunk is how many records Each reads per read transaction.
const eachChunk = 256

// Each calls fn with every record in created_at order (then id), for export.
// It reads the journal in short read transactions and calls fn outside them,
// so fn may be slow and may use the Journal. It is not a snapshot: every
// record that exists when Each starts and keeps its created_at is visited
// exactly once; records written meanwhile may or may not be. It stops at the
// first error from fn, ctx or the journal and returns it.
func (j *Journal) Each(ctx context.Context, fn func(*payment.Record) error) error {
	var after []byte // the last key visited; nil before the first chunk
	for {
		var chunk []*payment.Record
		var last []byte
		err := j.view(ctx, func(b buckets) error {
			c := b.byTime.Cursor()
			var k []byte
			if after == nil {
				k, _ = c.First()
			} else if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, _ = c.Next()
			}
			for ; k != nil && len(chunk) < eachChunk; k, _ = c.Next() {
				_, id, ok := splitTimeKey(k)
				if !ok {
					return fmt.Errorf("%w: malformed by_time key %x", ErrCorrupt, k)
				}
				r, err := b.get(id)
				if err != nil {
					return err
				}
				chunk = append(chunk, r)
				last = append(last[:0], k...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("journal: each: %w", err)
		}
		for _, r := range chunk {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(chunk) < eachChunk {
			return nil
		}
		after = last
	}
}

// CheckError lists what Check found wrong. Problems holds at most
// maxProblems entries; Total counts them all.
type CheckError struct {
	Problems []string
	Total    int
}

const maxProblems = 100

func (e *CheckError) Error() string {
	s := fmt.Sprintf("journal check: %d problem(s): %s", e.Total, strings.Join(e.Problems, "; "))
	if e.Total > len(e.Problems) {
		s += fmt.Sprintf("; and %d more", e.Total-len(e.Problems))
	}
	return s
}

func (e *CheckError) addf(format string, args ...any) {
	e.Total++
	if len(e.Problems) < maxProblems {
		e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
	}
}

// Check verifies the whole journal in one read transaction: bbolt's own page
// check (tx.Check: every page reachable once, keys in order), then that the
// schema is ours, every record decodes under its own id with a known status
// and a usable created_at, the record count is right, and every index agrees
// with the records both ways: each record has its by_time and by_reference
// entries and is in in_flight exactly when its status is not final, and each
// index entry points at a record that says the same. Its cost grows with the
// journal; it is for "posbridge journal check", not for start-up. On a
// journal open for writing, its read transaction makes a write that must
// grow the file wait until it ends.
//
// It returns nil when all is well, a *CheckError listing the problems (the
// last one saying where it stopped, if a damaged page made bbolt panic), or
// another error when the check could not run (closed journal, ctx done).
func (j *Journal) Check(ctx context.Context) error {
	if err := j.enter(); err != nil {
		return err
	}
	defer j.ops.Done()
	ce := &CheckError{}
	err := guard(func() error {
		return j.db.View(func(btx *bolt.Tx) error { return checkTx(ctx, btx, ce) })
	})
	switch {
	case errors.Is(err, errPanic):
		// A damaged page stopped the walk; report it with what came before.
		ce.addf("stopped: %v", err)
	case err != nil:
		return fmt.Errorf("journal: check %s: %w", j.path, err)
	}
	if ce.Total > 0 {
		return ce
	}
	return nil
}

func checkTx(ctx context.Context, btx *bolt.Tx, ce *CheckError) error {
	for err := range btx.Check() {
		ce.addf("bbolt: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	meta := btx.Bucket([]byte(bucketMeta))
	if meta == nil {
		ce.addf("bucket %s is missing", bucketMeta)
		return nil
	}
	if err := checkSchema(meta.Get([]byte(metaSchema))); err != nil {
		ce.addf("%v", err)
		return nil
	}
	b, err := openBuckets(btx)
	if err != nil {
		ce.addf("%v", err)
		return nil
	}

	// Records, and the index entries each one needs.
	var n uint64
	err = b.records.ForEach(func(k, v []byte) error {
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		id := string(k)
		r, err := decodeRecord(v)
		if err != nil {
			ce.addf("record %q: %v", id, err)
			return nil
		}
		if r.ID != id {
			ce.addf("record %q: stored id is %q", id, r.ID)
			return nil
		}
		if err := checkRecord(r); err != nil {
			ce.addf("record %q: %v", id, err)
			return nil
		}
		if b.byTime.Get(timeKey(r.CreatedAt, id)) == nil {
			ce.addf("record %q: no by_time entry for created_at %s", id, r.CreatedAt.Format(time.RFC3339Nano))
		}
		if r.Reference != "" && b.byRef.Get(refKey(r.Reference, id)) == nil {
			ce.addf("record %q: no by_reference entry for %q", id, r.Reference)
		}
		inFlight := b.inFlight.Get(k) != nil
		switch {
		case r.Status.Final() && inFlight:
			ce.addf("record %q: status %s is final but it is in in_flight", id, r.Status)
		case !r.Status.Final() && !inFlight:
			ce.addf("record %q: status %s is not final but it is missing from in_flight", id, r.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c, ok := decodeCount(meta.Get([]byte(metaCount))); !ok {
		ce.addf("meta record count is missing or malformed")
	} else if c != n {
		ce.addf("meta record count is %d but there are %d records", c, n)
	}

	// Index entries, each of which must point at a record that agrees.
	err = b.byTime.ForEach(func(k, _ []byte) error {
		ns, id, ok := splitTimeKey(k)
		if !ok {
			ce.addf("by_time: malformed key %x", k)
			return nil
		}
		if r, ok := decodedFor(b, id); !ok {
			ce.addf("by_time: entry for %q, which is missing or undecodable", id)
		} else if r.CreatedAt.UnixNano() != ns {
			ce.addf("by_time: entry for %q at %d ns, but its created_at is %d ns", id, ns, r.CreatedAt.UnixNano())
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = b.byRef.ForEach(func(k, _ []byte) error {
		ref, id, ok := splitRefKey(k)
		if !ok {
			ce.addf("by_reference: malformed key %x", k)
			return nil
		}
		if r, ok := decodedFor(b, id); !ok {
			ce.addf("by_reference: entry %q for %q, which is missing or undecodable", ref, id)
		} else if r.Reference != ref {
			ce.addf("by_reference: entry %q for %q, but its transaction_reference is %q", ref, id, r.Reference)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return b.inFlight.ForEach(func(k, _ []byte) error {
		if r, ok := decodedFor(b, string(k)); !ok {
			ce.addf("in_flight: entry for %q, which is missing or undecodable", k)
		} else if r.Status.Final() {
			ce.addf("in_flight: entry for %q, whose status %s is final", k, r.Status)
		}
		return nil
	})
}

// decodedFor returns the record stored under id when it decodes; problems
// with it are reported by the records pass.
func decodedFor(b buckets, id string) (*payment.Record, bool) {
	v := b.records.Get([]byte(id))
	if v == nil {
		return nil, false
	}
	r, err := decodeRecord(v)
	return r, err == nil
}
