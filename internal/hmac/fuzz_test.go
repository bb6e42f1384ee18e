package hmac

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary header values and bodies to both verifiers. They
// must never panic, must fail only with an *AuthError of a known code, and
// what they accept must be consistent: the hmac mode returns the body as it
// came, the encrypted mode a JSON object whose sealed response decrypts with
// the key of the request's timestamp. The seed corpus in
// testdata/fuzz/FuzzVerify holds every vector request (gen_vectors.sh), and
// the clock sits inside all their windows.
func FuzzVerify(f *testing.F) {
	vs := loadVectors(f)
	hmacCred := Credential{Secret: vs.HMAC[0].Secret}
	encCred := vs.Encrypted[0].cred()
	now := time.UnixMilli(1774389400000)
	verifiers := map[bool]Verifier{
		false: mustVerifier(f, ModeHMAC, hmacCred, VerifierOptions{}),
		true:  mustVerifier(f, ModeEncrypted, encCred, VerifierOptions{EncryptResponses: true}),
	}
	f.Add(true, "HEAD", "basic "+string(bytes.Repeat([]byte("0"), 128)), "1774389400", []byte(nil))
	f.Add(false, "POST", "====", "000000001774389400000", []byte("{}"))

	f.Fuzz(func(t *testing.T, encrypted bool, method, auth, ts string, body []byte) {
		h := make(http.Header)
		h.Set("Authorization", auth)
		h.Set("timestamp", ts)
		opened, err := verifiers[encrypted].Verify(method, h, body, now)
		if err != nil {
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *AuthError", err, err)
			}
			switch ae.Code {
			case CodeMissingHeader, CodeTimestamp, CodeSignature, CodeNotEncrypted:
			default:
				t.Fatalf("code %q, want a known code", ae.Code)
			}
			if ae.Message == "" {
				t.Fatal("empty message")
			}
			return
		}
		if !encrypted {
			if !bytes.Equal(opened.Body, body) {
				t.Fatalf("hmac body = %q, want %q", opened.Body, body)
			}
			return
		}
		if len(body) == 0 {
			if !bodiless(method) || opened.Body != nil {
				t.Fatalf("accepted no body on %q with body %q", method, opened.Body)
			}
			return
		}
		if _, err := compactObject(opened.Body); err != nil {
			t.Fatalf("accepted plaintext %q that is not a JSON object", opened.Body)
		}
		wire, err := opened.SealResponse(opened.Body)
		if err != nil {
			t.Fatal(err)
		}
		sec, _ := parseTimestamp(ts)
		got, err := openResponse(deriveKeys(encCred, sec).aes, wire)
		if err != nil || !bytes.Equal(got, opened.Body) {
			t.Fatalf("response round trip = %q, %v; want %q", got, err, opened.Body)
		}
	})
}

// FuzzOpen: Sealed.Open never panics on a response, fails only with
// ErrCiphertext, and leaves anything not of the encrypted shape unchanged.
func FuzzOpen(f *testing.F) {
	for _, r := range loadVectors(f).Responses {
		f.Add([]byte(r.Wire))
	}
	f.Add([]byte(`{"data":"00112233445566778899aabbccddeeff:00112233445566778899aabbccddeeff"}`))
	f.Add([]byte(`{"data":"zz:"}`))
	f.Add([]byte(`{"type":"TERMINAL","code":"TER-003"}`))
	sealed := mustSeal(f, mustSigner(f, ModeEncrypted, testCred()), "POST", []byte(chargeBody), t0)
	f.Fuzz(func(t *testing.T, resp []byte) {
		got, err := sealed.Open(resp)
		_, _, shaped := encryptedShape(resp)
		switch {
		case err != nil && !errors.Is(err, ErrCiphertext):
			t.Fatalf("Open error %v, want ErrCiphertext", err)
		case err != nil && !shaped:
			t.Fatalf("Open failed on %q, which is not encrypted", resp)
		case err == nil && !shaped && !bytes.Equal(got, resp):
			t.Fatalf("Open changed %q to %q", resp, got)
		}
	})
}
