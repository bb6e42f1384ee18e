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
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
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
// never be logged or printed, so its String, GoString, Format and MarshalJSON
// methods redact it. (A struct that holds a Credential in an unexported field
// is printed by fmt field by field, bypassing these methods; keep it in an
// exported field or give the holder its own String.)
type Credential struct {
	// Secret is the Private-Credential-Id (hmac) or the business code
	// (encrypted).
	Secret string
	// Serial is the terminal serial; the encrypted mode mixes it into the
	// per-minute password.
	Serial string
}

const redacted = "[redacted]"

// String returns "[redacted]".
func (Credential) String() string { return redacted }

// GoString returns "[redacted]", so %#v does not print the fields.
func (Credential) GoString() string { return redacted }

// Format prints "[redacted]" for every verb and flag.
func (Credential) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Credential) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// validate checks what every mode needs. Both fields must be visible ASCII
// (0x21–0x7E): the encrypted mode pads by length (research §3 step 3), which
// JavaScript, Python and Go count differently outside ASCII, and a space or
// newline is almost always a credential file that was not trimmed.
func (c Credential) validate(mode Mode) error {
	if c.Secret == "" {
		return errors.New("hmac: empty secret")
	}
	if !visibleASCII(c.Secret) {
		return errors.New("hmac: secret has a character outside visible ASCII")
	}
	if mode == ModeEncrypted && c.Serial == "" {
		return errors.New("hmac: empty terminal serial")
	}
	if !visibleASCII(c.Serial) {
		return errors.New("hmac: serial has a character outside visible ASCII")
	}
	return nil
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Signer prepares outgoing requests for one terminal. Implementations are
// safe for concurrent use.
type Signer interface {
	// Seal signs (and, in the encrypted mode, encrypts) one request. method
	// is the HTTP method; body is the plaintext JSON body, or nil (or empty)
	// for a request without one (the LAN GET /abort). now is the signing
	// time. In the encrypted mode Seal fails if body is not a JSON object or
	// the IV source fails; in the hmac mode it does not fail.
	Seal(method string, body []byte, now time.Time) (*Sealed, error)
}

// Sealed is one signed request: the headers to set and the bytes to send,
// and the means to read the answer.
type Sealed struct {
	// Header holds Authorization and timestamp, and Content-Type
	// (application/json) when Body is not nil.
	Header http.Header
	// Body is what goes on the wire (nil: no body).
	Body []byte
	open func(resp []byte) ([]byte, error)
}

// Open returns the plaintext of a response body: an encrypted
// {"data":"iv:ct"} answer (a JSON object whose only member is a "data"
// string holding hex, a colon, hex) is decrypted with this request's key,
// anything else is returned as it is. A body of that shape that does not
// decrypt (bad hex, wrong lengths, bad padding) is an error wrapping
// ErrCiphertext; Open never panics. Open is safe for concurrent use.
func (s *Sealed) Open(resp []byte) ([]byte, error) {
	if s.open == nil {
		return resp, nil
	}
	return s.open(resp)
}

// Verifier checks requests as a terminal would; the simulator uses it.
// Implementations are safe for concurrent use.
type Verifier interface {
	// Verify checks a request's timestamp against now (±Window, inclusive)
	// and its signature in constant time, and returns the plaintext body
	// (decrypted in the encrypted mode). A failure is an *AuthError whose
	// Code is one of the Code constants. It never panics on any input.
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
// verifier was made to encrypt responses (an empty response stays empty),
// unchanged otherwise. It fails only if the IV source fails. It is safe for
// concurrent use.
func (o *Opened) SealResponse(resp []byte) ([]byte, error) {
	if o.seal == nil {
		return resp, nil
	}
	return o.seal(resp)
}

// ErrCiphertext is wrapped by Sealed.Open when a response has the encrypted
// shape but cannot be decrypted.
var ErrCiphertext = errors.New("hmac: undecryptable encrypted body")

// AuthError is a failed verification. Code is an AUTH- code for the
// AUTHENTICATION error envelope; Message says what was wrong without
// revealing any secret.
type AuthError struct {
	Code    string
	Message string
}

func (e *AuthError) Error() string { return "authentication: " + e.Code + ": " + e.Message }

// AuthError codes. Kushki's AUTH- table was not visible (research §2,
// "Not found"), so these numbers are posbridge's own.
const (
	// CodeMissingHeader: the Authorization or timestamp header is absent
	// or empty.
	CodeMissingHeader = "AUTH-001"
	// CodeTimestamp: the timestamp is not a decimal integer, or is more than
	// Window away from the verifier's clock.
	CodeTimestamp = "AUTH-002"
	// CodeSignature: the signature is malformed or does not match, or (the
	// encrypted mode) the body does not decrypt to a JSON object with the
	// key the credential and timestamp give, which is what a wrong
	// credential looks like.
	CodeSignature = "AUTH-003"
	// CodeNotEncrypted: the encrypted mode received a body that is not
	// {"data":"<iv hex>:<ciphertext hex>"} (one member; a 16-byte IV; a
	// positive whole number of AES blocks), or no body on a method other
	// than GET and HEAD.
	CodeNotEncrypted = "AUTH-004"
)

// Window is how far a request's timestamp may be from the verifier's clock
// (research §3: ±5 min).
const Window = 5 * time.Minute

// Option configures a Signer made by NewSigner.
type Option func(*signerOptions)

type signerOptions struct {
	rand io.Reader
}

// WithRand makes the signer read AES initialisation vectors from r instead of
// crypto/rand. It is for tests that need reproducible wire bytes; reads are
// serialised, so r need not be safe for concurrent use.
func WithRand(r io.Reader) Option {
	return func(o *signerOptions) { o.rand = r }
}

// NewSigner returns the Signer for a terminal running mode. It fails for an
// unknown mode, an empty secret, an empty serial in the encrypted mode, or a
// credential with a character outside visible ASCII. It does no I/O.
func NewSigner(mode Mode, cred Credential, opts ...Option) (Signer, error) {
	var o signerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if err := cred.validate(mode); err != nil {
		return nil, err
	}
	if mode == ModeHMAC {
		return &hmacSigner{secret: []byte(cred.Secret)}, nil
	}
	return &encSigner{cred: cred, rand: randSource(o.rand)}, nil
}

// VerifierOptions configures a Verifier made by NewVerifier. The zero value
// verifies and answers in plaintext.
type VerifierOptions struct {
	// EncryptResponses makes Opened.SealResponse encrypt response bodies
	// with the request's key in the encrypted mode, as terminals may do
	// (research §0). It has no effect in the hmac mode.
	EncryptResponses bool
	// Rand is where response IVs come from; nil means crypto/rand. It need
	// not be safe for concurrent use.
	Rand io.Reader
}

// NewVerifier returns the Verifier of a terminal running mode with cred. It
// fails as NewSigner does. It does no I/O.
func NewVerifier(mode Mode, cred Credential, opts VerifierOptions) (Verifier, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if err := cred.validate(mode); err != nil {
		return nil, err
	}
	if mode == ModeHMAC {
		return &hmacVerifier{secret: []byte(cred.Secret)}, nil
	}
	v := &encVerifier{cred: cred}
	if opts.EncryptResponses {
		v.rand = randSource(opts.Rand)
	}
	return v, nil
}

func checkMode(m Mode) error {
	switch m {
	case ModeHMAC, ModeEncrypted:
		return nil
	}
	return fmt.Errorf("hmac: unknown mode %q", string(m))
}

// randSource returns crypto/rand for nil and otherwise r behind a lock.
func randSource(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return &lockedReader{r: r}
}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, p)
}
