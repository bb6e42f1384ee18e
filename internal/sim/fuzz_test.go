package sim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

var fuzzEndpoints = []terminal.Endpoint{
	terminal.EndpointCharge, terminal.EndpointAuthorization, terminal.EndpointCapture,
	terminal.EndpointReAuthorization, terminal.EndpointPosTip, terminal.EndpointVoid,
	terminal.EndpointRefund, terminal.EndpointAbort, terminal.EndpointSearchOnline,
	terminal.EndpointSearchLocal,
}

// FuzzHandler sends one signed request with an arbitrary body to a terminal
// that already holds an approved charge and authorization (the body's
// "@charge" and "@auth" are replaced by their references). Whatever the body,
// the simulator must not panic, must answer JSON with a 2xx or 4xx status
// (never 5xx), must refuse with a PARAMETER or ACQUIRER error on 400, and its
// ledger must stay consistent. The committed corpus is in
// testdata/fuzz/FuzzHandler.
func FuzzHandler(f *testing.F) {
	f.Add(uint8(0), false, []byte(`{"client_transaction_id":"6680eadc-6c8d-44aa-8ca0-18e061c1472a","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":12.5}}`))
	f.Add(uint8(2), true, []byte(`{"client_transaction_id":"6680eadc-6c8d-44aa-8ca0-18e061c1472a","transaction_reference":"@auth","amount":{"iva":1,"subtotal_iva":9,"subtotal_iva0":100}}`))
	f.Add(uint8(4), false, []byte(`{"client_transaction_id":"6680eadc-6c8d-44aa-8ca0-18e061c1472a","transaction_reference":"@charge","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":0,"tip":3,"extra_taxes":{"iac":1}}}`))
	f.Add(uint8(5), false, []byte(`{"client_transaction_id":"6680eadc-6c8d-44aa-8ca0-18e061c1472a","transaction_reference":"@charge"}`))
	f.Add(uint8(6), true, []byte(`{"client_transaction_id":"6680eadc-6c8d-44aa-8ca0-18e061c1472a","transaction_reference":"@charge","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":1e2}}`))
	f.Add(uint8(7), true, []byte(`{}`))
	f.Add(uint8(8), false, []byte(`{"page":1,"size":500,"filters":{"transaction_type":"charge","start_date":1}}`))
	f.Add(uint8(9), false, []byte(`{"page":9223372036854775807,"size":1,"filters":{}}`))
	f.Add(uint8(0), false, []byte(`{"a":{"a":{"a":[[[[[[{"b":1}]]]]]]}}}`))
	f.Add(uint8(1), false, []byte("\xff\xfe{"))
	f.Fuzz(func(t *testing.T, which uint8, onCloud bool, body []byte) {
		now := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
		s, err := sim.New(sim.Config{
			Serial: testSerial, Credential: hmac.Credential{Secret: testSecret},
			ThinkTime: -1, DelayedApproval: -1, VoidMinWait: -1, Location: time.UTC, Now: func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		signer, err := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		send := func(ep terminal.Endpoint, cloudRoute bool, b []byte) *recorder {
			m, p := terminal.Path(terminal.LAN, ep)
			p = "/terminal/v1" + p
			if cloudRoute {
				m, p = terminal.Path(terminal.Cloud, ep)
				p = "/terminal/v1/" + testSerial + p
			}
			sealed, err := signer.Seal(m, b, now)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(m, p, bytes.NewReader(sealed.Body))
			req.Header = sealed.Header
			rec := &recorder{header: http.Header{}}
			s.Handler().ServeHTTP(rec, req)
			return rec
		}
		refOf := func(rec *recorder) string {
			var r terminal.PaymentResponse
			if err := json.Unmarshal(rec.body.Bytes(), &r); err != nil || r.TransactionReference == "" {
				t.Fatalf("set-up payment failed: %d %s", rec.status, rec.body.Bytes())
			}
			return r.TransactionReference
		}
		charge := refOf(send(terminal.EndpointCharge, false,
			[]byte(`{"client_transaction_id":"11111111-1111-4111-8111-111111111111","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":100}}`)))
		auth := refOf(send(terminal.EndpointAuthorization, false,
			[]byte(`{"client_transaction_id":"22222222-2222-4222-8222-222222222222","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":100}}`)))
		body = bytes.ReplaceAll(body, []byte("@charge"), []byte(charge))
		body = bytes.ReplaceAll(body, []byte("@auth"), []byte(auth))

		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		rec := send(ep, onCloud, body)
		switch rec.status {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict:
		default:
			t.Fatalf("%s: status %d (%s), want 200, 400, 404 or 409", ep, rec.status, rec.body.Bytes())
		}
		var m map[string]any
		if err := json.Unmarshal(rec.body.Bytes(), &m); err != nil {
			t.Fatalf("%s: answer %q is not a JSON object: %v", ep, rec.body.Bytes(), err)
		}
		if rec.status == http.StatusBadRequest && m["type"] != terminal.TypeParameter && m["type"] != terminal.TypeAcquirer {
			t.Fatalf("%s: 400 of type %v, want PARAMETER or ACQUIRER", ep, m["type"])
		}
		if rec.status == http.StatusOK && ep != terminal.EndpointAbort && ep != terminal.EndpointSearchLocal &&
			ep != terminal.EndpointSearchOnline {
			if _, ok := m["approved"].(bool); !ok {
				t.Fatalf("%s: 200 without approved: %s", ep, rec.body.Bytes())
			}
		}
		l := s.Ledger()
		if l.Totals.DoubleCharges != 0 || l.Totals.Outstanding.Sign() < 0 || l.Totals.Returned.Cmp(l.Totals.Taken) > 0 {
			t.Fatalf("ledger inconsistent after %s %s: %+v", ep, body, l.Totals)
		}
		for _, e := range l.Entries {
			if e.Returned.Cmp(e.Taken) > 0 && e.TimesTaken > 0 || e.Held.Sign() < 0 {
				t.Fatalf("entry inconsistent: %+v", e)
			}
		}
		if bytes.Contains(rec.body.Bytes(), []byte("4242424242424242")) {
			t.Fatal("an answer carries the full card number without the leak_pan fault")
		}
	})
}
