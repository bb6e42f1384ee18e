package hmac

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSecret = "c0ffee5ecre7b05111e55c0de0000001"
	testSerial = "PB2600001234"
	chargeBody = `{"amount":{"subtotal_iva":0,"subtotal_iva0":1500,"iva":0},"client_transaction_id":"pb-0001"}`
	utf8Body   = `{"client_transaction_id":"pb-0002","metadata":{"nota":"café ☕ — 10 €"}}`
)

var modes = []Mode{ModeHMAC, ModeEncrypted}

// t0 is a whole second in the middle of a minute.
var t0 = time.Date(2026, 3, 24, 21, 55, 30, 0, time.UTC)

func testCred() Credential { return Credential{Secret: testSecret, Serial: testSerial} }

// fixedIV is an IV source that always yields the same byte.
type fixedIV byte

func (f fixedIV) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

// countingIV yields 0, 1, 2, ... and is not safe for concurrent use on its
// own, which is the point: the signer must serialise reads.
type countingIV struct{ n byte }

func (c *countingIV) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func mustSigner(tb testing.TB, mode Mode, cred Credential, opts ...Option) Signer {
	tb.Helper()
	s, err := NewSigner(mode, cred, opts...)
	if err != nil {
		tb.Fatalf("NewSigner(%s): %v", mode, err)
	}
	return s
}

func mustVerifier(tb testing.TB, mode Mode, cred Credential, opts VerifierOptions) Verifier {
	tb.Helper()
	v, err := NewVerifier(mode, cred, opts)
	if err != nil {
		tb.Fatalf("NewVerifier(%s): %v", mode, err)
	}
	return v
}

func mustSeal(tb testing.TB, s Signer, method string, body []byte, now time.Time) *Sealed {
	tb.Helper()
	sealed, err := s.Seal(method, body, now)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return sealed
}

// wantCode checks that err is an *AuthError with code and that its text
// reveals no part of the credential.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want *AuthError %s", err, code)
	}
	if ae.Code != code {
		t.Errorf("code = %s (%s), want %s", ae.Code, ae.Message, code)
	}
	for _, s := range []string{testSecret, testSerial} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals the credential", err)
		}
	}
}

func TestNewSignerAndVerifierValidate(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		cred Credential
		ok   bool
	}{
		{"hmac", ModeHMAC, Credential{Secret: "sekret42"}, true},
		{"hmac with serial", ModeHMAC, Credential{Secret: "sekret42", Serial: "X1"}, true},
		{"encrypted", ModeEncrypted, Credential{Secret: "sekret42", Serial: "X1"}, true},
		{"empty mode", "", Credential{Secret: "sekret42", Serial: "X1"}, false},
		{"unknown mode", "HMAC", Credential{Secret: "sekret42", Serial: "X1"}, false},
		{"hmac empty secret", ModeHMAC, Credential{Serial: "X1"}, false},
		{"encrypted empty secret", ModeEncrypted, Credential{Serial: "X1"}, false},
		{"encrypted empty serial", ModeEncrypted, Credential{Secret: "sekret42"}, false},
		{"secret with newline", ModeHMAC, Credential{Secret: "sekret42\n"}, false},
		{"secret with space", ModeEncrypted, Credential{Secret: "sekret 42", Serial: "X1"}, false},
		{"non-ASCII serial", ModeEncrypted, Credential{Secret: "sekret42", Serial: "Ñ1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSigner(tt.mode, tt.cred)
			if (err == nil) != tt.ok || (s != nil) != tt.ok {
				t.Errorf("NewSigner = %v, %v; want ok %v", s, err, tt.ok)
			}
			v, err := NewVerifier(tt.mode, tt.cred, VerifierOptions{EncryptResponses: true})
			if (err == nil) != tt.ok || (v != nil) != tt.ok {
				t.Errorf("NewVerifier = %v, %v; want ok %v", v, err, tt.ok)
			}
			if err != nil && tt.cred.Secret != "" && strings.Contains(err.Error(), tt.cred.Secret) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestCredentialRedacted(t *testing.T) {
	cred := testCred()
	holder := struct {
		Name string
		Cred Credential
	}{"lane1", cred}
	values := []any{cred, &cred, holder, &holder, []Credential{cred}, map[string]Credential{"a": cred}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for i, v := range values {
			got := fmt.Sprintf(verb, v)
			if strings.Contains(got, testSecret) || strings.Contains(got, testSerial) || !strings.Contains(got, "[redacted]") {
				t.Errorf("Sprintf(%s, values[%d]) = %q, want the credential redacted", verb, i, got)
			}
		}
	}
	if got := cred.String(); got != "[redacted]" {
		t.Errorf("String = %q, want [redacted]", got)
	}
	if got := cred.GoString(); got != "[redacted]" {
		t.Errorf("GoString = %q, want [redacted]", got)
	}
	for i, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(values[%d]): %v", i, err)
		}
		if bytes.Contains(b, []byte(testSecret)) || bytes.Contains(b, []byte(testSerial)) || !bytes.Contains(b, []byte(`"[redacted]"`)) {
			t.Errorf("json.Marshal(values[%d]) = %s, want the credential redacted", i, b)
		}
	}

	// The signers and verifiers hold the credential in unexported fields,
	// which fmt would otherwise print.
	for _, m := range modes {
		s := mustSigner(t, m, cred)
		v := mustVerifier(t, m, cred, VerifierOptions{})
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, x := range []any{s, v} {
				if got := fmt.Sprintf(verb, x); strings.Contains(got, testSecret) || strings.Contains(got, testSerial) {
					t.Errorf("Sprintf(%s, %T) = %q reveals the credential", verb, x, got)
				}
			}
		}
	}
}

// TestWindow signs at now+offset and verifies at now: ±5 minutes inclusive,
// measured on the verifier's clock.
func TestWindow(t *testing.T) {
	tests := []struct {
		offset time.Duration
		ok     bool
	}{
		{-301 * time.Second, false},
		{-300 * time.Second, true},
		{-299 * time.Second, true},
		{0, true},
		{299 * time.Second, true},
		{300 * time.Second, true},
		{301 * time.Second, false},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%v", m, tt.offset), func(t *testing.T) {
				sealed := mustSeal(t, mustSigner(t, m, testCred()), "POST", []byte(chargeBody), t0.Add(tt.offset))
				_, err := mustVerifier(t, m, testCred(), VerifierOptions{}).Verify("POST", sealed.Header, sealed.Body, t0)
				if tt.ok {
					if err != nil {
						t.Errorf("Verify: %v, want accepted", err)
					}
					return
				}
				wantCode(t, err, CodeTimestamp)
			})
		}
	}
}

// TestWindowUsesVerifierClock signs in 2020 and verifies with a 2020 clock:
// accepted only if Verify measures against its now argument, not the wall
// clock; then the same request is rejected six minutes later.
func TestWindowUsesVerifierClock(t *testing.T) {
	then := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			sealed := mustSeal(t, mustSigner(t, m, testCred()), "POST", []byte(chargeBody), then)
			v := mustVerifier(t, m, testCred(), VerifierOptions{})
			if _, err := v.Verify("POST", sealed.Header, sealed.Body, then.Add(10*time.Second)); err != nil {
				t.Errorf("Verify at signing time + 10 s: %v, want accepted", err)
			}
			_, err := v.Verify("POST", sealed.Header, sealed.Body, then.Add(6*time.Minute))
			wantCode(t, err, CodeTimestamp)
		})
	}
}

// TestTimestampUnits: hmac sends milliseconds, encrypted sends seconds, each
// from the signing instant.
func TestTimestampUnits(t *testing.T) {
	now := t0.Add(789 * time.Millisecond)
	for _, tt := range []struct {
		mode Mode
		want string
	}{
		{ModeHMAC, fmt.Sprint(now.UnixMilli())},
		{ModeEncrypted, fmt.Sprint(t0.Unix())},
	} {
		sealed := mustSeal(t, mustSigner(t, tt.mode, testCred()), "POST", []byte(chargeBody), now)
		if got := sealed.Header.Get("timestamp"); got != tt.want {
			t.Errorf("%s: timestamp = %s, want %s", tt.mode, got, tt.want)
		}
	}
}

// TestMinuteBoundary: the encrypted signer takes ts and the minute from one
// instant (research §3 steps 1–2), so hh:mm:59.999 signs with minute hh:mm,
// and the verifier takes the minute from ts, so the request still verifies
// after the minute has turned.
func TestMinuteBoundary(t *testing.T) {
	last := time.Date(2026, 3, 24, 21, 55, 59, 999_000_000, time.UTC)
	next := time.Date(2026, 3, 24, 21, 56, 0, 0, time.UTC)
	s := mustSigner(t, ModeEncrypted, testCred(), WithRand(fixedIV(7)))

	a := mustSeal(t, s, "POST", []byte(chargeBody), last)
	b := mustSeal(t, s, "POST", []byte(chargeBody), last.Truncate(time.Minute).Add(59*time.Second))
	c := mustSeal(t, s, "POST", []byte(chargeBody), next)
	if a.Header.Get("timestamp") != "1774389359" {
		t.Errorf("timestamp at %v = %s, want 1774389359", last, a.Header.Get("timestamp"))
	}
	if a.Header.Get("Authorization") != b.Header.Get("Authorization") || !bytes.Equal(a.Body, b.Body) {
		t.Errorf("Seal at :59.999 and at :59.000 differ, want the same second and minute")
	}
	if a.Header.Get("Authorization") == c.Header.Get("Authorization") || bytes.Equal(a.Body, c.Body) {
		t.Errorf("Seal at 21:55:59.999 and 21:56:00 agree, want different minutes")
	}
	if got, want := deriveKeys(testCred(), 1774389359).password, deriveKeys(testCred(), 1774389300).password; got != want {
		t.Errorf("password at 21:55:59 = %s, want the 21:55:00 one %s", got, want)
	}

	v := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{})
	for _, now := range []time.Time{last, next, next.Add(30 * time.Second), next.Add(4 * time.Minute)} {
		if _, err := v.Verify("POST", a.Header, a.Body, now); err != nil {
			t.Errorf("Verify at %v: %v, want accepted", now, err)
		}
	}
}

type tamper func(t *testing.T, h http.Header, body []byte) (http.Header, []byte)

func setHeader(name, value string) tamper {
	return func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
		h.Set(name, value)
		return h, b
	}
}

func delHeader(name string) tamper {
	return func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
		h.Del(name)
		return h, b
	}
}

func setBody(body string) tamper {
	return func(_ *testing.T, h http.Header, _ []byte) (http.Header, []byte) { return h, []byte(body) }
}

// changeData rewrites the hex IV and ciphertext of an encrypted body.
func changeData(f func(iv, ct []byte) (newIV, newCT []byte)) tamper {
	return func(t *testing.T, h http.Header, b []byte) (http.Header, []byte) {
		ivHex, ctHex, ok := encryptedShape(b)
		if !ok {
			t.Fatalf("body %s is not encrypted", b)
		}
		iv, ct, err := decodeData(ivHex, ctHex)
		if err != nil {
			t.Fatal(err)
		}
		iv, ct = f(iv, ct)
		return h, []byte(`{"data":"` + hex.EncodeToString(iv) + ":" + hex.EncodeToString(ct) + `"}`)
	}
}

// lastHexDigit replaces the final hex digit of s with another value.
func lastHexDigit(s string) string {
	c := byte('0')
	if s[len(s)-1] == '0' {
		c = '1'
	}
	return s[:len(s)-1] + string(c)
}

var badTimestamps = []string{"abc", "1774389330.0", "+1774389330", " 1774389330", "1774389330 ", "-1", "1e9", "0x69c2", "99999999999999999999"}

func TestTamperHMAC(t *testing.T) {
	tests := []struct {
		name   string
		tamper tamper
		code   string
	}{
		{"body changed by one byte", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			b = bytes.Clone(b)
			b[20] ^= 1
			return h, b
		}, CodeSignature},
		{"body removed", setBody(""), CodeSignature},
		{"signature last byte", func(t *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			sig, err := base64.StdEncoding.DecodeString(h.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			sig[len(sig)-1] ^= 0x80
			h.Set("Authorization", base64.StdEncoding.EncodeToString(sig))
			return h, b
		}, CodeSignature},
		{"signature truncated", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			h.Set("Authorization", h.Get("Authorization")[:40])
			return h, b
		}, CodeSignature},
		{"authorization not base64", setHeader("Authorization", "not base64!"), CodeSignature},
		{"missing Authorization", delHeader("Authorization"), CodeMissingHeader},
		{"empty Authorization", setHeader("Authorization", ""), CodeMissingHeader},
		{"missing timestamp", delHeader("timestamp"), CodeMissingHeader},
		{"seconds instead of ms", setHeader("timestamp", fmt.Sprint(t0.Unix())), CodeTimestamp},
	}
	for _, bad := range badTimestamps {
		tests = append(tests, struct {
			name   string
			tamper tamper
			code   string
		}{"timestamp " + bad, setHeader("timestamp", bad), CodeTimestamp})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := mustSeal(t, mustSigner(t, ModeHMAC, testCred()), "POST", []byte(chargeBody), t0)
			h, b := tt.tamper(t, sealed.Header.Clone(), sealed.Body)
			_, err := mustVerifier(t, ModeHMAC, testCred(), VerifierOptions{}).Verify("POST", h, b, t0)
			wantCode(t, err, tt.code)
		})
	}
}

func TestTamperEncrypted(t *testing.T) {
	tests := []struct {
		name   string
		method string // default POST
		tamper tamper
		code   string
	}{
		// A CBC bit flip in the IV turns {"amount" into {"bmount": valid
		// JSON, so only the signature catches it.
		{"plaintext changed by one byte", "", changeData(func(iv, ct []byte) ([]byte, []byte) {
			iv[2] ^= 'a' ^ 'b'
			return iv, ct
		}), CodeSignature},
		{"ciphertext last byte", "", changeData(func(iv, ct []byte) ([]byte, []byte) {
			ct[len(ct)-1] ^= 1
			return iv, ct
		}), CodeSignature},
		{"ciphertext first block", "", changeData(func(iv, ct []byte) ([]byte, []byte) {
			ct[0] ^= 1
			return iv, ct
		}), CodeSignature},
		{"signature last hex digit", "", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			h.Set("Authorization", lastHexDigit(h.Get("Authorization")))
			return h, b
		}, CodeSignature},
		{"no Basic scheme", "", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			h.Set("Authorization", strings.TrimPrefix(h.Get("Authorization"), "Basic "))
			return h, b
		}, CodeSignature},
		{"Bearer scheme", "", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			h.Set("Authorization", "Bearer "+strings.TrimPrefix(h.Get("Authorization"), "Basic "))
			return h, b
		}, CodeSignature},
		{"signature not hex", "", setHeader("Authorization", "Basic "+strings.Repeat("zz", 64)), CodeSignature},
		{"timestamp one second later", "", func(_ *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			h.Set("timestamp", fmt.Sprint(t0.Unix()+1))
			return h, b
		}, CodeSignature},
		{"milliseconds instead of seconds", "", setHeader("timestamp", fmt.Sprint(t0.UnixMilli())), CodeTimestamp},
		{"missing Authorization", "", delHeader("Authorization"), CodeMissingHeader},
		{"missing timestamp", "", delHeader("timestamp"), CodeMissingHeader},
		{"plaintext body", "", setBody(chargeBody), CodeNotEncrypted},
		{"no body on POST", "", setBody(""), CodeNotEncrypted},
		{"body not JSON", "", setBody("data=00"), CodeNotEncrypted},
		{"body null", "", setBody("null"), CodeNotEncrypted},
		{"data not a string", "", setBody(`{"data":12}`), CodeNotEncrypted},
		{"data without colon", "", setBody(`{"data":"00112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"extra member", "", func(t *testing.T, h http.Header, b []byte) (http.Header, []byte) {
			return h, append(bytes.TrimSuffix(b, []byte("}")), `,"x":1}`...)
		}, CodeNotEncrypted},
		{"garbage hex", "", setBody(`{"data":"zz112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"odd-length iv", "", setBody(`{"data":"0112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"odd-length ciphertext", "", setBody(`{"data":"00112233445566778899aabbccddeeff:0112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"15-byte iv", "", setBody(`{"data":"112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"ciphertext not whole blocks", "", setBody(`{"data":"00112233445566778899aabbccddeeff:112233445566778899aabbccddeeff"}`), CodeNotEncrypted},
		{"empty ciphertext", "", setBody(`{"data":"00112233445566778899aabbccddeeff:"}`), CodeNotEncrypted},
		{"two colons", "", setBody(`{"data":"00112233445566778899aabbccddeeff:00:11"}`), CodeNotEncrypted},
	}
	for _, bad := range badTimestamps {
		tests = append(tests, struct {
			name   string
			method string
			tamper tamper
			code   string
		}{"timestamp " + bad, "", setHeader("timestamp", bad), CodeTimestamp})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "POST"
			}
			sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), method, []byte(chargeBody), t0)
			h, b := tt.tamper(t, sealed.Header.Clone(), bytes.Clone(sealed.Body))
			_, err := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{}).Verify(method, h, b, t0)
			wantCode(t, err, tt.code)
		})
	}
}

// TestEncryptedAuthorizationCase: the scheme name is case-insensitive (RFC
// 9110 §11.1) and the hex digest may be in either case.
func TestEncryptedAuthorizationCase(t *testing.T) {
	sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "POST", []byte(chargeBody), t0)
	h := sealed.Header.Clone()
	h.Set("Authorization", "basic "+strings.ToUpper(strings.TrimPrefix(h.Get("Authorization"), "Basic ")))
	if _, err := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{}).Verify("POST", h, sealed.Body, t0); err != nil {
		t.Errorf("Verify with %q: %v, want accepted", h.Get("Authorization")[:12], err)
	}
}

// TestEncryptedGETWithoutBody: the LAN GET /abort is signed over {} and sends
// nothing; the verifier accepts it only as GET (or HEAD), and the same
// headers with a POST and no body are refused.
func TestEncryptedGETWithoutBody(t *testing.T) {
	sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "GET", nil, t0)
	if sealed.Body != nil || sealed.Header.Get("Content-Type") != "" {
		t.Errorf("GET sealed body %q, Content-Type %q; want none", sealed.Body, sealed.Header.Get("Content-Type"))
	}
	v := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{})
	opened, err := v.Verify("GET", sealed.Header, nil, t0)
	if err != nil {
		t.Fatalf("Verify GET: %v", err)
	}
	if opened.Body != nil {
		t.Errorf("opened body = %q, want nil", opened.Body)
	}
	_, err = v.Verify("POST", sealed.Header, nil, t0)
	wantCode(t, err, CodeNotEncrypted)

	// The same signature is what an encrypted {} carries.
	post := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "POST", []byte("{}"), t0)
	if got, want := post.Header.Get("Authorization"), sealed.Header.Get("Authorization"); got != want {
		t.Errorf("POST {} Authorization = %s, want the GET one %s", got, want)
	}
}

func TestWrongCredential(t *testing.T) {
	others := map[Mode][]Credential{
		ModeHMAC:      {{Secret: testSecret + "x"}, {Secret: "other"}},
		ModeEncrypted: {{Secret: testSecret + "x", Serial: testSerial}, {Secret: testSecret, Serial: "PB2600001235"}},
	}
	for _, m := range modes {
		for i, other := range others[m] {
			t.Run(fmt.Sprintf("%s/%d", m, i), func(t *testing.T) {
				s := mustSigner(t, m, testCred())
				v := mustVerifier(t, m, other, VerifierOptions{})
				// Many instants and IVs: a wrong AES key sometimes yields
				// valid padding, and that must be AUTH-003 too.
				for sec := range 300 {
					now := t0.Add(time.Duration(sec) * time.Second)
					sealed := mustSeal(t, s, "POST", []byte(chargeBody), now)
					_, err := v.Verify("POST", sealed.Header, sealed.Body, now)
					wantCode(t, err, CodeSignature)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

// encryptRaw encrypts whole blocks with no padding added, to build bodies
// with chosen (bad) padding.
func encryptRaw(t *testing.T, key, iv, blocks []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(blocks))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, blocks)
	return []byte(`{"data":"` + hex.EncodeToString(iv) + ":" + hex.EncodeToString(ct) + `"}`)
}

var paddingCases = []struct {
	name  string
	tail  []byte // the end of the last block
	valid int    // padding length if valid, 0 if not
}{
	{"pad 1", []byte{0x01}, 1},
	{"pad 3", []byte{0x03, 0x03, 0x03}, 3},
	{"pad 16", bytes.Repeat([]byte{0x10}, 16), 16},
	{"last byte 0", []byte{0x00}, 0},
	{"last byte 17", []byte{0x11}, 0},
	{"last byte 255", []byte{0xff}, 0},
	{"inconsistent pad 2", []byte{0x03, 0x02}, 0},
	{"inconsistent pad 16", append([]byte{0x0f}, bytes.Repeat([]byte{0x10}, 15)...), 0},
	{"inconsistent pad 4", []byte{0x04, 0x04, 0x05, 0x04}, 0},
}

// block fills a 16-byte block ending in tail with 'x'.
func block(tail []byte) []byte {
	b := bytes.Repeat([]byte{'x'}, aes.BlockSize-len(tail))
	return append(b, tail...)
}

func TestDecryptPadding(t *testing.T) {
	key := bytes.Repeat([]byte{'k'}, 32)
	iv := make([]byte, aes.BlockSize)
	for _, tt := range paddingCases {
		t.Run(tt.name, func(t *testing.T) {
			plain := append(block(nil), block(tt.tail)...)
			b, _ := aes.NewCipher(key)
			ct := make([]byte, len(plain))
			cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, plain)
			got, err := decryptCBC(key, iv, ct)
			if tt.valid == 0 {
				if !errors.Is(err, errPadding) {
					t.Errorf("decrypt = %q, %v; want bad padding", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, plain[:len(plain)-tt.valid]) {
				t.Errorf("decrypt = %q, %v; want %q", got, err, plain[:len(plain)-tt.valid])
			}
		})
	}
}

// TestBadPaddingRejected: right key, right IV, bad padding: Verify says
// AUTH-003 and Open fails with ErrCiphertext.
func TestBadPaddingRejected(t *testing.T) {
	sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "POST", []byte(chargeBody), t0)
	key := deriveKeys(testCred(), t0.Unix()).aes
	iv := bytes.Repeat([]byte{9}, aes.BlockSize)
	v := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{})
	for _, tt := range paddingCases {
		if tt.valid != 0 {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			body := encryptRaw(t, key, iv, append([]byte(`{"a":"bbbbbbbbbbb"}`[:16]), block(tt.tail)...))
			_, err := v.Verify("POST", sealed.Header, body, t0)
			wantCode(t, err, CodeSignature)
			got, err := sealed.Open(body)
			if !errors.Is(err, ErrCiphertext) {
				t.Errorf("Open = %q, %v; want ErrCiphertext", got, err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	key := deriveKeys(testCred(), t0.Unix()).aes
	good, err := encryptData(key, fixedIV(3), []byte(`{"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		resp    string
		want    string // for success
		wantErr bool
	}{
		{"encrypted", string(good), `{"ok":true}`, false},
		{"encrypted with spaces", strings.Replace(string(good), `":"`, `" : "`, 1) + "\n", `{"ok":true}`, false},
		{"plaintext", chargeBody, chargeBody, false},
		{"empty", "", "", false},
		{"not JSON", "Bad Gateway", "Bad Gateway", false},
		{"array", `["data"]`, `["data"]`, false},
		{"data without colon", `{"data":"abc"}`, `{"data":"abc"}`, false},
		{"data not a string", `{"data":{"a":"b:c"}}`, `{"data":{"a":"b:c"}}`, false},
		{"data and more", `{"data":"00:00","code":"TER-003"}`, `{"data":"00:00","code":"TER-003"}`, false},
		{"garbage hex", `{"data":"zz:zz"}`, "", true},
		{"odd-length hex", `{"data":"00112233445566778899aabbccddeef:00112233445566778899aabbccddeeff"}`, "", true},
		{"short iv", `{"data":"0011:00112233445566778899aabbccddeeff"}`, "", true},
		{"partial block", `{"data":"00112233445566778899aabbccddeeff:0011"}`, "", true},
		{"empty ciphertext", `{"data":"00112233445566778899aabbccddeeff:"}`, "", true},
		{"wrong key", string(encryptRaw(t, bytes.Repeat([]byte{'w'}, 32), make([]byte, 16), block([]byte{0x00}))), "", true},
	}
	sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "POST", []byte(chargeBody), t0)
	plainSealed := mustSeal(t, mustSigner(t, ModeHMAC, testCred()), "POST", []byte(chargeBody), t0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sealed.Open([]byte(tt.resp))
			if tt.wantErr {
				if !errors.Is(err, ErrCiphertext) {
					t.Errorf("Open = %q, %v; want ErrCiphertext", got, err)
				}
			} else if err != nil || string(got) != tt.want {
				t.Errorf("Open = %q, %v; want %q", got, err, tt.want)
			}
			// The hmac mode never decrypts.
			if got, err := plainSealed.Open([]byte(tt.resp)); err != nil || string(got) != tt.resp {
				t.Errorf("hmac Open = %q, %v; want it unchanged", got, err)
			}
		})
	}
}

func TestSealEncryptedBody(t *testing.T) {
	s := mustSigner(t, ModeEncrypted, testCred())
	for _, bad := range []string{"[1]", `"x"`, "12", "null", "not json", `{"a":1} {}`, `{"a":`, "{}}"} {
		if sealed, err := s.Seal("POST", []byte(bad), t0); err == nil {
			t.Errorf("Seal(%q) = %q, want an error", bad, sealed.Body)
		}
	}
	// Insignificant whitespace is removed before signing and encryption;
	// nothing else changes (no HTML escaping, non-ASCII kept).
	sealed := mustSeal(t, s, "POST", []byte(" {\n \"a\" : \"<café>\" ,\"b\":[1, 2]}\n"), t0)
	opened, err := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{}).Verify("POST", sealed.Header, sealed.Body, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"<café>","b":[1,2]}`; string(opened.Body) != want {
		t.Errorf("plaintext = %s, want %s", opened.Body, want)
	}
}

// TestRoundTrip: Seal → Verify → SealResponse → Open, in both modes, with
// and without encrypted responses, with crypto/rand IVs.
func TestRoundTrip(t *testing.T) {
	bodies := []struct {
		method    string
		body      []byte
		wantPlain []byte // what Verify returns
	}{
		{"POST", []byte(chargeBody), []byte(chargeBody)},
		{"POST", []byte(utf8Body), []byte(utf8Body)},
		{"POST", []byte("{}"), []byte("{}")},
		{"GET", nil, nil},
	}
	resp := []byte(`{"transaction_status":"APPROVED","message":"Transacción aprobada"}`)
	for _, m := range modes {
		for _, encResp := range []bool{false, true} {
			for _, b := range bodies {
				t.Run(fmt.Sprintf("%s/encrypt-responses=%v/%s %d bytes", m, encResp, b.method, len(b.body)), func(t *testing.T) {
					s := mustSigner(t, m, testCred())
					v := mustVerifier(t, m, testCred(), VerifierOptions{EncryptResponses: encResp})
					sealed := mustSeal(t, s, b.method, b.body, t0)
					opened, err := v.Verify(b.method, sealed.Header, sealed.Body, t0.Add(2*time.Minute))
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if !bytes.Equal(opened.Body, b.wantPlain) || (b.wantPlain == nil) != (opened.Body == nil) {
						t.Errorf("verified body = %q, want %q", opened.Body, b.wantPlain)
					}
					wire, err := opened.SealResponse(resp)
					if err != nil {
						t.Fatalf("SealResponse: %v", err)
					}
					_, _, shaped := encryptedShape(wire)
					if want := m == ModeEncrypted && encResp; shaped != want {
						t.Errorf("response %s encrypted = %v, want %v", wire, shaped, want)
					}
					got, err := sealed.Open(wire)
					if err != nil || !bytes.Equal(got, resp) {
						t.Errorf("Open = %q, %v; want %q", got, err, resp)
					}
				})
			}
		}
	}
}

// TestFreshIVs: every request and response gets its own IV.
func TestFreshIVs(t *testing.T) {
	s := mustSigner(t, ModeEncrypted, testCred())
	v := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{EncryptResponses: true})
	a := mustSeal(t, s, "POST", []byte(chargeBody), t0)
	b := mustSeal(t, s, "POST", []byte(chargeBody), t0)
	if bytes.Equal(a.Body, b.Body) {
		t.Errorf("two seals of one body at one instant gave the same wire bytes %s", a.Body)
	}
	opened, err := v.Verify("POST", a.Header, a.Body, t0)
	if err != nil {
		t.Fatal(err)
	}
	r1, err1 := opened.SealResponse([]byte(`{}`))
	r2, err2 := opened.SealResponse([]byte(`{}`))
	if err1 != nil || err2 != nil || bytes.Equal(r1, r2) {
		t.Errorf("two sealed responses = %s, %s (%v, %v); want different IVs", r1, r2, err1, err2)
	}
	if got, err := opened.SealResponse(nil); err != nil || got != nil {
		t.Errorf("SealResponse(nil) = %q, %v; want nil", got, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestIVSourceFails(t *testing.T) {
	s := mustSigner(t, ModeEncrypted, testCred(), WithRand(failingReader{}))
	if _, err := s.Seal("POST", []byte(chargeBody), t0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Seal error = %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
	sealed := mustSeal(t, mustSigner(t, ModeEncrypted, testCred()), "POST", []byte(chargeBody), t0)
	v := mustVerifier(t, ModeEncrypted, testCred(), VerifierOptions{EncryptResponses: true, Rand: failingReader{}})
	opened, err := v.Verify("POST", sealed.Header, sealed.Body, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opened.SealResponse([]byte("{}")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("SealResponse error = %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
}

// TestConcurrentUse runs one signer and one verifier from many goroutines
// (meaningful under -race) with an IV source that is not itself safe for
// concurrent use.
func TestConcurrentUse(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			s := mustSigner(t, m, testCred(), WithRand(&countingIV{}))
			v := mustVerifier(t, m, testCred(), VerifierOptions{EncryptResponses: true, Rand: &countingIV{}})
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 50 {
						body := fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)
						sealed, err := s.Seal("POST", body, t0)
						if err != nil {
							errs <- err
							return
						}
						opened, err := v.Verify("POST", sealed.Header, sealed.Body, t0)
						if err != nil {
							errs <- err
							return
						}
						wire, err := opened.SealResponse(body)
						if err != nil {
							errs <- err
							return
						}
						if got, err := sealed.Open(wire); err != nil || !bytes.Equal(got, body) {
							errs <- fmt.Errorf("Open = %q, %v; want %q", got, err, body)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, m := range modes {
		b.Run(string(m), func(b *testing.B) {
			s := mustSigner(b, m, testCred())
			body := []byte(chargeBody)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Seal("POST", body, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, m := range modes {
		b.Run(string(m), func(b *testing.B) {
			sealed := mustSeal(b, mustSigner(b, m, testCred()), "POST", []byte(chargeBody), t0)
			v := mustVerifier(b, m, testCred(), VerifierOptions{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify("POST", sealed.Header, sealed.Body, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
