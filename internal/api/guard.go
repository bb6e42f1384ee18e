package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/payment"
)

// Log field names of the access log.
const (
	logRequestID = "request_id"
	logMethod    = "method"
	logPath      = "path"
	logStatus    = "status"
	logDuration  = "duration_ms"
	logID        = "client_transaction_id"
	logTerminal  = "terminal"
)

// Header names.
const (
	headerRequestID         = "X-Request-Id"
	headerReplayed          = "Idempotent-Replayed"
	headerPrefer            = "Prefer"
	headerPreferenceApplied = "Preference-Applied"
)

// statusClientGone is logged (never sent) when the client went away before
// an answer was written, as nginx's 499.
const statusClientGone = 499

// reqInfo is what a request's access log line says beyond the request line;
// handlers fill it as they learn it. One request's goroutine owns it.
type reqInfo struct {
	requestID string
	id        string // client_transaction_id
	terminal  string
	gone      bool // the client went away; nothing was written
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// note records the transaction and terminal a request is about, for the log.
func note(r *http.Request, id, terminal string) {
	ri := info(r)
	if id != "" {
		ri.id = id
	}
	if terminal != "" {
		ri.terminal = terminal
	}
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// guard wraps the router with what every request goes through, in order:
// a request id, the access log and panic recovery; then the Host allowlist,
// the Origin and Sec-Fetch-Site checks and the bearer token.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := h.cfg.Now()
		ri := &reqInfo{requestID: requestID(r.Header.Get(headerRequestID))}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		rec := &recorder{ResponseWriter: w}
		hdr := w.Header()
		hdr.Set(headerRequestID, ri.requestID)
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error().Str(logRequestID, ri.requestID).Str("panic", fmt.Sprint(v)).
					Bytes("stack", debug.Stack()).Msg("handler panicked")
				if rec.status == 0 {
					h.writeError(rec, r, &payment.Error{Code: payment.CodeInternal, Message: msgInternal})
				}
			}
			h.access(r, ri, rec.status, h.cfg.Now().Sub(start))
		}()
		if perr := h.check(r); perr != nil {
			if perr.Code == payment.CodeUnauthorized {
				hdr.Set("WWW-Authenticate", `Bearer realm="posbridge"`)
			}
			h.writeError(rec, r, perr)
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// access writes the one log line of a request. It never logs bodies, query
// strings or headers other than the request id.
func (h *handler) access(r *http.Request, ri *reqInfo, status int, d time.Duration) {
	if ri.gone || status == 0 {
		status = statusClientGone
	}
	ev := h.log.Info()
	if status >= 500 && status != statusClientGone {
		ev = h.log.Warn()
	}
	ev = ev.Str(logRequestID, ri.requestID).Str(logMethod, clip(r.Method, 20)).
		Str(logPath, clip(r.URL.Path, 200)).Int(logStatus, status).
		Float64(logDuration, float64(d.Microseconds())/1000)
	if ri.id != "" {
		ev = ev.Str(logID, clip(ri.id, 64))
	}
	if ri.terminal != "" {
		ev = ev.Str(logTerminal, clip(ri.terminal, 64))
	}
	ev.Msg("request")
}

// requestID returns a sane incoming request id (1–64 of A–Z a–z 0–9 . _ : -)
// or a new UUID.
func requestID(in string) string {
	if len(in) == 0 || len(in) > 64 {
		return uuid.NewString()
	}
	for i := 0; i < len(in); i++ {
		c := in[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return uuid.NewString()
		}
	}
	return in
}

// check applies the safety rails of a localhost money API
// (research/anchors-reliability.md §4.4, checks S2–S4 of §7).
func (h *handler) check(r *http.Request) *payment.Error {
	// DNS rebinding: after a rebind the attacker's page is same-origin with
	// the Host it sends, so only a Host allowlist stops it. An empty Host
	// (HTTP/1.0, or ":PORT") is refused too (the Ollama bypass).
	if !h.hosts[r.Host] {
		return &payment.Error{Code: payment.CodeForbidden,
			Message: "Host " + quoteClip(r.Host) + " is not allowed; use 127.0.0.1, [::1] or localhost with the API's port, or add it to api.allowed_hosts"}
	}
	// Browsers: any Origin must be allowed; a request a browser marks as
	// coming from another site must come from an allowed origin.
	origins := r.Header.Values("Origin")
	allowedOrigin := false
	switch len(origins) {
	case 0:
	case 1:
		if !h.origins[normOrigin(origins[0])] {
			return &payment.Error{Code: payment.CodeForbidden,
				Message: "Origin " + quoteClip(origins[0]) + " is not allowed: browsers may not call this API unless api.allowed_origins names them"}
		}
		allowedOrigin = true
	default:
		return &payment.Error{Code: payment.CodeForbidden, Message: "more than one Origin header"}
	}
	if sites := r.Header.Values("Sec-Fetch-Site"); len(sites) > 0 && !allowedOrigin {
		for _, s := range sites {
			if s != "none" && s != "same-origin" {
				return &payment.Error{Code: payment.CodeForbidden,
					Message: "a " + quoteClip(s) + " browser request is not allowed"}
			}
		}
	}
	if h.cfg.Token != "" && r.URL.Path != "/healthz" {
		auth := r.Header.Values("Authorization")
		const prefix = "bearer "
		if len(auth) != 1 || len(auth[0]) < len(prefix) || !strings.EqualFold(auth[0][:len(prefix)], prefix) {
			return &payment.Error{Code: payment.CodeUnauthorized, Message: "a bearer token is required: Authorization: Bearer <token>"}
		}
		got := digest(auth[0][len(prefix):])
		if subtle.ConstantTimeCompare(got[:], h.token[:]) != 1 {
			return &payment.Error{Code: payment.CodeUnauthorized, Message: "the bearer token is not valid"}
		}
	}
	return nil
}

// digest hashes a token so that comparing two takes the same time whatever
// their lengths.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// normOrigin lower-cases an origin (scheme and host are case-insensitive)
// and drops a trailing slash.
func normOrigin(o string) string { return strings.TrimSuffix(strings.ToLower(o), "/") }

func quoteClip(s string) string { return fmt.Sprintf("%q", clip(s, 100)) }
