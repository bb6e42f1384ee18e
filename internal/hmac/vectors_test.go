package hmac

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// vectors is testdata/vectors.json, written by testdata/gen_vectors.sh from
// python3 and openssl without the Go code.
type vectors struct {
	HMAC []struct {
		Name       string            `json:"name"`
		Secret     string            `json:"secret"`
		Method     string            `json:"method"`
		NowUnixMS  int64             `json:"now_unix_ms"`
		Body       *string           `json:"body"`
		WantHeader map[string]string `json:"want_header"`
		WantBody   *string           `json:"want_body"`
	} `json:"hmac"`
	Encrypted []encryptedVector `json:"encrypted"`
	Responses []struct {
		Name      string `json:"name"`
		Request   string `json:"request"`
		Plaintext string `json:"plaintext"`
		Wire      string `json:"wire"`
	} `json:"encrypted_responses"`
}

type encryptedVector struct {
	Name                string            `json:"name"`
	Secret              string            `json:"secret"`
	Serial              string            `json:"serial"`
	Method              string            `json:"method"`
	NowUnixMS           int64             `json:"now_unix_ms"`
	IVHex               string            `json:"iv_hex"`
	Body                *string           `json:"body"`
	FormattedDate       string            `json:"formatted_date"`
	Password            string            `json:"password"`
	EncodedKeyTimestamp string            `json:"encoded_key_timestamp"`
	AESKey              string            `json:"aes_key"`
	SignedJSON          string            `json:"signed_json"`
	WantHeader          map[string]string `json:"want_header"`
	WantBody            *string           `json:"want_body"`
}

func (v encryptedVector) cred() Credential { return Credential{Secret: v.Secret, Serial: v.Serial} }

func loadVectors(tb testing.TB) vectors {
	tb.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(v.HMAC) == 0 || len(v.Encrypted) == 0 || len(v.Responses) == 0 {
		tb.Fatal("testdata/vectors.json: a section is empty")
	}
	return v
}

// bodyBytes turns a vector's optional string into the []byte Seal takes.
func bodyBytes(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

func checkHeader(t *testing.T, got http.Header, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("header has %d fields %v, want %d %v", len(got), got, len(want), want)
	}
	for k, w := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != w {
			t.Errorf("header %s = %q, want [%q]", k, g, w)
		}
	}
}

func checkBody(t *testing.T, what string, got []byte, want *string) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s = %q, want nil", what, got)
	case want != nil && string(got) != *want:
		t.Errorf("%s = %q, want %q", what, got, *want)
	}
}

func TestVectorsHMAC(t *testing.T) {
	for _, v := range loadVectors(t).HMAC {
		t.Run(v.Name, func(t *testing.T) {
			cred := Credential{Secret: v.Secret}
			s, err := NewSigner(ModeHMAC, cred)
			if err != nil {
				t.Fatal(err)
			}
			now := time.UnixMilli(v.NowUnixMS)
			sealed, err := s.Seal(v.Method, bodyBytes(v.Body), now)
			if err != nil {
				t.Fatal(err)
			}
			checkHeader(t, sealed.Header, v.WantHeader)
			checkBody(t, "wire body", sealed.Body, v.WantBody)

			ver, err := NewVerifier(ModeHMAC, cred, VerifierOptions{})
			if err != nil {
				t.Fatal(err)
			}
			opened, err := ver.Verify(v.Method, sealed.Header, sealed.Body, now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkBody(t, "verified body", opened.Body, v.Body)
		})
	}
}

func TestVectorsEncrypted(t *testing.T) {
	for _, v := range loadVectors(t).Encrypted {
		t.Run(v.Name, func(t *testing.T) {
			iv, err := hex.DecodeString(v.IVHex)
			if err != nil {
				t.Fatal(err)
			}
			now := time.UnixMilli(v.NowUnixMS)
			ts := now.Unix()

			// The intermediate values of steps 2–6, to locate a mismatch.
			if got := time.Unix(ts, 0).UTC().Format("2006:01:02:15:04"); got != v.FormattedDate {
				t.Errorf("formattedDate = %s, want %s", got, v.FormattedDate)
			}
			k := deriveKeys(v.cred(), ts)
			if k.password != v.Password {
				t.Errorf("password = %s, want %s", k.password, v.Password)
			}
			if k.keyTimestamp != v.EncodedKeyTimestamp {
				t.Errorf("encodedKeyTimestamp = %s, want %s", k.keyTimestamp, v.EncodedKeyTimestamp)
			}
			if string(k.aes) != v.AESKey {
				t.Errorf("aesKey = %s, want %s", k.aes, v.AESKey)
			}

			s, err := NewSigner(ModeEncrypted, v.cred(), WithRand(bytes.NewReader(iv)))
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := s.Seal(v.Method, bodyBytes(v.Body), now)
			if err != nil {
				t.Fatal(err)
			}
			checkHeader(t, sealed.Header, v.WantHeader)
			checkBody(t, "wire body", sealed.Body, v.WantBody)

			ver, err := NewVerifier(ModeEncrypted, v.cred(), VerifierOptions{})
			if err != nil {
				t.Fatal(err)
			}
			opened, err := ver.Verify(v.Method, sealed.Header, sealed.Body, now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			wantPlain := v.Body
			if v.Body == nil && v.WantBody != nil { // nil body on POST: {} was sent
				empty := emptyObject
				wantPlain = &empty
			}
			checkBody(t, "verified body", opened.Body, wantPlain)
		})
	}
}

// TestVectorsEncryptedVerifyOnly checks the verifier against the vector's own
// headers and wire bytes, not the ones Seal produced.
func TestVectorsEncryptedVerifyOnly(t *testing.T) {
	for _, v := range loadVectors(t).Encrypted {
		t.Run(v.Name, func(t *testing.T) {
			ver, err := NewVerifier(ModeEncrypted, v.cred(), VerifierOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h := make(http.Header)
			for k, val := range v.WantHeader {
				h.Set(k, val)
			}
			// 4 minutes later: still inside the window, and a different
			// minute, so the password must come from the header.
			now := time.UnixMilli(v.NowUnixMS).Add(4 * time.Minute)
			if _, err := ver.Verify(v.Method, h, bodyBytes(v.WantBody), now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVectorsEncryptedResponses(t *testing.T) {
	vs := loadVectors(t)
	byName := make(map[string]encryptedVector)
	for _, v := range vs.Encrypted {
		byName[v.Name] = v
	}
	for _, r := range vs.Responses {
		t.Run(r.Name, func(t *testing.T) {
			req, ok := byName[r.Request]
			if !ok {
				t.Fatalf("no request vector %q", r.Request)
			}
			s, err := NewSigner(ModeEncrypted, req.cred())
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := s.Seal(req.Method, bodyBytes(req.Body), time.UnixMilli(req.NowUnixMS))
			if err != nil {
				t.Fatal(err)
			}
			got, err := sealed.Open([]byte(r.Wire))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if string(got) != r.Plaintext {
				t.Errorf("Open = %q, want %q", got, r.Plaintext)
			}
		})
	}
}
