package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/payment"
)

var fuzzMethods = []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodHead}

// FuzzHandler drives the whole handler (guards, router, decoders, reply
// writing) through httptest.NewRecorder over a fake service that accepts
// everything (seed corpus in testdata/fuzz/FuzzHandler). Invariants: no
// panic and never a 5xx (the service never fails, so any 5xx is the API's
// own fault, a recovered panic included); every answer carries a request
// id, is JSON, and an error is the documented shape with a code whose status
// is the one sent; every answer matches api/openapi.yaml.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct {
		method      uint8
		target, ct  string
		body        string
		withToken   bool
		originCross bool
	}{
		{0, "/v1/charges", "application/json", `{"amount":{"subtotal_iva0":5}}`, true, false},
		{0, "/v1/transactions/3f1c9a52-0d5e-4b8e-9a3f-6a2f1d7c4b10/capture", "application/json", `{"amount":{"subtotal_iva0":5}}`, true, false},
		{0, "/v1/transactions/x/cancel", "application/json; charset=utf-8", ``, true, false},
		{0, "/v1/terminals/lane1/search", "application/json", `{"source":"local"}`, true, false},
		{0, "/v1/terminals/lane1/abort", "application/json", `{}`, false, false},
		{1, "/v1/transactions?status=approved&limit=2", "", ``, true, false},
		{1, "/v1/transactions/abc?wait=2s", "", ``, true, true},
		{1, "/readyz", "", ``, true, false},
		{1, "/healthz", "", ``, false, false},
		{2, "/v1/charges", "application/json", `{}`, true, false},
	} {
		f.Add(s.method, s.target, s.ct, []byte(s.body), s.withToken, s.originCross)
	}
	const token = "fuzz-token"
	h, err := api.New(api.Config{Service: &fakeService{}, JournalCheck: func(context.Context) error { return nil },
		Port: 8740, Token: token, MaxBodyBytes: 4096, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	sp := loadSpec(f)
	f.Fuzz(func(t *testing.T, method uint8, target, ct string, body []byte, withToken, originCross bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // not a request line net/http would accept
		}
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req := httptest.NewRequest(m, "http://127.0.0.1:8740/", bytes.NewReader(body))
		req.URL = u
		req.RequestURI = target
		req.Host = "127.0.0.1:8740"
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if withToken {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if originCross {
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if res.Status >= 500 {
			t.Fatalf("%s %s: got %d %s, want no 5xx", m, target, res.Status, res.Body)
		}
		if m == http.MethodHead {
			return
		}
		if !json.Valid(res.Body) {
			t.Fatalf("%s %s: answer is not JSON: %q", m, target, res.Body)
		}
		if res.Status >= 400 {
			var e struct {
				Error payment.Error `json:"error"`
			}
			if err := json.Unmarshal(res.Body, &e); err != nil || e.Error.Message == "" || api.HTTPStatus(e.Error.Code) != res.Status {
				t.Fatalf("%s %s: got %d %s, want the error shape with a code of that status", m, target, res.Status, res.Body)
			}
		}
		for _, p := range sp.problems(m, u.EscapedPath(), res) {
			t.Errorf("%s %s → %d %s: %s", m, target, res.Status, clipBody(res.Body), p)
		}
	})
}
