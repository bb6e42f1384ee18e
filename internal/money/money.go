// Package money holds exact decimal amounts and the currencies posbridge knows.
//
// posbridge never uses binary floating point for money. A Decimal is a fixed-point
// number with Scale fractional digits stored in an int64; it is parsed from and
// written to JSON number literals exactly, so "12.50" in is 12.5 out, never
// 12.4999999.
package money

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Scale is the number of fractional digits a Decimal keeps. Four covers every
// ISO 4217 minor unit; the currencies Kushki ONE serves use 0 or 2.
const Scale = 4

const unit = 10000 // 10^Scale

// Max is the largest magnitude a Decimal may hold: 10^11 major units. It keeps
// sums and percentage arithmetic of validated amounts far from int64 overflow.
var Max = Decimal{v: 100_000_000_000 * unit}

// Errors returned by Parse and UnmarshalJSON.
var (
	ErrSyntax    = errors.New("not a decimal number")
	ErrPrecision = errors.New("more than 4 decimal places")
	ErrRange     = errors.New("out of range")
)

// Decimal is an exact decimal number with at most Scale fractional digits.
// The zero value is 0. Decimals are comparable with ==.
type Decimal struct {
	v int64 // value × 10^Scale
}

// New returns units × 10^-exp, e.g. New(1250, 2) is 12.50. It panics if exp is
// not in [0, Scale]; it is meant for constants and tests.
func New(units int64, exp int) Decimal {
	if exp < 0 || exp > Scale {
		panic("money: exponent out of range")
	}
	return Decimal{v: units * pow10(Scale-exp)}
}

// Parse reads a JSON number literal (optionally in exponent form, e.g. "1.5e2")
// exactly. It fails with ErrSyntax for anything that is not a JSON number,
// ErrPrecision when the value needs more than Scale fractional digits, and
// ErrRange when its magnitude exceeds Max.
func Parse(s string) (Decimal, error) {
	in := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	// Split mantissa and exponent.
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		es := s[i+1:]
		eneg := strings.HasPrefix(es, "-")
		if eneg || strings.HasPrefix(es, "+") {
			es = es[1:]
		}
		if es == "" || !digitsOnly(es) {
			return Decimal{}, fmt.Errorf("%q: %w", in, ErrSyntax)
		}
		if es = strings.TrimLeft(es, "0"); len(es) > 2 {
			return Decimal{}, fmt.Errorf("%q: %w", in, ErrRange)
		}
		e, _ := strconv.Atoi(es)
		if eneg {
			e = -e
		}
		exp, s = e, s[:i]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if !digitsOnly(intPart) || intPart == "" || (hasDot && (frac == "" || !digitsOnly(frac))) ||
		(len(intPart) > 1 && intPart[0] == '0') {
		return Decimal{}, fmt.Errorf("%q: %w", in, ErrSyntax)
	}
	// value = digits × 10^(exp - len(frac)); drop trailing zeros of the
	// fraction first so 1.500000 is accepted as 1.5.
	digits := strings.TrimLeft(intPart+frac, "0")
	shift := exp - len(frac) + Scale // power of ten to multiply digits by, in units
	for shift < 0 && strings.HasSuffix(digits, "0") {
		digits, shift = digits[:len(digits)-1], shift+1
	}
	if digits == "" {
		return Decimal{}, nil
	}
	if shift < 0 {
		return Decimal{}, fmt.Errorf("%q: %w", in, ErrPrecision)
	}
	if len(digits)+shift > 18 {
		return Decimal{}, fmt.Errorf("%q: %w", in, ErrRange)
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return Decimal{}, fmt.Errorf("%q: %w", in, ErrRange)
	}
	v *= pow10(shift)
	if v > Max.v {
		return Decimal{}, fmt.Errorf("%q: %w", in, ErrRange)
	}
	if neg {
		v = -v
	}
	return Decimal{v: v}, nil
}

// MustParse is Parse for constants and tests; it panics on error.
func MustParse(s string) Decimal {
	d, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return d
}

// String returns the shortest exact decimal form: "12.5", "0", "-3".
func (d Decimal) String() string {
	v := d.v
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	i, f := v/unit, v%unit
	if f == 0 {
		return sign + strconv.FormatInt(i, 10)
	}
	fs := fmt.Sprintf("%0*d", Scale, f)
	return sign + strconv.FormatInt(i, 10) + "." + strings.TrimRight(fs, "0")
}

// Fixed returns d with exactly places fractional digits ("12.50" for places 2).
// Digits beyond places are not rounded but must be zero; callers validate first.
func (d Decimal) Fixed(places int) string {
	s := d.String()
	if places <= 0 {
		return s
	}
	i, f, _ := strings.Cut(s, ".")
	if len(f) > places {
		return s
	}
	return i + "." + f + strings.Repeat("0", places-len(f))
}

// MarshalJSON writes d as a JSON number in its shortest exact form.
func (d Decimal) MarshalJSON() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalJSON accepts only a JSON number literal; strings, null, booleans
// and objects are errors, as are numbers Parse rejects.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return fmt.Errorf("money: %s: must be a number", b)
	}
	v, err := Parse(string(b))
	if err != nil {
		return fmt.Errorf("money: %w", err)
	}
	*d = v
	return nil
}

// Sign returns -1, 0 or +1.
func (d Decimal) Sign() int {
	switch {
	case d.v < 0:
		return -1
	case d.v > 0:
		return 1
	}
	return 0
}

// IsZero reports whether d is 0.
func (d Decimal) IsZero() bool { return d.v == 0 }

// Cmp returns -1, 0 or +1 as d is less than, equal to or greater than e.
func (d Decimal) Cmp(e Decimal) int {
	switch {
	case d.v < e.v:
		return -1
	case d.v > e.v:
		return 1
	}
	return 0
}

// Add returns d + e. Sums of validated amounts (each ≤ Max) cannot overflow.
func (d Decimal) Add(e Decimal) Decimal { return Decimal{v: d.v + e.v} }

// Sub returns d - e.
func (d Decimal) Sub(e Decimal) Decimal { return Decimal{v: d.v - e.v} }

// Percent returns d × p / 100 exactly when that is representable, truncated
// toward zero otherwise (used only for limits such as the 110 % capture rule,
// where the caller compares against it).
func (d Decimal) Percent(p int64) Decimal { return Decimal{v: d.v * p / 100} }

// Places returns how many fractional digits d needs (0 to Scale).
func (d Decimal) Places() int {
	f := d.v % unit
	if f < 0 {
		f = -f
	}
	n := Scale
	for n > 0 && f%10 == 0 {
		f /= 10
		n--
	}
	if f == 0 {
		return 0
	}
	return n
}

// Minor returns d in minor units of a currency with the given number of places
// (1250 for 12.50 at 2 places). ok is false when d has more places than that.
func (d Decimal) Minor(places int) (units int64, ok bool) {
	if places < 0 || places > Scale || d.Places() > places {
		return 0, false
	}
	return d.v / pow10(Scale-places), true
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// Currency is an ISO 4217 code of a currency a Kushki ONE terminal may be
// configured for.
type Currency string

// The currencies of the markets Kushki ONE serves (docs: "primeros pasos").
const (
	CLP Currency = "CLP"
	COP Currency = "COP"
	MXN Currency = "MXN"
	PEN Currency = "PEN"
)

// Places returns the number of decimal places amounts in c may carry
// (CLP 0, COP 0, MXN 2, PEN 2 per Kushki ONE's first-steps guide), and false
// for a currency posbridge does not know.
func (c Currency) Places() (int, bool) {
	switch c {
	case CLP, COP:
		return 0, true
	case MXN, PEN:
		return 2, true
	}
	return 0, false
}
