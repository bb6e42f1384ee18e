package payment

import (
	"fmt"

	"github.com/posbridge/posbridge/internal/money"
)

// Amount is the Kushki ONE amount object, shared by the local API and the
// terminal's Payment API (seeds/kushki-one-smartpos-payment-api.txt, "Amount
// Structure"). Values are decimal major units ("12.50" PEN), exact.
type Amount struct {
	IVA          money.Decimal  `json:"iva"`
	SubtotalIVA  money.Decimal  `json:"subtotal_iva"`
	SubtotalIVA0 money.Decimal  `json:"subtotal_iva0"`
	Tip          *money.Decimal `json:"tip,omitempty"`
	ExtraTaxes   *ExtraTaxes    `json:"extra_taxes,omitempty"`
}

// ExtraTaxes are the additional taxes Kushki ONE accepts on charge,
// authorization and pos_tip.
type ExtraTaxes struct {
	AirportTax   *money.Decimal `json:"airport_tax,omitempty"`
	IAC          *money.Decimal `json:"iac,omitempty"`
	ICE          *money.Decimal `json:"ice,omitempty"`
	TravelAgency *money.Decimal `json:"travel_agency,omitempty"`
}

// Total returns the sum of every field: iva, both subtotals, tip and extra taxes.
func (a Amount) Total() money.Decimal {
	var t money.Decimal
	a.each(func(_ string, d money.Decimal) { t = t.Add(d) })
	return t
}

// each calls f for every field that is present, with its JSON path.
func (a Amount) each(f func(field string, d money.Decimal)) {
	f("amount.iva", a.IVA)
	f("amount.subtotal_iva", a.SubtotalIVA)
	f("amount.subtotal_iva0", a.SubtotalIVA0)
	if a.Tip != nil {
		f("amount.tip", *a.Tip)
	}
	if x := a.ExtraTaxes; x != nil {
		for _, t := range []struct {
			name string
			d    *money.Decimal
		}{{"airport_tax", x.AirportTax}, {"iac", x.IAC}, {"ice", x.ICE}, {"travel_agency", x.TravelAgency}} {
			if t.d != nil {
				f("amount.extra_taxes."+t.name, *t.d)
			}
		}
	}
}

func (a Amount) clone() Amount {
	c := a
	c.Tip = cloneDec(a.Tip)
	if a.ExtraTaxes != nil {
		x := ExtraTaxes{
			AirportTax:   cloneDec(a.ExtraTaxes.AirportTax),
			IAC:          cloneDec(a.ExtraTaxes.IAC),
			ICE:          cloneDec(a.ExtraTaxes.ICE),
			TravelAgency: cloneDec(a.ExtraTaxes.TravelAgency),
		}
		c.ExtraTaxes = &x
	}
	return c
}

// Validate checks the amount rules for op in currency cur, before anything is
// written or sent:
//   - every value is non-negative and has at most the currency's decimal places
//     (CLP/COP 0, MXN/PEN 2);
//   - tip only on a tip operation, where it is required and > 0;
//   - extra_taxes only on charge, authorization and tip;
//   - the total is > 0, except on a re-authorization, where 0 only extends the
//     hold's validity (seeds: "Send subtotal_iva0: 0 to extend only the validity").
//
// JSON decoding has already rejected non-numbers, NaN, infinities and values
// beyond money.Max. The error is a *Error with code validation_failed naming
// the field.
func (a Amount) Validate(op Operation, cur money.Currency) error {
	places, ok := cur.Places()
	if !ok {
		return Errorf(CodeValidation, "currency %q is not supported", cur)
	}
	var err error
	a.each(func(field string, d money.Decimal) {
		switch {
		case err != nil:
		case d.Sign() < 0:
			err = fieldError(field, "must not be negative")
		case d.Places() > places:
			err = fieldError(field, fmt.Sprintf("%s takes at most %d decimal places", cur, places))
		}
	})
	if err != nil {
		return err
	}
	if a.Tip != nil && op != OpTip {
		return fieldError("amount.tip", "tip is only allowed on a tip operation")
	}
	if op == OpTip && (a.Tip == nil || a.Tip.Sign() <= 0) {
		return fieldError("amount.tip", "a tip operation needs amount.tip greater than 0")
	}
	if a.ExtraTaxes != nil && op != OpCharge && op != OpAuthorization && op != OpTip {
		return fieldError("amount.extra_taxes", "extra_taxes are only allowed on charge, authorization and tip")
	}
	if op != OpReauthorization && a.Total().Sign() <= 0 {
		return fieldError("amount", "the total must be greater than 0")
	}
	if a.Total().Cmp(money.Max) > 0 {
		return fieldError("amount", "the total is too large")
	}
	return nil
}

func fieldError(field, msg string) *Error {
	return &Error{Code: CodeValidation, Message: field + ": " + msg, Field: field}
}
