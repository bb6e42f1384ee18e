package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// Bucket and key names. The file layout (schema version 1):
//
//	records       id → stored record (JSON, see stored)
//	by_reference  uvarint(len(ref)) ‖ ref ‖ id → empty
//	by_time       created_at (ns, sign bit flipped, big-endian) ‖ id → empty
//	in_flight     id → empty, for every record whose status is not final
//	meta          "schema" → "1"; "records" → uint64 big-endian record count
const (
	bucketRecords  = "records"
	bucketByRef    = "by_reference"
	bucketByTime   = "by_time"
	bucketInFlight = "in_flight"
	bucketMeta     = "meta"

	metaSchema = "schema"
	metaCount  = "records"

	// schemaVersion is the layout this code reads and writes. Open refuses any
	// other: a newer file may hold data this version would misread or drop.
	schemaVersion = 1
)

// bucketNames lists every bucket a journal file must have.
func bucketNames() []string {
	return []string{bucketRecords, bucketByRef, bucketByTime, bucketInFlight, bucketMeta}
}

// stored is a record as the journal keeps it. Reply shadows Record.Reply so
// the reply is kept as base64 bytes: encoding/json compacts and HTML-escapes a
// json.RawMessage when it marshals it, and a retry must get the reply back
// byte for byte (payment.Record.Reply). The other raw fields (the terminal's
// response) keep their JSON meaning but may be re-spaced.
type stored struct {
	payment.Record
	Reply []byte `json:"reply,omitempty"`
}

// encodeRecord returns the stored form of r. It fails only when a raw JSON
// field of r holds invalid JSON.
func encodeRecord(r *payment.Record) ([]byte, error) {
	b, err := json.Marshal(stored{Record: *r, Reply: r.Reply})
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", r.ID, err)
	}
	return b, nil
}

// decodeRecord parses a stored record into a new Record that shares no memory
// with b. It fails on anything that is not a stored record with an id.
func decodeRecord(b []byte) (*payment.Record, error) {
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if s.ID == "" {
		return nil, errors.New("decode record: no client_transaction_id")
	}
	r := s.Record
	if s.Reply != nil {
		r.Reply = json.RawMessage(s.Reply)
	}
	return &r, nil
}

// checkRecord reports why r cannot be stored: the keys need an id and a
// created_at that fits in int64 nanoseconds, and the in-flight index needs a
// known status.
func checkRecord(r *payment.Record) error {
	switch {
	case r == nil:
		return errors.New("nil record")
	case r.ID == "":
		return errors.New("empty client_transaction_id")
	case !timeFits(r.CreatedAt):
		return fmt.Errorf("created_at %s is zero or outside the years 1678-2262", r.CreatedAt.Format(time.RFC3339Nano))
	case !r.Status.Valid():
		return fmt.Errorf("unknown status %q", r.Status)
	}
	return nil
}

// timeFits reports whether t survives a round trip through UnixNano.
func timeFits(t time.Time) bool {
	return !t.IsZero() && time.Unix(0, t.UnixNano()).Equal(t)
}

// timeKey is the by_time key of a record: its created_at in nanoseconds with
// the sign bit flipped, so that keys sort by time even before 1970, then the
// id, so that records created in the same nanosecond stay distinct.
func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63))
	copy(k[8:], id)
	return k
}

// timeBound is the smallest by_time key at time t: every key of an earlier
// time sorts before it, every key at t or later at or after it.
func timeBound(t time.Time) []byte { return timeKey(t, "") }

// splitTimeKey undoes timeKey. ok is false for a key too short to be one.
func splitTimeKey(k []byte) (ns int64, id string, ok bool) {
	if len(k) <= 8 {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), string(k[8:]), true
}

// refPrefix starts every by_reference key of ref. The length prefix keeps
// one reference from being a prefix of another's keys.
func refPrefix(ref string) []byte {
	k := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(ref)), uint64(len(ref)))
	return append(k, ref...)
}

// refKey is the by_reference key linking ref to the record id. Several
// records may carry one reference (a follow-up may echo its original's), so
// the id is part of the key.
func refKey(ref, id string) []byte {
	return append(refPrefix(ref), id...)
}

// splitRefKey undoes refKey. ok is false for a malformed key.
func splitRefKey(k []byte) (ref, id string, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return "", "", false
	}
	ref, id = string(k[w:w+int(n)]), string(k[w+int(n):])
	return ref, id, ref != "" && id != ""
}

// encodeCount and decodeCount store the record count in meta.
func encodeCount(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeCount(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
