// Package hmac signs Kushki ONE Payment API requests and, for the simulator,
// verifies them. A terminal runs one of two authentication generations, so the
// signer is chosen per terminal (research/kushki-one.md §0 and §3):
//
//   - ModeHMAC (the older documents): Authorization is the base64 HMAC-SHA256
//     of the raw body keyed with the Private-Credential-Id; the timestamp
//     header is Unix milliseconds.
//   - ModeEncrypted (the current documents): a per-minute MD5 password,
//     Authorization "Basic <hex SHA-512>", timestamp in Unix seconds, and the
//     body AES-256-CBC encrypted as {"data":"<iv hex>:<ciphertext hex>"};
//     responses may come back encrypted the same way.
//
// It is not a general HMAC library and knows nothing of HTTP routing.
package hmac

import (
	"net/http"
	"time"
)

// Mode names an authentication generation, as configured per terminal.
type Mode string

// Modes.
const (
	ModeHMAC      Mode = "hmac"
	ModeEncrypted Mode = "encrypted"
)

// Credential is what a terminal is configured with. It is a secret: it must
// never be logged or printed, so its String and GoString methods redact it.
type Credential struct {
	// Secret is the Private-Credential-Id (hmac) or the business code
	// (encrypted).
	Secret string
	// Serial is the terminal serial; the encrypted mode mixes it into the
	// per-minute password.
	Serial string
}

// Signer prepares outgoing requests for one terminal. Implementations are
// safe for concurrent use.
type Signer interface {
	// Seal signs (and, in the encrypted mode, encrypts) one request. method
	// is the HTTP method; body is the plaintext JSON body, or nil for a
	// request without one (the LAN GET /abort). now is the signing time.
	Seal(method string, body []byte, now time.Time) (*Sealed, error)
}

// Sealed is one signed request: the headers to set and the bytes to send,
// and the means to read the answer.
type Sealed struct {
	// Header holds Authorization, timestamp and Content-Type.
	Header http.Header
	// Body is what goes on the wire (nil: no body).
	Body []byte
	open func(resp []byte) ([]byte, error)
}

// Open returns the plaintext of a response body: an encrypted
// {"data":"iv:ct"} answer is decrypted with this request's key, anything else
// is returned as it is.
func (s *Sealed) Open(resp []byte) ([]byte, error) {
	if s.open == nil {
		return resp, nil
	}
	return s.open(resp)
}

// Verifier checks requests as a terminal would; the simulator uses it.
// Implementations are safe for concurrent use.
type Verifier interface {
	// Verify checks a request's signature in constant time and its timestamp
	// against now (±5 minutes), and returns the plaintext body. A failure is
	// an *AuthError.
	Verify(method string, header http.Header, body []byte, now time.Time) (*Opened, error)
}

// Opened is a verified request.
type Opened struct {
	// Body is the plaintext JSON body (nil when the request had none).
	Body []byte
	seal func(resp []byte) ([]byte, error)
}

// SealResponse returns a response body as the terminal would send it for this
// request: encrypted with the request's key in the encrypted mode when the
// verifier was made to encrypt responses, unchanged otherwise.
func (o *Opened) SealResponse(resp []byte) ([]byte, error) {
	if o.seal == nil {
		return resp, nil
	}
	return o.seal(resp)
}

// AuthError is a failed verification. Code is an AUTH- code for the
// AUTHENTICATION error envelope; Message says what was wrong without
// revealing any secret.
type AuthError struct {
	Code    string
	Message string
}

func (e *AuthError) Error() string { return "authentication: " + e.Code + ": " + e.Message }

// Window is how far a request's timestamp may be from the verifier's clock
// (research §3: ±5 min).
const Window = 5 * time.Minute
