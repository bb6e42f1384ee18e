package hmac

import (
	stdhmac "crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The hmac mode (seeds/kushki-one-smartpos-payment-api.txt "Authentication";
// research §0): Authorization is base64(HMAC-SHA256(key=Secret, msg=body))
// over the exact bytes sent, and the timestamp header is Unix milliseconds.
// The timestamp is not part of the signature in that scheme.

type hmacSigner struct {
	secret []byte
}

// Seal signs body as it is; a nil or empty body (the LAN GET /abort) signs
// the empty string and sends no body and no Content-Type.
func (s *hmacSigner) Seal(method string, body []byte, now time.Time) (*Sealed, error) {
	h := make(http.Header, 3)
	h.Set("Authorization", base64.StdEncoding.EncodeToString(s.mac(body)))
	h.Set("timestamp", strconv.FormatInt(now.UnixMilli(), 10))
	if len(body) == 0 {
		return &Sealed{Header: h}, nil
	}
	h.Set("Content-Type", "application/json")
	return &Sealed{Header: h, Body: body}, nil
}

func (s *hmacSigner) mac(body []byte) []byte {
	m := stdhmac.New(sha256.New, s.secret)
	m.Write(body)
	return m.Sum(nil)
}

// Format keeps the secret out of fmt output.
func (s *hmacSigner) Format(f fmt.State, _ rune) { fmt.Fprint(f, "hmac.Signer(hmac)") }

type hmacVerifier struct {
	secret []byte
}

func (v *hmacVerifier) Verify(method string, header http.Header, body []byte, now time.Time) (*Opened, error) {
	auth, ts, err := authHeaders(header)
	if err != nil {
		return nil, err
	}
	ms, ok := parseTimestamp(ts)
	if !ok {
		return nil, authErr(CodeTimestamp, msgTimestampSyntax)
	}
	nowMS := now.UnixMilli()
	if ms < nowMS-Window.Milliseconds() || ms > nowMS+Window.Milliseconds() {
		return nil, authErr(CodeTimestamp, msgTimestampWindow)
	}
	got, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return nil, authErr(CodeSignature, "authorization is not base64")
	}
	if !stdhmac.Equal(got, (&hmacSigner{secret: v.secret}).mac(body)) {
		return nil, authErr(CodeSignature, msgSignature)
	}
	if len(body) == 0 {
		body = nil
	}
	return &Opened{Body: body}, nil
}

// Format keeps the secret out of fmt output.
func (v *hmacVerifier) Format(f fmt.State, _ rune) { fmt.Fprint(f, "hmac.Verifier(hmac)") }

// Messages say what was wrong without revealing a secret or echoing the
// request; the same message serves a bad padding and a bad signature in the
// encrypted mode so a caller cannot use the verifier as a padding oracle.
const (
	msgTimestampSyntax = "timestamp is not a decimal integer"
	msgTimestampWindow = "timestamp is more than 5 minutes from the terminal clock"
	msgSignature       = "signature or key does not match"
)

func authErr(code, msg string) *AuthError { return &AuthError{Code: code, Message: msg} }

// authHeaders returns the Authorization and timestamp header values, or a
// CodeMissingHeader error.
func authHeaders(h http.Header) (auth, ts string, err error) {
	auth, ts = h.Get("Authorization"), h.Get("timestamp")
	switch {
	case auth == "":
		return "", "", authErr(CodeMissingHeader, "missing Authorization header")
	case ts == "":
		return "", "", authErr(CodeMissingHeader, "missing timestamp header")
	}
	return auth, ts, nil
}

// parseTimestamp accepts 1 to 18 ASCII digits and nothing else (no sign, no
// spaces), so the value always fits an int64.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
