// Package journal is posbridge's durable store of payment records: the bbolt
// implementation of payment.Journal. It keeps one bbolt file with the records
// and the indexes the lifecycle needs (by transaction_reference, by creation
// time, and the set of records that are not final, so that start-up reads only
// what is unfinished), plus what the CLI and metrics need: Stats, Each (export)
// and Check (a full consistency check).
//
// It is not the lifecycle: it does not decide what a record means or when to
// write it (internal/payment does), and it never does network I/O. The
// functions given to Update must not either: bbolt allows one writer at a
// time, so anything slow inside a transaction stalls every lane.
//
// Durability: Update returns nil only after bbolt's commit has written the
// pages and the meta page and fdatasync'd both (research/anchors-reliability.md
// §3.1). NoSync is never set: with it, an acknowledged intent could vanish in a
// power cut and a charge could run with no record of it (§3.2). A commit error
// is treated as the disk failing: after one, the Journal refuses every further
// write until it is reopened, because after a failed fsync Linux may drop the
// dirty pages and a later fsync "succeed" without writing them (fsyncgate,
// §3.6); the daemon is expected to stop and restart.
//
// The file is never created in place: a new journal is built in a temporary
// file in the same directory, synced, linked to its name, and the directory is
// synced, so a power cut during the very first initialisation (§3.1, etcd
// #16596) leaves either no journal or a complete empty one. An existing file
// that is damaged, truncated, empty, foreign or of another schema version is
// refused with ErrCorrupt or ErrSchema and never written to.
package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/payment"
)

// Errors that Open, OpenReadOnly and Update wrap, for errors.Is.
var (
	// ErrInUse: another process holds the journal file's lock.
	ErrInUse = errors.New("file locked")
	// ErrCorrupt: the file is damaged, truncated or not a posbridge journal.
	ErrCorrupt = errors.New("file is corrupt or not a posbridge journal")
	// ErrSchema: the file has a schema version this code does not know.
	ErrSchema = errors.New("unsupported journal schema version")
	// ErrCommit: a commit failed; the disk may have failed and nothing the
	// transaction wrote may be assumed written.
	ErrCommit = errors.New("journal commit failed")
	// ErrClosed: the Journal was closed.
	ErrClosed = errors.New("journal closed")
)

// Defaults for Options.
const (
	DefaultLockTimeout   = time.Second
	DefaultMaxBatchDelay = 2 * time.Millisecond
	DefaultMaxBatchSize  = 1000
)

// Options tune Open. The zero value gives the defaults. There is
// deliberately no way to set bbolt's NoSync: every commit is fsync'd (see
// the package comment).
type Options struct {
	// LockTimeout bounds the wait for the file lock, so that a second daemon
	// on the same file fails fast (STYLE.md §3). Zero or less means
	// DefaultLockTimeout.
	LockTimeout time.Duration

	// MaxBatchDelay and MaxBatchSize set bbolt's group commit (db.Batch),
	// used by an Update that starts while others are in progress: it waits up
	// to MaxBatchDelay for more to join its transaction, and a batch runs at
	// once when it holds MaxBatchSize functions. Concurrent lanes then share
	// one commit and its two fdatasyncs. Zero or less means
	// DefaultMaxBatchDelay and DefaultMaxBatchSize.
	MaxBatchDelay time.Duration
	MaxBatchSize  int

	// write picks how Update commits; the tests and benchmarks compare them.
	write writeMode
}

// writeMode is how Update commits.
type writeMode int

const (
	// writeAuto, the default: db.Update when no other Update is in
	// progress, so a lone writer does not wait MaxBatchDelay for company
	// that is not coming; db.Batch when others are, so they share commits.
	writeAuto writeMode = iota
	// writeBatch: always db.Batch.
	writeBatch
	// writePlain: always db.Update, one commit per call.
	writePlain
)

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBatchDelay <= 0 {
		o.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	return o
}

// Journal is an open journal file. All its methods are safe for concurrent
// use. Records it returns are fresh copies owned by the caller.
type Journal struct {
	path    string
	db      *bolt.DB
	write   writeMode
	writers atomic.Int64 // Updates in progress

	mu      sync.Mutex
	closed  bool
	failure error // the first commit error; writes are refused after it
	ops     sync.WaitGroup
}

var _ payment.Journal = (*Journal)(nil)

// Path returns the journal file's path.
func (j *Journal) Path() string { return j.path }

// enter registers an operation so that Close waits for it; it fails with
// ErrClosed once Close has begun. Every successful enter is paired with
// j.ops.Done().
func (j *Journal) enter() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return fmt.Errorf("journal %s: %w", j.path, ErrClosed)
	}
	j.ops.Add(1)
	return nil
}

// Err returns the commit error that stopped the Journal taking writes, or nil
// while it is healthy (for /readyz and metrics).
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failure
}

// Close waits for the operations in progress and closes the file, releasing
// its lock. Later calls return errors wrapping ErrClosed; Close itself may be
// called more than once.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.ops.Wait()
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("journal: close %s: %w", j.path, err)
	}
	return nil
}

// Update runs fn in one read-write transaction and returns nil only once the
// changes are committed and fsync'd. An Update that starts while no other is
// in progress commits on its own (db.Update); one that starts while others
// are joins a group commit (db.Batch, see Options.MaxBatchDelay). In a
// group, fn may run more than once, each time on a fresh Tx that sees the
// bucket state of that run; so fn must have no effect outside tx, and must
// not call the Journal's methods. fn must not block either (no network I/O,
// no waiting on locks): bbolt has one writer at a time, so a slow fn stalls
// every lane. If ctx is done before a run of fn starts,
// that run fails with ctx's error and nothing is written; once a commit has
// begun it is waited for.
//
// An error from fn (or from the Tx) rolls everything back and is returned
// wrapped. A commit error is returned wrapping ErrCommit; after one the
// Journal refuses further writes (see Err). Update on a closed or read-only
// Journal fails without running fn.
func (j *Journal) Update(ctx context.Context, fn func(tx payment.Tx) error) error {
	if err := j.enter(); err != nil {
		return err
	}
	defer j.ops.Done()
	if err := j.Err(); err != nil {
		return fmt.Errorf("journal: refusing writes after an earlier commit failure: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal: update: %w", err)
	}

	// ran and fnErr describe the last run of fn. They are written by the
	// goroutine running the batch and read after Batch returns, which it does
	// only after that goroutine has sent the result on a channel.
	var (
		ran   bool
		fnErr error
	)
	run := func(btx *bolt.Tx) error {
		ran, fnErr = true, nil
		if err := ctx.Err(); err != nil {
			fnErr = err
			return err
		}
		b, err := openBuckets(btx)
		if err != nil {
			fnErr = err
			return err
		}
		t := &tx{b: b}
		err = fn(t)
		t.done = true
		fnErr = err
		return err
	}
	alone := j.writers.Add(1) == 1
	var err error
	if j.write == writePlain || (j.write == writeAuto && alone) {
		err = j.db.Update(run)
	} else {
		err = j.db.Batch(run)
	}
	j.writers.Add(-1)
	switch {
	case err == nil:
		return nil
	case !ran || fnErr != nil:
		// fn failed (and was rolled back), or no transaction could start.
		return fmt.Errorf("journal: update: %w", err)
	}
	err = fmt.Errorf("journal %s: commit: %w: %w", j.path, ErrCommit, err)
	j.mu.Lock()
	if j.failure == nil {
		j.failure = err
	}
	j.mu.Unlock()
	return err
}

// view runs fn in a read-only transaction with the journal's buckets.
func (j *Journal) view(ctx context.Context, fn func(b buckets) error) error {
	if err := j.enter(); err != nil {
		return err
	}
	defer j.ops.Done()
	if err := ctx.Err(); err != nil {
		return err
	}
	return j.db.View(func(btx *bolt.Tx) error {
		b, err := openBuckets(btx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// Get returns the record for a client_transaction_id, or an error wrapping
// payment.ErrNotFound (ErrCorrupt if the stored record does not decode).
func (j *Journal) Get(ctx context.Context, id string) (*payment.Record, error) {
	var r *payment.Record
	err := j.view(ctx, func(b buckets) (err error) {
		r, err = b.get(id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("journal: get: %w", err)
	}
	return r, nil
}

// ByReference returns the record that carries transaction_reference ref, or
// an error wrapping payment.ErrNotFound. When several records carry it (a
// follow-up may echo its original's reference) it returns the one created
// first, which is the original; ties go to the smaller id.
func (j *Journal) ByReference(ctx context.Context, ref string) (*payment.Record, error) {
	var best *payment.Record
	err := j.view(ctx, func(b buckets) error {
		if ref == "" {
			return payment.ErrNotFound
		}
		prefix := refPrefix(ref)
		c := b.byRef.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			r, err := b.get(string(k[len(prefix):]))
			if err != nil {
				return fmt.Errorf("by_reference entry: %w", err)
			}
			if best == nil || r.CreatedAt.Before(best.CreatedAt) {
				best = r
			}
		}
		if best == nil {
			return payment.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journal: by reference %q: %w", ref, err)
	}
	return best, nil
}

// InFlight returns every record whose status is not final (pending, unknown
// or needs_attention), oldest first. It reads the in_flight index and then only those
// records, so its cost follows their number, not the journal's size.
func (j *Journal) InFlight(ctx context.Context) ([]*payment.Record, error) {
	var out []*payment.Record
	err := j.view(ctx, func(b buckets) error {
		return b.inFlight.ForEach(func(k, _ []byte) error {
			r, err := b.get(string(k))
			if err != nil {
				return fmt.Errorf("in_flight entry: %w", err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("journal: in flight: %w", err)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].CreatedAt.Equal(out[b].CreatedAt) {
			return out[a].CreatedAt.Before(out[b].CreatedAt)
		}
		return out[a].ID < out[b].ID
	})
	return out, nil
}

// fileSize returns the size of the journal file on disk.
func (j *Journal) fileSize() (int64, error) {
	st, err := os.Stat(j.path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
