package terminal

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Card safety (research/anchors-reliability.md §4.2): posbridge never keeps
// a full card number, track data, CVV, PIN block, expiry or the EMV data that
// carries them. Everything it hands back from a terminal (Result.Raw,
// TerminalError.Raw, search answers) goes through scrubJSON first:
//
//   - values under sensitive keys (ISO 8583 F2 PAN, F14 expiry, F35/F45
//     tracks, F52 PIN, F55 EMV data, EMV tags 5A/57/56/5F20/5F24/99/9F1F/
//     9F20/9F0B, track/cvv/pin/expiry names) are replaced by "[redacted]";
//   - a masked-card value that is not really masked (see maskedPAN) is
//     redacted too;
//   - any other string, and any integer, that holds a run of 12–19 digits
//     (spaces or dashes between digit groups allowed) passing the Luhn check is
//     replaced by its masked form, first 6 and last 4 digits kept;
//   - except under keys known to be identifiers that may look like a card
//     number by chance: an 18-digit ticket number passes Luhn one time in
//     ten, so does a 13-digit millisecond timestamp.

// MaxRaw caps a raw answer kept in a Result or an error.
const MaxRaw = 64 << 10

// redacted replaces values under sensitive keys.
const redacted = "[redacted]"

// normKey folds a JSON key for the key tables: lower case, no '_' or '-'.
func normKey(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_' || c == '-':
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sensitiveKeys hold card data that is never kept at all (normKey form).
var sensitiveKeys = map[string]bool{
	"f2": true, "f14": true, "f35": true, "f36": true, "f45": true, "f52": true, "f55": true,
	"5a": true, "57": true, "56": true, "5f20": true, "5f24": true, "99": true,
	"9f1f": true, "9f20": true, "9f0b": true,
	"pan": true, "cardnumber": true, "track1": true, "track2": true, "track1data": true,
	"track2data": true, "trackdata": true, "cvv": true, "cvv2": true, "cvc": true, "cvc2": true,
	"cid": true, "pin": true, "pinblock": true, "expirydate": true, "expirationdate": true,
	"expdate": true, "cardexpiry": true, "expiry": true, "cardholdername": true,
	"emvdata": true, "iccdata": true, "emv": true,
}

// maskedKeys hold a masked card number: kept only when really masked.
var maskedKeys = map[string]bool{
	"maskedcard": true, "maskedpan": true, "cardmasked": true, "masked": true,
}

// identifierKeys hold identifiers and times that may pass as a card number
// by chance and are kept as they are.
var identifierKeys = map[string]bool{
	"ticketnumber": true, "ticket": true, "f11": true, "f37": true, "f38": true, "f39": true,
	"f41": true, "f42": true, "transactionreference": true, "clienttransactionid": true,
	"transactionid": true, "reference": true, "uniquereference": true, "terminalid": true,
	"serialnumber": true, "serial": true, "authorizationcode": true, "authorizationnumber": true,
	"approvalcode": true, "merchantid": true, "eventid": true, "rrn": true, "stan": true,
	"created": true, "createdat": true, "updatedat": true, "date": true, "timestamp": true,
	"startdate": true, "enddate": true, "processorid": true,
}

// scrubJSON returns b, a JSON document or anything else, as JSON with card
// data masked: a JSON value is walked and re-encoded compactly, anything
// else becomes a JSON string of its scrubbed text. It caps the result at
// limit bytes (0: no cap) by keeping a scrubbed prefix as a string in
// {"truncated":true,"bytes":N,"prefix":"…"}.
func scrubJSON(b []byte, limit int) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if v, ok := decodeAny(b); ok {
		return scrubDecoded(v, limit)
	}
	return capRaw(encodeCompact(scrubText(strings.ToValidUTF8(string(b), "\uFFFD"))), limit)
}

// scrubDecoded is scrubJSON for a value decoded by decodeAny; it changes
// maps in v in place.
func scrubDecoded(v any, limit int) json.RawMessage {
	return capRaw(encodeCompact(scrubValue("", v)), limit)
}

func capRaw(out []byte, limit int) json.RawMessage {
	if limit > 0 && len(out) > limit {
		return truncateRaw(out, limit)
	}
	return out
}

// decodeAny decodes one JSON value, numbers kept as json.Number, and
// nothing after it.
func decodeAny(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	for _, c := range b[dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return nil, false
		}
	}
	return v, true
}

// encodeCompact marshals v without HTML escaping and without the trailing
// newline of json.Encoder.
func encodeCompact(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Values decoded from JSON, plain strings and the request structs
		// always encode; this is unreachable.
		panic("terminal: encode: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// truncateRaw keeps as much of the scrubbed document as fits in limit, as a
// string: valid JSON whatever the cut.
func truncateRaw(out []byte, limit int) []byte {
	keep := limit - 64
	for keep > 0 {
		for keep > 0 && !utf8.RuneStart(out[keep]) {
			keep--
		}
		t := encodeCompact(struct {
			Truncated bool   `json:"truncated"`
			Bytes     int    `json:"bytes"`
			Prefix    string `json:"prefix"`
		}{true, len(out), string(out[:keep])})
		if len(t) <= limit {
			return t
		}
		keep -= len(t) - limit
	}
	return []byte(`{"truncated":true}`)
}

// scrubValue returns v with card data masked; key is the key v sits under
// (the array's key for its elements). It changes maps in place.
func scrubValue(key string, v any) any {
	k := normKey(key)
	if sensitiveKeys[k] {
		// Whatever it holds, even an object or an array.
		if s, ok := v.(string); v == nil || (ok && s == "") {
			return v
		}
		return redacted
	}
	switch x := v.(type) {
	case map[string]any:
		for ck, cv := range x {
			x[ck] = scrubValue(ck, cv)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = scrubValue(key, e)
		}
		return x
	case nil, bool:
		return v
	}
	if identifierKeys[k] {
		return v
	}
	switch x := v.(type) {
	case string:
		if maskedKeys[k] && x != "" && !maskedPAN(x) {
			return redacted
		}
		return scrubText(x)
	case json.Number:
		if s := string(x); isPAN(s) {
			return maskDigits(s)
		}
	}
	return v
}

// maskedPAN reports whether s looks like a masked card number that is safe to
// keep: it has mask characters and shows at most 10 digits (first 6 and last
// 4, the most PCI DSS allows displaying; research §4.1).
func maskedPAN(s string) bool {
	if len(s) > 40 || !utf8.ValidString(s) {
		return false
	}
	digits, mask := 0, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '*' || r == 'x' || r == 'X' || r == '•' || r == '#':
			mask = true
		}
	}
	return mask && digits <= 10
}

// isPAN reports whether s is 12–19 ASCII digits passing the Luhn check.
func isPAN(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return luhn(s)
}

// luhn checks the Luhn digit of an all-digit string.
func luhn(d string) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// maskDigits keeps the first 6 and last 4 of a digit string.
func maskDigits(d string) string {
	return d[:6] + strings.Repeat("*", len(d)-10) + d[len(d)-4:]
}

// group is a run of digits in a text, [start, end).
type group struct{ start, end int }

// scrubText replaces every card number in free text by its masked form. A
// card number is 12–19 digits passing Luhn, in groups separated by single
// spaces or dashes ("4242 4242 4242 4242"); the longest such span starting at
// each group wins, so "4242424242424242 1226" loses the number and keeps the
// rest. The digits a mask keeps can join a neighbouring group into a new
// span, so it scans again until nothing changes; a text still changing after
// a few scans (only a contrived one can) is redacted whole. Its result is
// therefore a fixpoint, found in linear time.
func scrubText(s string) string {
	for range 4 {
		t := scrubOnce(s)
		if t == s {
			return s
		}
		s = t
	}
	return redacted
}

func scrubOnce(s string) string {
	if len(s) < 12 {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		groups := digitGroups(s, i)
		end := groups[len(groups)-1].end
		for g := 0; g < len(groups); {
			span, digits := -1, ""
			var acc []byte
			for h := g; h < len(groups); h++ {
				acc = append(acc, s[groups[h].start:groups[h].end]...)
				if len(acc) > 19 {
					break
				}
				if len(acc) >= 12 && luhn(string(acc)) {
					span, digits = h, string(acc)
				}
			}
			if span < 0 {
				g++
				continue
			}
			if b.Len() == 0 && last == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:groups[g].start])
			b.WriteString(maskDigits(digits))
			last = groups[span].end
			g = span + 1
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// digitGroups returns the digit groups of the run starting at s[i]: groups
// separated by exactly one space or dash.
func digitGroups(s string, i int) []group {
	var gs []group
	for {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		gs = append(gs, group{i, j})
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
			i = j + 1
			continue
		}
		return gs
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
