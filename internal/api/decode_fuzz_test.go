package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/posbridge/posbridge/internal/payment"
)

// kindSearch selects decodeSearch in FuzzDecodeRequest; the other values
// are bodyKinds.
const kindSearch = 4

// FuzzDecodeRequest feeds arbitrary bodies to the request decoders
// (seed corpus in testdata/fuzz/FuzzDecodeRequest). Invariants: no panic;
// a refusal is bad_request or validation_failed with a message; an accepted
// body is one valid JSON object (or empty) whose keys are exactly allowed
// field names, and decoding is stable: the decoded request, encoded again,
// decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []struct {
		kind uint8
		body string
	}{
		{0, `{"client_transaction_id":"3f1c9a52-0d5e-4b8e-9a3f-6a2f1d7c4b10","terminal":"lane1","amount":{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0},"metadata":{"t":"1"}}`},
		{1, `{"amount":{"tip":2.5}}`},
		{2, `{"client_transaction_id":"x"}`},
		{3, `{}`},
		{kindSearch, `{"source":"local","page":2,"size":10,"from":"2026-03-10T10:00:00Z"}`},
	} {
		f.Add(s.kind, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := bodyKind(kind % 5)
		if k == kindSearch {
			q, perr := decodeSearch(body)
			if perr != nil {
				checkRefusal(t, perr)
				return
			}
			checkAccepted(t, body, []string{"source", "client_transaction_id", "transaction_reference", "from", "to", "page", "size"})
			if (q.Source != payment.SearchLocal && q.Source != payment.SearchOnline) || q.Page < 0 || q.Size < 0 || q.Size > maxSearchSize {
				t.Fatalf("accepted a search out of bounds: %+v", q)
			}
			return
		}
		ob, perr := decodeOperation(body, k)
		if perr != nil {
			checkRefusal(t, perr)
			return
		}
		checkAccepted(t, body, fieldsOf[k])
		again, perr := decodeOperation(encodeOp(t, ob), k)
		if perr != nil || !reflect.DeepEqual(again, ob) {
			t.Fatalf("not stable: %+v re-encoded decodes to %+v, %v", ob, again, perr)
		}
	})
}

func checkRefusal(t *testing.T, perr *payment.Error) {
	t.Helper()
	if (perr.Code != payment.CodeBadRequest && perr.Code != payment.CodeValidation) || perr.Message == "" {
		t.Fatalf("refusal %+v: want bad_request or validation_failed with a message", perr)
	}
}

// checkAccepted checks an accepted body: valid JSON, an object, top-level
// keys only from allowed (compared exactly).
func checkAccepted(t *testing.T, body []byte, allowed []string) {
	t.Helper()
	if len(bytes.TrimSpace(body)) == 0 {
		return
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("accepted a body encoding/json refuses as an object: %v", err)
	}
	for k := range top {
		found := false
		for _, a := range allowed {
			found = found || k == a
		}
		if !found {
			t.Fatalf("accepted field %q, allowed %v", k, allowed)
		}
	}
}

// encodeOp writes a decoded request back as JSON.
func encodeOp(t *testing.T, ob opBody) []byte {
	t.Helper()
	m := map[string]any{}
	if ob.ID != "" {
		m["client_transaction_id"] = ob.ID
	}
	if ob.Terminal != "" {
		m["terminal"] = ob.Terminal
	}
	if ob.Amount != nil {
		m["amount"] = ob.Amount
	}
	if ob.Metadata != nil {
		m["metadata"] = ob.Metadata
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode %+v: %v", ob, err)
	}
	return b
}

// TestDecodeErrors pins the decoder's answers for the cases its messages
// and fields matter to a POS developer.
func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		kind       bodyKind
		code       payment.Code
		field      string
		msg        string
	}{
		{"case-folded", `{"Amount":{}}`, bodyPayment, payment.CodeBadRequest, "Amount", `did you mean "amount"`},
		{"duplicate", `{"amount":{"iva":1,"iva":2}}`, bodyPayment, payment.CodeBadRequest, "amount.iva", "duplicate key"},
		{"string number", `{"amount":{"iva":"1"}}`, bodyPayment, payment.CodeBadRequest, "amount.iva", "must be a JSON number, not a string"},
		{"null metadata", `{"metadata":null}`, bodyPayment, payment.CodeBadRequest, "metadata", "must be a JSON object, not null"},
		{"surrogate pair is fine, lone is not", `{"metadata":{"a":"\ud83d\ude00","b":"\udc00"}}`, bodyPayment, payment.CodeBadRequest, "", "lone UTF-16 surrogate"},
		{"trailing", `{} []`, bodyCancel, payment.CodeBadRequest, "", "unexpected data after"},
		{"syntax", `{"a" 1}`, bodyCancel, payment.CodeBadRequest, "", "not valid JSON"},
		{"precision", `{"amount":{"iva":0.00001}}`, bodyFollowUp, payment.CodeValidation, "amount.iva", "too many decimal places"},
		{"extra tax unknown", `{"amount":{"extra_taxes":{"vat":1}}}`, bodyPayment, payment.CodeBadRequest, "amount.extra_taxes.vat", "unknown field"},
		{"abort field", `{"x":1}`, bodyEmpty, payment.CodeBadRequest, "x", "unknown field"},
	} {
		_, perr := decodeOperation([]byte(c.body), c.kind)
		if perr == nil || perr.Code != c.code || perr.Field != c.field || !bytes.Contains([]byte(perr.Message), []byte(c.msg)) {
			t.Errorf("%s: got %+v, want %s on %q saying %q", c.name, perr, c.code, c.field, c.msg)
		}
	}
	ob, perr := decodeOperation([]byte(` {"amount":{"iva":1.80,"subtotal_iva":10,"extra_taxes":{"iac":0.5}},"metadata":{"a":"\ud83d\ude00"}} `), bodyPayment)
	if perr != nil || ob.Amount.IVA.String() != "1.8" || ob.Amount.ExtraTaxes.IAC.String() != "0.5" || ob.Amount.Tip != nil || ob.Metadata["a"] != "😀" {
		t.Errorf("valid body: got %+v %v", ob, perr)
	}
}
