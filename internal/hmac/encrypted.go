package hmac

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The encrypted mode, research/kushki-one.md §3 steps 1–6 (A-new for steps
// 1–3, the two third-party clients for 4–6):
//
//  1. ts = signing instant in Unix seconds; header "timestamp: <ts>".
//  2. formattedDate = UTC "YYYY:MM:DD:HH:mm" of the same instant.
//  3. password = hex(MD5(rightPad(Secret+Serial+formattedDate, 32, '0'))).
//  4. encodedKeyTimestamp = base64(password + ts).
//  5. Authorization = "Basic " + hex(SHA-512(base64(J))), J being the compact
//     plaintext JSON object with "key": encodedKeyTimestamp as its last member.
//  6. aesKey = (ts + "___" + password)[:32]; the body on the wire is
//     {"data":"<hex iv>:<hex ciphertext>"}, AES-256-CBC, PKCS#7, random IV.
//
// A request without a body is not documented (research §3 "Abort with no
// body"). Our choice, after the third-party Python client (PY-SURPAY, which
// "signs the literal {}" on abort): a nil body is signed as {}. On GET and
// HEAD (the LAN GET /abort) nothing is sent; on any other method (the cloud
// POST /sync/abort) {} is also encrypted and sent, as PY-SURPAY does.

// emptyObject is what a request without a body is signed (and, on a method
// that carries a body, encrypted) as.
const emptyObject = "{}"

type encSigner struct {
	cred Credential
	rand io.Reader
}

// Seal needs body to be a JSON object (or nil). The body is compacted
// (insignificant whitespace removed, nothing else changed) before it is signed
// and encrypted; posbridge's bodies are already compact, so this is a no-op
// for them.
func (s *encSigner) Seal(method string, body []byte, now time.Time) (*Sealed, error) {
	ts := now.Unix() // steps 1 and 2 use this one instant
	k := deriveKeys(s.cred, ts)
	plain, send := []byte(emptyObject), !bodiless(method)
	if len(body) > 0 {
		c, err := compactObject(body)
		if err != nil {
			return nil, fmt.Errorf("hmac: seal: %w", err)
		}
		plain, send = c, true
	}
	sig := signature(plain, k.keyTimestamp)
	h := make(http.Header, 3)
	h.Set("Authorization", "Basic "+hex.EncodeToString(sig[:]))
	h.Set("timestamp", strconv.FormatInt(ts, 10))
	sealed := &Sealed{Header: h, open: func(resp []byte) ([]byte, error) {
		return openResponse(k.aes, resp)
	}}
	if send {
		wire, err := encryptData(k.aes, s.rand, plain)
		if err != nil {
			return nil, fmt.Errorf("hmac: seal: %w", err)
		}
		h.Set("Content-Type", "application/json")
		sealed.Body = wire
	}
	return sealed, nil
}

// Format keeps the credential out of fmt output.
func (s *encSigner) Format(f fmt.State, _ rune) { fmt.Fprint(f, "hmac.Signer(encrypted)") }

type encVerifier struct {
	cred Credential
	rand io.Reader // nil: responses go back in plaintext
}

// Verify takes the password from the minute of the timestamp header itself:
// the signer derived both from one instant (steps 1–2), so a request signed at
// hh:mm:59 and received at hh:mm+1:00 still verifies. An empty body is
// verified as {} on GET and HEAD and refused on other methods.
func (v *encVerifier) Verify(method string, header http.Header, body []byte, now time.Time) (*Opened, error) {
	auth, tsHeader, err := authHeaders(header)
	if err != nil {
		return nil, err
	}
	ts, ok := parseTimestamp(tsHeader)
	if !ok {
		return nil, authErr(CodeTimestamp, msgTimestampSyntax)
	}
	nowSec := now.Unix()
	if ts < nowSec-int64(Window/time.Second) || ts > nowSec+int64(Window/time.Second) {
		return nil, authErr(CodeTimestamp, msgTimestampWindow)
	}
	got, ok := parseBasic(auth)
	if !ok {
		return nil, authErr(CodeSignature, `authorization is not "Basic <hex SHA-512>"`)
	}
	k := deriveKeys(v.cred, ts)
	var plain, signed []byte
	if len(body) == 0 {
		if !bodiless(method) {
			return nil, authErr(CodeNotEncrypted, "body must be encrypted")
		}
		signed = []byte(emptyObject)
	} else {
		ivHex, ctHex, ok := encryptedShape(body)
		if !ok {
			return nil, authErr(CodeNotEncrypted, "body must be encrypted")
		}
		iv, ct, err := decodeData(ivHex, ctHex)
		if err != nil {
			return nil, authErr(CodeNotEncrypted, "malformed encrypted body")
		}
		// A wrong key gives bad padding 255 times in 256 and garbage
		// otherwise, so neither is told apart from a bad signature.
		if plain, err = decryptCBC(k.aes, iv, ct); err != nil {
			return nil, authErr(CodeSignature, msgSignature)
		}
		if signed, err = compactObject(plain); err != nil {
			return nil, authErr(CodeSignature, msgSignature)
		}
	}
	want := signature(signed, k.keyTimestamp)
	if subtle.ConstantTimeCompare(got, want[:]) != 1 {
		return nil, authErr(CodeSignature, msgSignature)
	}
	o := &Opened{Body: plain}
	if v.rand != nil {
		o.seal = func(resp []byte) ([]byte, error) {
			if len(resp) == 0 {
				return resp, nil
			}
			wire, err := encryptData(k.aes, v.rand, resp)
			if err != nil {
				return nil, fmt.Errorf("hmac: seal response: %w", err)
			}
			return wire, nil
		}
	}
	return o, nil
}

// Format keeps the credential out of fmt output.
func (v *encVerifier) Format(f fmt.State, _ rune) { fmt.Fprint(f, "hmac.Verifier(encrypted)") }

// encKeys is what one timestamp and credential give (steps 2–4 and 6).
type encKeys struct {
	password     string // step 3
	keyTimestamp string // step 4, encodedKeyTimestamp
	aes          []byte // step 6, 32 bytes
}

func deriveKeys(c Credential, ts int64) encKeys {
	date := time.Unix(ts, 0).UTC().Format("2006:01:02:15:04")
	seed := c.Secret + c.Serial + date
	if len(seed) < 32 { // like JavaScript padEnd: pads, never truncates
		seed += strings.Repeat("0", 32-len(seed))
	}
	sum := md5.Sum([]byte(seed))
	password := hex.EncodeToString(sum[:])
	tss := strconv.FormatInt(ts, 10)
	return encKeys{
		password:     password,
		keyTimestamp: base64.StdEncoding.EncodeToString([]byte(password + tss)),
		aes:          []byte((tss + "___" + password)[:32]),
	}
}

// signature is step 5 without the hex: SHA-512 of base64(J), where J is the
// compact object plain with "key" appended as its last member. The base64
// alphabet needs no JSON escaping.
func signature(plain []byte, keyTimestamp string) [sha512.Size]byte {
	j := make([]byte, 0, len(plain)+len(keyTimestamp)+10)
	j = append(j, plain[:len(plain)-1]...)
	if len(plain) > len(emptyObject) {
		j = append(j, ',')
	}
	j = append(j, `"key":"`...)
	j = append(j, keyTimestamp...)
	j = append(j, `"}`...)
	b64 := make([]byte, base64.StdEncoding.EncodedLen(len(j)))
	base64.StdEncoding.Encode(b64, j)
	return sha512.Sum512(b64)
}

// parseBasic returns the digest of "Basic <hex>" (scheme case-insensitive,
// RFC 9110 §11.1; hex in either case).
func parseBasic(auth string) ([]byte, bool) {
	const scheme = "Basic "
	if len(auth) != len(scheme)+2*sha512.Size || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return nil, false
	}
	d, err := hex.DecodeString(auth[len(scheme):])
	return d, err == nil
}

func bodiless(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}

var errNotObject = errors.New("body is not a JSON object")

// compactObject returns b compacted, or errNotObject when b is not one valid
// JSON object. json.Compact does not HTML-escape.
func compactObject(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, errNotObject
	}
	return buf.Bytes(), nil
}

// encryptData returns {"data":"<hex iv>:<hex ciphertext>"} for plain
// (step 6).
func encryptData(key []byte, rand io.Reader, plain []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, fmt.Errorf("read iv: %w", err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize // PKCS#7: 1 to 16 bytes
	buf := make([]byte, len(plain)+n)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(n)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	out := make([]byte, 0, len(`{"data":":"}`)+2*(len(iv)+len(buf)))
	out = append(out, `{"data":"`...)
	out = hex.AppendEncode(out, iv)
	out = append(out, ':')
	out = hex.AppendEncode(out, buf)
	out = append(out, `"}`...)
	return out, nil
}

// encryptedShape reports whether body is a JSON object whose only member is
// "data", a string with a colon, and returns the two halves.
func encryptedShape(body []byte) (ivHex, ctHex string, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || len(m) != 1 {
		return "", "", false
	}
	raw, ok := m["data"]
	if !ok {
		return "", "", false
	}
	var d string
	if json.Unmarshal(raw, &d) != nil {
		return "", "", false
	}
	return strings.Cut(d, ":")
}

// decodeData decodes the halves of a data member: a 16-byte IV and a
// non-empty whole number of blocks.
func decodeData(ivHex, ctHex string) (iv, ct []byte, err error) {
	if iv, err = hex.DecodeString(ivHex); err != nil {
		return nil, nil, fmt.Errorf("iv: %w", err)
	}
	if len(iv) != aes.BlockSize {
		return nil, nil, fmt.Errorf("iv is %d bytes, want %d", len(iv), aes.BlockSize)
	}
	if ct, err = hex.DecodeString(ctHex); err != nil {
		return nil, nil, fmt.Errorf("ciphertext: %w", err)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, nil, fmt.Errorf("ciphertext is %d bytes, not a positive multiple of %d", len(ct), aes.BlockSize)
	}
	return iv, ct, nil
}

var errPadding = errors.New("bad padding")

// decryptCBC decrypts and removes PKCS#7 padding, checking every padding byte
// in constant time. ct must be a positive multiple of the block size.
func decryptCBC(key, iv, ct []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	p := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(p, ct)
	last := p[len(p)-1]
	n := int(last)
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, n)
		same := subtle.ConstantTimeByteEq(p[len(p)-1-i], last)
		good &= subtle.ConstantTimeSelect(inPad, same, 1)
	}
	if good != 1 {
		return nil, errPadding
	}
	return p[:len(p)-n], nil
}

// openResponse is Sealed.Open in the encrypted mode.
func openResponse(key, resp []byte) ([]byte, error) {
	ivHex, ctHex, ok := encryptedShape(resp)
	if !ok {
		return resp, nil
	}
	iv, ct, err := decodeData(ivHex, ctHex)
	if err != nil {
		return nil, fmt.Errorf("hmac: open response: %w: %w", ErrCiphertext, err)
	}
	plain, err := decryptCBC(key, iv, ct)
	if err != nil {
		return nil, fmt.Errorf("hmac: open response: %w: %w", ErrCiphertext, err)
	}
	return plain, nil
}
