package journal

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/posbridge/posbridge/internal/payment"
)

// FuzzRecordCodec: decoding arbitrary bytes never panics, and whatever
// decodes survives encode∘decode: the second encoding equals the first byte
// for byte and the reply bytes are kept exactly. The seed corpus is in
// testdata/fuzz/FuzzRecordCodec.
func FuzzRecordCodec(f *testing.F) {
	for _, r := range []*payment.Record{fullRecord(), newRecord("min", at(0), payment.StatusUnknown)} {
		b, err := encodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(data)
		if err != nil {
			return
		}
		b1, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("encode of a decoded record: %v", err)
		}
		r2, err := decodeRecord(b1)
		if err != nil {
			t.Fatalf("decode of an encoded record: %v\n%s", err, b1)
		}
		if !bytes.Equal(r2.Reply, r.Reply) {
			t.Fatalf("reply: got %q, want %q", r2.Reply, r.Reply)
		}
		b2, err := encodeRecord(r2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encode∘decode changed the record:\n got %s\nwant %s", b2, b1)
		}
	})
}

// TestRecordCodecRoundTrip: a record the lifecycle writes comes back equal.
func TestRecordCodecRoundTrip(t *testing.T) {
	for _, r := range []*payment.Record{fullRecord(), newRecord("min", at(0), payment.StatusUnknown)} {
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", r.ID, got, r)
		}
	}
	for _, bad := range []string{``, `null`, `{}`, `[]`, `{"client_transaction_id":""}`, `{"client_transaction_id":"x","reply":"not base64!"}`} {
		if _, err := decodeRecord([]byte(bad)); err == nil {
			t.Errorf("decodeRecord(%q): got nil error, want one", bad)
		}
	}
}
