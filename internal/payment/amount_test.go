package payment

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/posbridge/posbridge/internal/money"
)

func TestAmountRules(t *testing.T) {
	tests := []struct {
		name   string
		op     Operation
		cur    money.Currency
		amount string // JSON
		field  string // the field the error must name; "" when valid
	}{
		{"charge PEN", OpCharge, money.PEN, `{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0.2}`, ""},
		{"charge CLP whole", OpCharge, money.CLP, `{"iva":0,"subtotal_iva":0,"subtotal_iva0":1500}`, ""},
		{"charge CLP 1500.00 is whole", OpCharge, money.CLP, `{"subtotal_iva0":1500.00}`, ""},
		{"charge CLP decimals", OpCharge, money.CLP, `{"subtotal_iva0":1500.5}`, "amount.subtotal_iva0"},
		{"charge COP decimals", OpCharge, money.COP, `{"subtotal_iva0":10,"iva":0.1}`, "amount.iva"},
		{"charge MXN three decimals", OpCharge, money.MXN, `{"subtotal_iva0":10.001}`, "amount.subtotal_iva0"},
		{"negative", OpCharge, money.PEN, `{"subtotal_iva0":10,"iva":-1}`, "amount.iva"},
		{"zero total", OpCharge, money.PEN, `{"subtotal_iva0":0}`, "amount"},
		{"tip on charge", OpCharge, money.PEN, `{"subtotal_iva0":10,"tip":1}`, "amount.tip"},
		{"tip on tip", OpTip, money.PEN, `{"tip":1.5}`, ""},
		{"tip missing", OpTip, money.PEN, `{"subtotal_iva0":1}`, "amount.tip"},
		{"tip zero", OpTip, money.PEN, `{"tip":0}`, "amount.tip"},
		{"extra taxes on charge", OpCharge, money.PEN, `{"subtotal_iva0":10,"extra_taxes":{"airport_tax":2,"ice":0.5}}`, ""},
		{"extra taxes on tip", OpTip, money.PEN, `{"tip":1,"extra_taxes":{"iac":1}}`, ""},
		{"extra taxes on capture", OpCapture, money.PEN, `{"subtotal_iva0":10,"extra_taxes":{"iac":1}}`, "amount.extra_taxes"},
		{"extra taxes on refund", OpRefund, money.PEN, `{"subtotal_iva0":10,"extra_taxes":{"iac":1}}`, "amount.extra_taxes"},
		{"negative extra tax", OpCharge, money.PEN, `{"subtotal_iva0":10,"extra_taxes":{"travel_agency":-2}}`, "amount.extra_taxes.travel_agency"},
		{"reauthorization zero extends", OpReauthorization, money.PEN, `{"subtotal_iva0":0}`, ""},
		{"capture", OpCapture, money.PEN, `{"subtotal_iva0":10}`, ""},
		{"unknown currency", OpCharge, "USD", `{"subtotal_iva0":10}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Amount
			if err := json.Unmarshal([]byte(tt.amount), &a); err != nil {
				t.Fatalf("decode %s: %v", tt.amount, err)
			}
			err := a.Validate(tt.op, tt.cur)
			if tt.cur == "USD" {
				if err == nil {
					t.Fatal("got nil, want an unsupported currency error")
				}
				return
			}
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Code != CodeValidation || e.Field != tt.field {
				t.Fatalf("got %#v, want validation_failed on %s", err, tt.field)
			}
		})
	}
}

func TestAmountTotalAndEncodingAreExact(t *testing.T) {
	var a Amount
	in := `{"iva":0.1,"subtotal_iva":0.2,"subtotal_iva0":0,"extra_taxes":{"airport_tax":0.3}}`
	if err := json.Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	if got := a.Total().String(); got != "0.6" {
		t.Errorf("total: got %s, want 0.6", got)
	}
	out, _ := json.Marshal(a)
	if string(out) != `{"iva":0.1,"subtotal_iva":0.2,"subtotal_iva0":0,"extra_taxes":{"airport_tax":0.3}}` {
		t.Errorf("encode: got %s", out)
	}
}

func TestRequestHashIgnoresSpelling(t *testing.T) {
	a1, a2 := &Amount{SubtotalIVA0: money.MustParse("12.50")}, &Amount{SubtotalIVA0: money.MustParse("12.5")}
	r1 := Request{Operation: OpCharge, ID: "x", Terminal: "lane1", Amount: a1}
	r2 := Request{Operation: OpCharge, ID: "x", Terminal: "lane1", Amount: a2}
	if r1.Hash() != r2.Hash() {
		t.Error("12.50 and 12.5 hash differently")
	}
	r2.Amount = &Amount{SubtotalIVA0: money.MustParse("12.51")}
	if r1.Hash() == r2.Hash() {
		t.Error("different amounts hash the same")
	}
}

// FuzzAmountValidate feeds arbitrary JSON to the amount decoder and
// validator: neither may panic, and every amount they accept obeys the rules.
func FuzzAmountValidate(f *testing.F) {
	for _, s := range []string{
		`{"iva":1.8,"subtotal_iva":10,"subtotal_iva0":0.2}`,
		`{"subtotal_iva0":1e2}`, `{"tip":1}`, `{"subtotal_iva0":-0}`,
		`{"subtotal_iva0":99999999999.99,"iva":99999999999.99}`,
		`{"extra_taxes":{"iac":0.01},"subtotal_iva0":1}`, `{"subtotal_iva0":"1"}`, `[]`, `null`,
	} {
		for _, op := range []string{"charge", "tip", "capture", "reauthorization"} {
			f.Add([]byte(s), op, "PEN")
		}
	}
	f.Add([]byte(`{"subtotal_iva0":10.5}`), "charge", "CLP")
	f.Fuzz(func(t *testing.T, data []byte, op, cur string) {
		var a Amount
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&a) != nil {
			return
		}
		if a.Validate(Operation(op), money.Currency(cur)) != nil {
			return
		}
		places, _ := money.Currency(cur).Places()
		a.each(func(field string, d money.Decimal) {
			if d.Sign() < 0 || d.Places() > places {
				t.Fatalf("accepted %s = %s for %s", field, d, cur)
			}
		})
		if Operation(op) != OpReauthorization && a.Total().Sign() <= 0 {
			t.Fatalf("accepted a zero total for %s: %s", op, data)
		}
		if a.Tip != nil && Operation(op) != OpTip {
			t.Fatalf("accepted a tip on %s", op)
		}
		if strings.Contains(a.Total().String(), "e") {
			t.Fatalf("total not in plain decimal form: %s", a.Total())
		}
	})
}
