package journal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/posbridge/posbridge/internal/payment"
)

// Page sizes of List.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// maxListScan caps the index entries one List call examines, so that a
// selective filter over a large journal cannot hold a read transaction (which
// blocks bbolt from remapping a growing file, and so a payment's write) for
// long. When it is reached List returns what it found with a cursor.
const maxListScan = 10_000

// cursorVersion starts every cursor, so that a cursor from another layout is
// refused instead of misread.
const cursorVersion = 1

// List returns the records that match f, newest first (by created_at, then
// id descending), at most f.Limit of them (DefaultListLimit when zero or
// less, MaxListLimit at most), and a cursor for the next page, "" when no
// index entry is left in the range. A page may hold fewer than the limit and
// still have a cursor: when it stopped after examining maxListScan entries,
// or when the entries left turn out not to match. Paging is stable under
// concurrent inserts: a cursor is a position in created_at order, so records
// created after the first page never appear on later pages and none before it
// is skipped or repeated.
//
// A malformed cursor, status or operation is a *payment.Error with
// CodeValidation naming the field.
func (j *Journal) List(ctx context.Context, f payment.Filter) ([]*payment.Record, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", &payment.Error{Code: payment.CodeValidation, Field: "status", Message: fmt.Sprintf("unknown status %q", f.Status)}
	}
	if f.Operation != "" && !f.Operation.Valid() {
		return nil, "", &payment.Error{Code: payment.CodeValidation, Field: "operation", Message: fmt.Sprintf("unknown operation %q", f.Operation)}
	}
	// upper is an exclusive bound: the page starts at the largest key below it.
	var upper []byte
	if f.Cursor != "" {
		k, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", &payment.Error{Code: payment.CodeValidation, Field: "cursor", Message: err.Error()}
		}
		upper = k
	}
	if !f.To.IsZero() {
		if !timeFits(f.To) {
			return nil, "", &payment.Error{Code: payment.CodeValidation, Field: "to", Message: "time out of range"}
		}
		if tb := timeBound(f.To); upper == nil || bytes.Compare(tb, upper) < 0 {
			upper = tb
		}
	}
	var lower []byte // inclusive
	if !f.From.IsZero() {
		if !timeFits(f.From) {
			return nil, "", &payment.Error{Code: payment.CodeValidation, Field: "from", Message: "time out of range"}
		}
		lower = timeBound(f.From)
	}
	filtered := f.Status != "" || f.Operation != "" || f.Terminal != ""

	var (
		out    []*payment.Record
		cursor string
	)
	err := j.view(ctx, func(b buckets) error {
		c := b.byTime.Cursor()
		var k []byte
		if upper == nil {
			k, _ = c.Last()
		} else if k, _ = c.Seek(upper); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for scanned := 0; k != nil && (lower == nil || bytes.Compare(k, lower) >= 0); k, _ = c.Prev() {
			if len(out) == limit || scanned == maxListScan {
				cursor = encodeCursor(k)
				return nil
			}
			scanned++
			_, id, ok := splitTimeKey(k)
			if !ok {
				return fmt.Errorf("%w: malformed by_time key %x", ErrCorrupt, k)
			}
			v := b.records.Get([]byte(id))
			if v == nil {
				return fmt.Errorf("%w: by_time entry for missing record %q", ErrCorrupt, id)
			}
			if filtered && !matches(v, f) {
				continue
			}
			r, err := b.get(id)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("journal: list: %w", err)
	}
	return out, cursor, nil
}

// encodeCursor makes the cursor for a page that starts with the by_time
// entry next. A cursor holds an exclusive upper bound, so it holds the
// smallest key greater than next: next followed by a zero byte.
func encodeCursor(next []byte) string {
	bound := append(append([]byte{cursorVersion}, next...), 0)
	return base64.RawURLEncoding.EncodeToString(bound)
}

// decodeCursor returns the exclusive upper bound a cursor stands for.
func decodeCursor(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != cursorVersion {
		return nil, fmt.Errorf("malformed cursor %q", s)
	}
	return b[1:], nil
}

// listHead is the part of a stored record List filters on; decoding only it
// skips building records that are filtered out.
type listHead struct {
	Status    payment.Status    `json:"status"`
	Operation payment.Operation `json:"operation"`
	Terminal  string            `json:"terminal"`
}

// matches reports whether the stored record v passes f's field filters. A
// record that does not decode matches, so that the full decode reports it.
func matches(v []byte, f payment.Filter) bool {
	var h listHead
	if err := json.Unmarshal(v, &h); err != nil {
		return true
	}
	return (f.Status == "" || h.Status == f.Status) &&
		(f.Operation == "" || h.Operation == f.Operation) &&
		(f.Terminal == "" || h.Terminal == f.Terminal)
}
