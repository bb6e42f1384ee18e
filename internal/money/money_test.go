package money

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the result; "" when an error is expected
		err  error
	}{
		{"0", "0", nil},
		{"-0", "0", nil},
		{"12", "12", nil},
		{"12.50", "12.5", nil},
		{"12.5000000", "12.5", nil},
		{"0.0001", "0.0001", nil},
		{"1e2", "100", nil},
		{"1.5E+1", "15", nil},
		{"1500e-3", "1.5", nil},
		{"-3.25", "-3.25", nil},
		{"100000000000", "100000000000", nil},
		{"0.00001", "", ErrPrecision},
		{"1.23456", "", ErrPrecision},
		{"100000000000.0001", "", ErrRange},
		{"1e12", "", ErrRange},
		{"123456789012345678901234567890", "", ErrRange},
		{"1e999", "", ErrRange},
		{"", "", ErrSyntax},
		{"-", "", ErrSyntax},
		{"+1", "", ErrSyntax},
		{"01", "", ErrSyntax},
		{"1.", "", ErrSyntax},
		{".5", "", ErrSyntax},
		{"1e", "", ErrSyntax},
		{"1e+-5", "", ErrSyntax},
		{"1e++5", "", ErrSyntax},
		{"NaN", "", ErrSyntax},
		{"Infinity", "", ErrSyntax},
		{"0x10", "", ErrSyntax},
		{"1,5", "", ErrSyntax},
		{" 1", "", ErrSyntax},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Parse(%q): got %v, %v; want error %v", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("Parse(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestJSONIsExact(t *testing.T) {
	var v struct {
		A Decimal `json:"a"`
	}
	if err := json.Unmarshal([]byte(`{"a": 0.1}`), &v); err != nil {
		t.Fatal(err)
	}
	sum := v.A.Add(v.A).Add(v.A)
	if sum.String() != "0.3" {
		t.Errorf("0.1+0.1+0.1: got %s, want 0.3 (no binary floating point)", sum)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"a":0.1}` {
		t.Errorf("marshal: got %s", b)
	}
	for _, bad := range []string{`{"a":"12"}`, `{"a":null}`, `{"a":true}`, `{"a":{}}`, `{"a":1.23456}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s): got nil error", bad)
		}
	}
}

func TestHelpers(t *testing.T) {
	d := MustParse("12.5")
	if d.Places() != 1 || MustParse("12").Places() != 0 || MustParse("0.0001").Places() != 4 {
		t.Error("Places")
	}
	if got := d.Fixed(2); got != "12.50" {
		t.Errorf("Fixed(2): got %s", got)
	}
	if u, ok := d.Minor(2); !ok || u != 1250 {
		t.Errorf("Minor(2): got %d %v, want 1250", u, ok)
	}
	if _, ok := d.Minor(0); ok {
		t.Error("Minor(0) of 12.5: got ok")
	}
	if got := MustParse("100").Percent(110); got.String() != "110" {
		t.Errorf("Percent: got %s", got)
	}
	if New(1250, 2) != d {
		t.Error("New(1250,2) != 12.5")
	}
	if MustParse("-1").Cmp(MustParse("1")) != -1 || d.Sign() != 1 || !MustParse("0").IsZero() {
		t.Error("Cmp/Sign/IsZero")
	}
	for c, want := range map[Currency]int{CLP: 0, COP: 0, MXN: 2, PEN: 2} {
		if p, ok := c.Places(); !ok || p != want {
			t.Errorf("%s.Places: got %d %v, want %d", c, p, ok, want)
		}
	}
	if _, ok := Currency("USD").Places(); ok {
		t.Error("USD: got ok")
	}
}

// FuzzParse checks that any input either fails cleanly or parses to a value
// that prints and re-parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "12.50", "-3.25", "1e2", "1.5E+1", "0.0001", "1e999", "NaN", "01", "99999999999.9999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(d.String())
		if err != nil || back != d {
			t.Fatalf("Parse(%q) = %s; re-parse: %v %v", s, d, back, err)
		}
		if d.Cmp(Max) > 0 || d.Cmp(Max.Sub(Max).Sub(Max)) < 0 {
			t.Fatalf("Parse(%q) = %s beyond Max", s, d)
		}
	})
}
