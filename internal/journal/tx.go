package journal

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/payment"
)

// buckets are the journal's buckets inside one bbolt transaction.
type buckets struct {
	records, byRef, byTime, inFlight, meta *bolt.Bucket
}

// openBuckets finds every bucket in btx, or fails wrapping ErrCorrupt.
func openBuckets(btx *bolt.Tx) (buckets, error) {
	b := buckets{
		records:  btx.Bucket([]byte(bucketRecords)),
		byRef:    btx.Bucket([]byte(bucketByRef)),
		byTime:   btx.Bucket([]byte(bucketByTime)),
		inFlight: btx.Bucket([]byte(bucketInFlight)),
		meta:     btx.Bucket([]byte(bucketMeta)),
	}
	for name, x := range map[string]*bolt.Bucket{bucketRecords: b.records, bucketByRef: b.byRef,
		bucketByTime: b.byTime, bucketInFlight: b.inFlight, bucketMeta: b.meta} {
		if x == nil {
			return buckets{}, fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
		}
	}
	return b, nil
}

// get returns a fresh copy of the record stored under id, or an error
// wrapping payment.ErrNotFound, or one wrapping ErrCorrupt when the stored
// bytes do not decode to a record with that id.
func (b buckets) get(id string) (*payment.Record, error) {
	v := b.records.Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("record %q: %w", id, payment.ErrNotFound)
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w: %w", id, ErrCorrupt, err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("record %q: %w: stored id is %q", id, ErrCorrupt, r.ID)
	}
	return r, nil
}

// errTxDone is returned by a Tx used after its Update's function returned.
var errTxDone = errors.New("journal: transaction used after its function returned")

// tx is the payment.Tx handed to one run of an Update function. A new tx is
// made for every run (db.Batch may run a function more than once), it holds
// nothing but the bbolt buckets of that run, and Put writes only into them,
// so a run that is rolled back leaves no trace. It is not safe for
// concurrent use.
type tx struct {
	b    buckets
	done bool
}

var _ payment.Tx = (*tx)(nil)

// Get returns a copy of the record, or an error wrapping payment.ErrNotFound.
func (t *tx) Get(id string) (*payment.Record, error) {
	if t.done {
		return nil, errTxDone
	}
	r, err := t.b.get(id)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return r, nil
}

// Put inserts or replaces r (by r.ID) and brings every index in step: the
// by_time key follows created_at, the by_reference entry follows
// transaction_reference, and the id is in in_flight exactly while the status
// is not final. r is encoded at once; changing r afterwards changes nothing.
// Put fails, and the caller's function should return its error so the whole
// transaction rolls back, when r lacks an id, a usable created_at or a known
// status, when r's raw JSON fields are not valid JSON, or when bbolt refuses
// a key (over 32 KiB).
func (t *tx) Put(r *payment.Record) error {
	if t.done {
		return errTxDone
	}
	if err := checkRecord(r); err != nil {
		if r == nil {
			return fmt.Errorf("journal: put: %w", err)
		}
		return fmt.Errorf("journal: put %q: %w", r.ID, err)
	}
	val, err := encodeRecord(r)
	if err != nil {
		return fmt.Errorf("journal: put: %w", err)
	}
	old, err := t.b.get(r.ID)
	switch {
	case errors.Is(err, payment.ErrNotFound):
		old = nil
	case err != nil:
		return fmt.Errorf("journal: put %q: replace: %w", r.ID, err)
	}
	if err := t.b.put(old, r, val); err != nil {
		return fmt.Errorf("journal: put %q: %w", r.ID, err)
	}
	return nil
}

// put writes the encoded record val for r, which replaces old (nil for an
// insert), and updates the indexes and the record count.
func (b buckets) put(old, r *payment.Record, val []byte) error {
	id := []byte(r.ID)
	if err := b.records.Put(id, val); err != nil {
		return err
	}

	tk := timeKey(r.CreatedAt, r.ID)
	if old != nil {
		if otk := timeKey(old.CreatedAt, old.ID); !bytes.Equal(otk, tk) {
			if err := b.byTime.Delete(otk); err != nil {
				return err
			}
		}
	}
	if err := b.byTime.Put(tk, []byte{}); err != nil {
		return err
	}

	if old != nil && old.Reference != "" && old.Reference != r.Reference {
		if err := b.byRef.Delete(refKey(old.Reference, old.ID)); err != nil {
			return err
		}
	}
	if r.Reference != "" {
		if err := b.byRef.Put(refKey(r.Reference, r.ID), []byte{}); err != nil {
			return err
		}
	}

	if r.Status.Final() {
		if err := b.inFlight.Delete(id); err != nil {
			return err
		}
	} else if err := b.inFlight.Put(id, []byte{}); err != nil {
		return err
	}

	if old == nil {
		n, ok := decodeCount(b.meta.Get([]byte(metaCount)))
		if !ok {
			return fmt.Errorf("%w: meta record count is missing or malformed", ErrCorrupt)
		}
		if err := b.meta.Put([]byte(metaCount), encodeCount(n+1)); err != nil {
			return err
		}
	}
	return nil
}
