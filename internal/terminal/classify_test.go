package terminal

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/posbridge/posbridge/internal/payment"
)

// outcome is what a classification case expects: a Result status, or an
// error of one kind.
type outcome string

const (
	wantApproved  outcome = "approved"
	wantDeclined  outcome = "declined"
	wantCancelled outcome = "cancelled"
	wantUnknown   outcome = "unknown"  // errors.Is(err, payment.ErrOutcomeUnknown)
	wantBusy      outcome = "busy"     // errors.Is(err, payment.ErrBusy)
	wantTermError outcome = "terminal" // *payment.TerminalError
)

func outcomeOf(res *payment.Result, err error) outcome {
	var te *payment.TerminalError
	switch {
	case err == nil && res != nil:
		return outcome(res.Status)
	case errors.Is(err, payment.ErrOutcomeUnknown):
		return wantUnknown
	case errors.Is(err, payment.ErrBusy):
		return wantBusy
	case errors.As(err, &te):
		return wantTermError
	}
	return outcome("unexpected: " + strconv.Quote(errString(err)))
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// classifyCases are the classification rules as data; they also seed the
// fuzz target.
var classifyCases = []struct {
	name   string
	status int
	body   string
	want   outcome
}{
	{"approved true", 200, `{"approved":true}`, wantApproved},
	{"approved false", 200, `{"approved":false,"message":"Declinada"}`, wantDeclined},
	{"APPROVAL top", 200, `{"transaction_status":"APPROVAL"}`, wantApproved},
	{"APPROVAL nested", 200, `{"message":"ok","rawResponse":{"transaction_status":"APPROVAL","transaction_reference":"r"}}`, wantApproved},
	{"approved nested", 200, `{"rawResponse":{"approved":true}}`, wantApproved},
	{"rawResponse as string", 200, `{"rawResponse":"{\"transaction_status\":\"APPROVAL\"}"}`, wantApproved},
	{"approved wins over nested DECLINED", 200, `{"approved":true,"rawResponse":{"transaction_status":"DECLINED"}}`, wantApproved},
	{"DECLINED top", 200, `{"transaction_status":"DECLINED","kushki_response":{"code":"05","message":"No autorizada"}}`, wantDeclined},
	{"DECLINED nested", 200, `{"approved":false,"rawResponse":{"transaction_status":"DECLINED"}}`, wantDeclined},
	{"ERROR status", 200, `{"rawResponse":{"transaction_status":"ERROR"}}`, wantDeclined},
	{"CANCELLED status", 200, `{"transaction_status":"CANCELLED"}`, wantCancelled},
	{"customer cancel", 200, `{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}`, wantCancelled},
	{"customer cancel wrapped", 200, `{"failure":{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}}`, wantCancelled},
	{"customer cancel numeric code", 200, `{"type":"TERMINAL-SUNMI","code":-1,"message":"User cancel"}`, wantCancelled},
	{"other 200 error", 200, `{"type":"TERMINAL","code":"TER-002","message":"Terminal offline"}`, wantTermError},
	{"200 error wrapped", 200, `{"failure":{"type":"ACQUIRER","code":"E001","message":"device rejected"}}`, wantTermError},
	{"200 busy", 200, `{"type":"TERMINAL","code":"TER-003","message":"busy"}`, wantBusy},
	{"failure-wrapped 400", 400, `{"failure":{"type":"PARAMETER","code":"PAR-003","param":"amount","message":"Amount must be a value greater than 0"}}`, wantTermError},
	{"envelope 400", 400, `{"type":"PARAMETER","code":"PAR-001","message":"missing client_transaction_id","object":{"serial_number":"P3SN0001"}}`, wantTermError},
	{"409 TER-003", 409, `{"type":"TERMINAL","code":"TER-003","message":"Another transaction is in progress"}`, wantBusy},
	{"409 other", 409, `{"type":"TERMINAL","code":"TER-009","message":"conflict"}`, wantTermError},
	{"401", 401, `{"message":"Unauthorized"}`, wantTermError},
	{"401 no body", 401, ``, wantTermError},
	{"404 empty", 404, ``, wantTermError},
	{"400 cancel body", 400, `{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel"}`, wantCancelled},
	{"500", 500, `{"type":"TERMINAL","code":"TER-500","message":"internal"}`, wantUnknown},
	{"502 html", 502, `<html>Bad Gateway</html>`, wantUnknown},
	{"504 empty", 504, ``, wantUnknown},
	{"302", 302, ``, wantUnknown},
	{"garbage 200", 200, `<html>hello</html>`, wantUnknown},
	{"truncated 200", 200, `{"approved":tr`, wantUnknown},
	{"truncated object", 200, `{"approved":true,"rawResponse":{"transaction_status":"APPR`, wantUnknown},
	{"empty 200", 200, ``, wantUnknown},
	{"empty object", 200, `{}`, wantUnknown},
	{"array 200", 200, `[{"approved":true}]`, wantUnknown},
	{"trailing data", 200, `{"approved":false} {"approved":true}`, wantUnknown},
	{"approved as string", 200, `{"approved":"true"}`, wantUnknown},
	{"approved as number", 200, `{"approved":1}`, wantUnknown},
	{"status as number", 200, `{"transaction_status":1}`, wantUnknown},
	{"unknown status", 200, `{"transaction_status":"PENDING"}`, wantUnknown},
	{"lower-case approval", 200, `{"transaction_status":"approval"}`, wantUnknown},
	{"rawResponse not an object", 200, `{"approved":false,"rawResponse":42}`, wantUnknown},
	{"message only", 200, `{"message":"Transaction declined"}`, wantUnknown},
	{"encrypted but not opened", 200, `{"data":"0011:2233"}`, wantUnknown},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Classify(tc.status, []byte(tc.body))
			if got := outcomeOf(res, err); got != tc.want {
				t.Fatalf("got %s (err %v), want %s", got, err, tc.want)
			}
			if res != nil && err != nil {
				t.Errorf("got both a result and an error %v", err)
			}
			var te *payment.TerminalError
			if errors.As(err, &te) {
				if te.HTTPStatus != tc.status {
					t.Errorf("got HTTPStatus %d, want %d", te.HTTPStatus, tc.status)
				}
				if te.Type == "" || te.Code == "" || te.Message == "" {
					t.Errorf("got TerminalError %+v, want type, code and message set", te)
				}
				if len(te.Raw) > 0 {
					mustJSON(t, te.Raw)
				}
			}
			if res != nil {
				mustJSON(t, res.Raw)
			}
		})
	}
}

func TestClassifyErrorDetails(t *testing.T) {
	_, err := Classify(400, []byte(`{"failure":{"type":"PARAMETER","code":"PAR-003","param":"amount","message":"Amount must be a value greater than 0"}}`))
	var te *payment.TerminalError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a TerminalError", err)
	}
	want := payment.TerminalError{HTTPStatus: 400, Type: "PARAMETER", Code: "PAR-003", Param: "amount",
		Message: "Amount must be a value greater than 0"}
	te.Raw = nil
	if !reflect.DeepEqual(*te, want) {
		t.Errorf("got %+v, want %+v", *te, want)
	}

	_, err = Classify(401, []byte(`{"message":"Unauthorized"}`))
	if !errors.As(err, &te) || te.Type != TypeAuthentication || te.HTTPStatus != 401 {
		t.Errorf("got %v, want an AUTHENTICATION TerminalError with status 401", err)
	}

	_, err = Classify(409, []byte(`{"type":"TERMINAL","code":"TER-003","message":"busy"}`))
	var be *BusyError
	if !errors.As(err, &be) || be.Code != CodeBusy || errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Errorf("got %v, want a BusyError only", err)
	}

	res, err := Classify(200, []byte(`{"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}`))
	if err != nil || res.Status != payment.StatusCancelled || res.Code != "-1" || res.Message != "User cancel the process" {
		t.Errorf("got %+v %v, want cancelled with code -1 and the message", res, err)
	}
}

// TestClassifyExtracts reads every field from an approval, top level
// first, then rawResponse.
func TestClassifyExtracts(t *testing.T) {
	res, err := Classify(200, []byte(approvedAnswer))
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Result{
		Status: payment.StatusApproved, Reference: "ref-123", TicketNumber: "000000000000000123",
		AuthorizationCode: "A1B2C3", Code: "000", Message: "Aprobada",
	}
	got := *res
	got.Card, got.Raw = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	wantCard := payment.Card{Brand: "VISA", Type: "credit", Masked: "424242******4242"}
	if res.Card == nil || *res.Card != wantCard {
		t.Errorf("got card %+v, want %+v", res.Card, wantCard)
	}
	mustJSON(t, res.Raw)

	// The top level wins over rawResponse; F39 stands in for a missing
	// kushki_response code.
	res, err = Classify(200, []byte(`{"approved":true,"transaction_reference":"top","message_fields":{"F39":"00"},`+
		`"rawResponse":{"transaction_reference":"nested","kushki_response":{"code":"000"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Reference != "top" || res.Code != "00" {
		t.Errorf("got reference %q code %q, want top and 00", res.Reference, res.Code)
	}
}

// withCheckDigit appends the Luhn digit to a digit string.
func withCheckDigit(prefix string) string {
	for d := '0'; d <= '9'; d++ {
		if s := prefix + string(d); luhn(s) {
			return s
		}
	}
	panic("unreachable")
}

// TestClassifyMasksCards: an answer that injects a full card number in every
// way we can think of comes back with none of it.
func TestClassifyMasksCards(t *testing.T) {
	const pan = "4242424242424242"
	ticket := withCheckDigit("12345678901234567") // 18 digits that pass Luhn
	stamp := withCheckDigit("176722560000")       // a 13-digit ms timestamp that passes Luhn
	body := `{"approved":true,"masked_card":"` + pan + `","pan":"` + pan + `",` +
		`"message":"card 4242 4242 4242 4242 exp 1226 approved",` +
		`"ticket_number":"` + ticket + `","created":` + stamp + `,` +
		`"rawResponse":{"transaction_status":"APPROVAL","F2":"` + pan + `","notes":["x",` + pan + `,"4242-4242-4242-4242"],` +
		`"message_fields":{"F38":"123456","F55":"5A0842424242424242425F24032612319F2701"},` +
		`"track2":"4242424242424242=2612101","masked":"42424242****4242","cvv":"123"}}`
	res, err := Classify(200, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != payment.StatusApproved {
		t.Fatalf("got %s, want approved", res.Status)
	}
	if res.Card != nil && res.Card.Masked != "" {
		t.Errorf("got masked card %q from a full card number, want it dropped", res.Card.Masked)
	}
	if strings.Contains(res.Message, "4242 4242 4242 4242") || !strings.Contains(res.Message, "424242******4242") {
		t.Errorf("got message %q, want the card number masked", res.Message)
	}
	raw := string(res.Raw)
	mustJSON(t, res.Raw)
	digits := strings.NewReplacer(" ", "", "-", "").Replace(raw)
	for _, leak := range []string{pan, "=2612101", "5A08", "\"123\"", "42424242****"} {
		if strings.Contains(digits, leak) || strings.Contains(raw, leak) {
			t.Errorf("raw answer still holds %q: %s", leak, raw)
		}
	}
	for _, keep := range []string{ticket, stamp, "424242******4242", `"F38":"123456"`} {
		if !strings.Contains(raw, keep) {
			t.Errorf("raw answer lost %q: %s", keep, raw)
		}
	}
	if res.TicketNumber != ticket {
		t.Errorf("got ticket %q, want %q", res.TicketNumber, ticket)
	}
}

func TestScrubText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"4242424242424242", "424242******4242"},
		{"4242 4242 4242 4242", "424242******4242"},
		{"4242-4242-4242-4242", "424242******4242"},
		{"pan 4242424242424242 1226 ok", "pan 424242******4242 1226 ok"},
		{"378282246310005", "378282*****0005"},   // Amex, 15 digits
		{"4242424242424241", "4242424242424241"}, // fails Luhn
		{"123456789012", "123456789012"},         // 12 digits, fails Luhn
		{"short 4242", "short 4242"},
		{"2026-03-04 05:06:07", "2026-03-04 05:06:07"},
		{"42424242424242424242", "42424242424242424242"}, // 20 digits: not a card number
		{"a4242424242424242b", "a424242******4242b"},
	}
	for _, tc := range cases {
		if got := scrubText(tc.in); got != tc.want {
			t.Errorf("scrubText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskedPAN(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"424242******4242", true},
		{"************4242", true},
		{"XXXX XXXX XXXX 4242", true},
		{"4242424242424242", false},
		{"42424242****4242", false}, // 12 digits visible
		{"4242", false},             // no mask
		{"", false},
	}
	for _, tc := range cases {
		if got := maskedPAN(tc.in); got != tc.want {
			t.Errorf("maskedPAN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestRawCapped: a huge answer is kept as a valid JSON document of at most
// MaxRaw bytes.
func TestRawCapped(t *testing.T) {
	body := `{"approved":false,"message":"` + strings.Repeat(`é\"x<>&`, 20000) + `"}`
	res, err := Classify(200, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Raw) > MaxRaw {
		t.Errorf("got raw of %d bytes, want at most %d", len(res.Raw), MaxRaw)
	}
	mustJSON(t, res.Raw)
	var trunc struct {
		Truncated bool `json:"truncated"`
		Bytes     int  `json:"bytes"`
	}
	if err := json.Unmarshal(res.Raw, &trunc); err != nil || !trunc.Truncated || trunc.Bytes <= MaxRaw {
		t.Errorf("got %+v (%v), want truncated with the original size", trunc, err)
	}
	if len(res.Message) > maxMessage {
		t.Errorf("got a message of %d bytes, want at most %d", len(res.Message), maxMessage)
	}
}

// FuzzClassify checks the invariants of Classify on any status and body:
// exactly one of result and error; a result is approved, declined or
// cancelled; approved exactly when the body says so at either level; 5xx is
// always unknown; everything handed back is valid JSON, capped, and holds no
// card number outside identifier keys.
func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases {
		f.Add(tc.status, []byte(tc.body))
	}
	f.Add(200, []byte(approvedAnswer))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, err := Classify(status, body)
		if (res == nil) == (err == nil) {
			t.Fatalf("got result %v and error %v, want exactly one", res, err)
		}
		if status >= 500 && !errors.Is(err, payment.ErrOutcomeUnknown) {
			t.Fatalf("status %d: got %v, want outcome unknown", status, err)
		}
		if res != nil {
			switch res.Status {
			case payment.StatusApproved, payment.StatusDeclined, payment.StatusCancelled:
			default:
				t.Fatalf("got status %q", res.Status)
			}
			checkRaw(t, res.Raw)
			if res.Card != nil && res.Card.Masked != "" && !maskedPAN(res.Card.Masked) {
				t.Fatalf("kept card %q that is not masked", res.Card.Masked)
			}
			if scrubText(res.Message) != res.Message {
				t.Fatalf("message %q holds a card number", res.Message)
			}
		}
		var te *payment.TerminalError
		if errors.As(err, &te) {
			checkRaw(t, te.Raw)
		}
		var ue *UnclearAnswerError
		if errors.As(err, &ue) {
			checkRaw(t, ue.Raw)
		}
		if status >= 200 && status < 300 {
			if got, want := res != nil && res.Status == payment.StatusApproved, saysApproved(body); got != want {
				t.Fatalf("approved %v, but the body says %v: %q", got, want, body)
			}
		}
	})
}

// saysApproved is the approval rule written as plainly as possible: a JSON
// object with approved == true or transaction_status == "APPROVAL", at the
// top or under rawResponse (an object or a string holding one), and no
// decision field of an unexpected type.
func saysApproved(body []byte) bool {
	top := decodeObject(body)
	if top == nil {
		return false
	}
	levels := []map[string]any{top}
	switch r := top["rawResponse"].(type) {
	case nil:
	case map[string]any:
		levels = append(levels, r)
	case string:
		o := decodeObject([]byte(r))
		if o == nil {
			return false
		}
		levels = append(levels, o)
	default:
		return false
	}
	yes := false
	for _, l := range levels {
		switch a := l["approved"].(type) {
		case nil:
		case bool:
			yes = yes || a
		default:
			return false
		}
		switch s := l["transaction_status"].(type) {
		case nil:
		case string:
			yes = yes || s == "APPROVAL"
		default:
			return false
		}
	}
	return yes
}

// checkRaw asserts the card-safety invariants of a raw answer.
func checkRaw(t *testing.T, raw json.RawMessage) {
	t.Helper()
	if len(raw) > MaxRaw {
		t.Fatalf("raw of %d bytes, want at most %d", len(raw), MaxRaw)
	}
	if raw == nil {
		return
	}
	v, ok := decodeAny(raw)
	if !ok {
		t.Fatalf("raw is not JSON: %.200q", raw)
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		k := normKey(key)
		switch x := v.(type) {
		case map[string]any:
			for ck, cv := range x {
				walk(ck, cv)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			if identifierKeys[k] {
				return
			}
			if sensitiveKeys[k] && x != "" && x != redacted {
				t.Fatalf("raw keeps %q under sensitive key %q", x, key)
			}
			if scrubText(x) != x {
				t.Fatalf("raw keeps a card number under %q: %q", key, x)
			}
		case json.Number:
			if !identifierKeys[k] && isPAN(string(x)) {
				t.Fatalf("raw keeps a card number under %q: %s", key, x)
			}
		}
	}
	walk("", v)
}

func BenchmarkClassify(b *testing.B) {
	body := []byte(approvedAnswer)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Classify(200, body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestScrubTextFixpoint: masking can create a new span from the kept digits
// and a neighbour; the scrubber scans until nothing changes.
func TestScrubTextFixpoint(t *testing.T) {
	in := "000000000000A42424242 424242424242" // found by FuzzClassify
	got := scrubText(in)
	if scrubText(got) != got {
		t.Errorf("scrubText(%q) = %q, which is not a fixpoint", in, got)
	}
	if strings.Contains(got, "424242424242") {
		t.Errorf("scrubText(%q) = %q, want the card number masked", in, got)
	}
}
