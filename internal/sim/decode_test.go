package sim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

const goodID = "6680eadc-6c8d-44aa-8ca0-18e061c1472a"

// TestMalformedInput sends bodies a terminal must refuse before touching its
// state: each gets 400 PARAMETER with the documented code and field, and
// nothing is recorded or charged.
func TestMalformedInput(t *testing.T) {
	amt := `"amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5}`
	cases := []struct {
		name  string
		ep    terminal.Endpoint
		body  string
		code  string
		param string
	}{
		{"not JSON", terminal.EndpointCharge, `{"client_transaction_id":`, sim.CodeMalformed, ""},
		{"empty", terminal.EndpointCharge, ``, sim.CodeMalformed, ""},
		{"array", terminal.EndpointCharge, `[1,2]`, sim.CodeMalformed, ""},
		{"trailing data", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `",` + amt + `} {}`, sim.CodeMalformed, ""},
		{"unknown field", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `",` + amt + `,"tips":1}`, sim.CodeMalformed, "tips"},
		{"unknown amount field", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5,"total":5}}`, sim.CodeMalformed, "amount.total"},
		{"unknown extra tax", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5,"extra_taxes":{"vat":1}}}`, sim.CodeMalformed, "amount.extra_taxes.vat"},
		{"duplicate key", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","client_transaction_id":"` + goodID + `",` + amt + `}`, sim.CodeMalformed, "client_transaction_id"},
		{"duplicate nested key", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"iva":0,"subtotal_iva":0,"subtotal_iva0":5}}`, sim.CodeMalformed, "amount.iva"},
		{"id wrong type", terminal.EndpointCharge, `{"client_transaction_id":5,` + amt + `}`, sim.CodeMalformed, "client_transaction_id"},
		{"amount as string", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":"5"}}`, sim.CodeMalformed, "amount.subtotal_iva0"},
		{"amount null", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":null}`, sim.CodeMissing, "amount"},
		{"amount not object", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":5}`, sim.CodeMalformed, "amount"},
		{"metadata wrong type", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `",` + amt + `,"metadata":{"device":1}}`, sim.CodeMalformed, "metadata"},
		{"negative", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":-1,"subtotal_iva":0,"subtotal_iva0":5}}`, sim.CodeAmountValue, "amount.iva"},
		{"three decimals in PEN", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5.001}}`, sim.CodeAmountValue, "amount.subtotal_iva0"},
		{"five decimals", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5.00001}}`, sim.CodeAmountValue, "amount.subtotal_iva0"},
		{"huge", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":1e40}}`, sim.CodeAmountValue, "amount.subtotal_iva0"},
		{"NaN", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":NaN}}`, sim.CodeMalformed, ""},
		{"missing iva", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"subtotal_iva":0,"subtotal_iva0":5}}`, sim.CodeMissing, "amount.iva"},
		{"zero total", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":0}}`, sim.CodeNotPositive, "amount"},
		{"no amount", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `"}`, sim.CodeMissing, "amount"},
		{"tip on charge", terminal.EndpointCharge, `{"client_transaction_id":"` + goodID + `","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5,"tip":1}}`, sim.CodeNotAllowed, "amount.tip"},
		{"extra taxes on capture", terminal.EndpointCapture, `{"client_transaction_id":"` + goodID + `","transaction_reference":"r","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5,"extra_taxes":{"iac":1}}}`, sim.CodeNotAllowed, "amount.extra_taxes"},
		{"extra taxes on refund", terminal.EndpointRefund, `{"client_transaction_id":"` + goodID + `","transaction_reference":"r","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5,"extra_taxes":{"iac":1}}}`, sim.CodeNotAllowed, "amount.extra_taxes"},
		{"pos_tip without tip", terminal.EndpointPosTip, `{"client_transaction_id":"` + goodID + `","transaction_reference":"r",` + amt + `}`, sim.CodeMissing, "amount.tip"},
		{"pos_tip zero tip", terminal.EndpointPosTip, `{"client_transaction_id":"` + goodID + `","transaction_reference":"r","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":0,"tip":0}}`, sim.CodeNotPositive, "amount.tip"},
		{"amount on void", terminal.EndpointVoid, `{"client_transaction_id":"` + goodID + `","transaction_reference":"r",` + amt + `}`, sim.CodeMalformed, "amount"},
		{"missing id", terminal.EndpointCharge, `{` + amt + `}`, sim.CodeMissing, "client_transaction_id"},
		{"id not a UUID", terminal.EndpointCharge, `{"client_transaction_id":"order-17",` + amt + `}`, sim.CodeBadID, "client_transaction_id"},
		{"id in braces", terminal.EndpointCharge, `{"client_transaction_id":"{6680eadc-6c8d-44aa-8ca0-18e061c1472a}",` + amt + `}`, sim.CodeBadID, "client_transaction_id"},
		{"missing reference", terminal.EndpointCapture, `{"client_transaction_id":"` + goodID + `",` + amt + `}`, sim.CodeMissing, "transaction_reference"},
		{"deep nesting", terminal.EndpointCharge, `{"metadata":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, sim.CodeMalformed, ""},
	}
	f := startSim(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b := f.post(t, c.ep, []byte(c.body))
			lf := failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, c.code)
			if c.param != "" && lf.Param != c.param {
				t.Errorf("param = %q, want %q (%s)", lf.Param, c.param, lf.Message)
			}
		})
	}
	t.Run("oversized", func(t *testing.T) {
		big := `{"client_transaction_id":"` + goodID + `",` + amt + `,"metadata":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
		st, b := f.post(t, terminal.EndpointCharge, []byte(big))
		failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, sim.CodeMalformed)
	})
	if st := f.sim.State(); st.Transactions != 0 || st.AuthFailures != 0 {
		t.Errorf("after malformed input: %d transactions, %d auth failures; want none", st.Transactions, st.AuthFailures)
	}
	if l := f.sim.Ledger(); len(l.Entries) != 0 {
		t.Errorf("ledger has %d entries, want none", len(l.Entries))
	}
}

func TestCurrencyDecimals(t *testing.T) {
	cases := []struct {
		cur   money.Currency
		total string
		ok    bool
	}{
		{"CLP", "1500", true},
		{"CLP", "1500.5", false},
		{"COP", "2000", true},
		{"COP", "2000.10", false},
		{"MXN", "12.34", true},
		{"MXN", "12.345", false},
		{"PEN", "12.3", true},
		{"PEN", "12.300", true}, // trailing zeros do not add places
	}
	for _, c := range cases {
		t.Run(string(c.cur)+" "+c.total, func(t *testing.T) {
			f := startSim(t, func(cfg *sim.Config) { cfg.Currency = c.cur })
			st, b := f.post(t, terminal.EndpointCharge, []byte(`{"client_transaction_id":"`+newID()+
				`","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":`+c.total+`}}`))
			if c.ok {
				if st != http.StatusOK {
					t.Fatalf("status %d %s, want 200", st, b)
				}
				return
			}
			failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, sim.CodeAmountValue)
		})
	}
}

func TestSearchValidation(t *testing.T) {
	f := startSim(t, nil)
	cases := []struct {
		name  string
		ep    terminal.Endpoint
		body  string
		code  string
		param string
	}{
		{"page 0", terminal.EndpointSearchLocal, `{"page":0,"size":10,"filters":{}}`, sim.CodeSearchParam, "page"},
		{"size 0", terminal.EndpointSearchLocal, `{"page":1,"size":0,"filters":{}}`, sim.CodeSearchParam, "size"},
		{"size 501", terminal.EndpointSearchOnline, `{"page":1,"size":501,"filters":{}}`, sim.CodeSearchParam, "size"},
		{"dates reversed", terminal.EndpointSearchOnline, `{"page":1,"size":1,"filters":{"start_date":2,"end_date":1}}`, sim.CodeSearchParam, "filters.start_date"},
		{"negative date", terminal.EndpointSearchOnline, `{"page":1,"size":1,"filters":{"end_date":-1}}`, sim.CodeSearchParam, "filters.end_date"},
		{"type on local", terminal.EndpointSearchLocal, `{"page":1,"size":1,"filters":{"transaction_type":"charge"}}`, sim.CodeSearchParam, "filters.transaction_type"},
		{"unknown type", terminal.EndpointSearchOnline, `{"page":1,"size":1,"filters":{"transaction_type":"sale"}}`, sim.CodeSearchParam, "filters.transaction_type"},
		{"unknown filter", terminal.EndpointSearchOnline, `{"page":1,"size":1,"filters":{"bin":"424242"}}`, sim.CodeMalformed, "bin"},
		{"page as string", terminal.EndpointSearchOnline, `{"page":"1","size":1}`, sim.CodeMalformed, "page"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b := f.post(t, c.ep, []byte(c.body))
			lf := failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, c.code)
			if lf.Param != c.param {
				t.Errorf("param = %q, want %q", lf.Param, c.param)
			}
		})
	}
	t.Run("local type message", func(t *testing.T) {
		st, b := f.post(t, terminal.EndpointSearchLocal, []byte(`{"page":1,"size":1,"filters":{"transaction_type":"charge"}}`))
		lf := failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, sim.CodeSearchParam)
		if !strings.Contains(lf.Message, "does not support transaction_type") {
			t.Errorf("message %q, want the seed's wording", lf.Message)
		}
	})
	t.Run("abort with parameters", func(t *testing.T) {
		m, p := cloud(terminal.EndpointAbort)
		st, b := f.do(t, m, p, []byte(`{"client_transaction_id":"x"}`))
		failure(t, st, b, http.StatusBadRequest, terminal.TypeParameter, sim.CodeMalformed)
	})
}
