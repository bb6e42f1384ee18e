// Package api is posbridge's local REST API: the JSON-over-HTTP contract with
// POS software (api/openapi.yaml describes exactly what it serves). It decodes
// requests strictly, hands them to the payment service, and writes the
// service's replies and errors, mapping error codes to HTTP statuses in one
// table (errors.go). It also defends a money API that listens on localhost
// against browsers and DNS rebinding: a Host allowlist, Origin and
// Sec-Fetch-Site checks, no CORS, an optional bearer token, JSON-only POSTs
// and a body cap (research/anchors-reliability.md §4.4).
//
// It is not the payment lifecycle (internal/payment decides everything about
// a payment, including idempotency) and it does not listen or own an
// http.Server: cmd/posbridge does, with the timeouts given in New's doc.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// Service is what the API needs of the payment service; *payment.Service
// implements it, and tests may fake it. See payment.Service for each
// method's contract. Implementations must be safe for concurrent use.
type Service interface {
	Execute(ctx context.Context, req payment.Request, async bool) (*payment.Reply, error)
	Cancel(ctx context.Context, req payment.Request, async bool) (*payment.Reply, error)
	Get(ctx context.Context, id string, wait time.Duration, claim bool) (*payment.Record, error)
	List(ctx context.Context, f payment.Filter) ([]*payment.Record, string, error)
	Abort(ctx context.Context, terminal string) (payment.Route, error)
	Search(ctx context.Context, terminal string, q payment.SearchQuery) (json.RawMessage, payment.Route, error)
	Terminals() []payment.TerminalInfo
	Busy(terminal string) string
	Health() payment.Health
	Resolve(ctx context.Context, id string, status payment.Status, note string) (*payment.Record, error)
}

var _ Service = (*payment.Service)(nil)

// TerminalStatus is one terminal as GET /v1/terminals shows it. The status
// provider fills what it knows of the routes; the API fills Currency (when
// empty), Busy and RunningID from the payment service.
type TerminalStatus struct {
	Name     string         `json:"name"`
	Serial   string         `json:"serial"`
	Currency money.Currency `json:"currency"`
	// Route is the route in use (of the last operation sent), "" before the
	// first.
	Route     payment.Route `json:"route,omitempty"`
	LAN       LANStatus     `json:"lan"`
	Cloud     CloudStatus   `json:"cloud"`
	LastError string        `json:"last_error,omitempty"`
	Busy      bool          `json:"busy"`
	// RunningID is the client_transaction_id of the operation holding the
	// terminal, when Busy.
	RunningID string `json:"running_id,omitempty"`
}

// LANStatus is a terminal's LAN route.
type LANStatus struct {
	// Address is host:port, "" while unknown (discovery has not found it).
	Address string `json:"address,omitempty"`
	// Up is false once the LAN could not be connected, until it answers again.
	Up bool `json:"up"`
	// LastSeen is when the terminal last answered.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastRoundTripMS is the last answered request's duration on the LAN in
	// milliseconds, nil when none was measured.
	LastRoundTripMS *int64 `json:"last_round_trip_ms,omitempty"`
}

// CloudStatus is a terminal's cloud route.
type CloudStatus struct {
	Enabled         bool   `json:"enabled"`
	LastRoundTripMS *int64 `json:"last_round_trip_ms,omitempty"`
}

// Config configures the API. Service and JournalCheck are required.
type Config struct {
	Service Service
	// Terminals returns the routes of every configured terminal (the daemon
	// adapts the terminal gateway's status). Nil: GET /v1/terminals lists the
	// service's terminals without route details, and readiness reports their
	// routes as unknown (not as down).
	Terminals func() []TerminalStatus
	// JournalCheck reports whether the journal can take writes, for /readyz.
	// It is called with a short deadline and must be cheap.
	JournalCheck func(context.Context) error
	// Metrics serves GET /metrics (Prometheus); nil: 404.
	Metrics http.Handler

	// Port is the port the API listens on: Host headers are allowed only
	// for 127.0.0.1:Port, [::1]:Port, localhost:Port and AllowedHosts.
	Port int
	// AllowedHosts are further Host header values accepted, exactly as a
	// client sends them (host:port).
	AllowedHosts []string
	// AllowedOrigins are browser origins (https://pos.example) whose
	// requests are let through the Origin and Sec-Fetch-Site checks. No CORS
	// header is ever sent, so a cross-origin page still cannot read answers.
	AllowedOrigins []string
	// Token, when not empty, is required as "Authorization: Bearer <Token>"
	// on every route but /healthz.
	Token string
	// MaxBodyBytes caps a request body (413 above it); 0 means 16 KiB.
	MaxBodyBytes int64
	// MaxWait caps ?wait= on GET /v1/transactions/{id}; 0 means 150 s.
	MaxWait time.Duration

	Logger zerolog.Logger
	// Now is the clock of the access log's durations; nil means time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 16 << 10
	DefaultMaxWait      = 150 * time.Second
)

// handler holds the API's state; it is safe for concurrent use.
type handler struct {
	cfg     Config
	svc     Service
	log     zerolog.Logger
	hosts   map[string]bool
	origins map[string]bool
	token   [32]byte // SHA-256 of the token, for a constant-time comparison
	router  chi.Router
}

// New returns the API's handler. It fails when Service, JournalCheck or Port
// is missing or a limit is negative. It does no I/O.
//
// The http.Server serving it should set ReadHeaderTimeout (10 s), a
// ReadTimeout of about 30 s, no WriteTimeout shorter than the terminal
// response timeout plus MaxWait (a charge blocks while the customer pays),
// an IdleTimeout and MaxHeaderBytes (64 KiB).
func New(cfg Config) (http.Handler, error) {
	switch {
	case cfg.Service == nil:
		return nil, errors.New("api: a payment service is required")
	case cfg.JournalCheck == nil:
		return nil, errors.New("api: a journal check is required")
	case cfg.Port <= 0 || cfg.Port > 65535:
		return nil, errors.New("api: the listen port is required (Host allowlist)")
	case cfg.MaxBodyBytes < 0 || cfg.MaxWait < 0:
		return nil, errors.New("api: negative limit")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &handler{
		cfg:     cfg,
		svc:     cfg.Service,
		log:     cfg.Logger.With().Str("component", "api").Logger(),
		hosts:   map[string]bool{},
		origins: map[string]bool{},
	}
	port := strconv.Itoa(cfg.Port)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		h.hosts[net.JoinHostPort(host, port)] = true
		if cfg.Port == 80 { // clients leave the default port out
			h.hosts[hostOnly(host)] = true
		}
	}
	for _, host := range cfg.AllowedHosts {
		h.hosts[host] = true
	}
	for _, o := range cfg.AllowedOrigins {
		h.origins[normOrigin(o)] = true
	}
	if cfg.Token != "" {
		h.token = digest(cfg.Token)
	}
	h.router = h.routes()
	return h.guard(h.router), nil
}

// hostOnly writes an IPv6 literal in brackets, as a Host header carries it.
func hostOnly(host string) string {
	if host == "::1" {
		return "[::1]"
	}
	return host
}

func (h *handler) routes() chi.Router {
	r := chi.NewRouter()
	r.NotFound(h.notFound)
	r.MethodNotAllowed(h.methodNotAllowed)

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Get("/metrics", h.metrics)

	r.Post("/v1/charges", h.operation(payment.OpCharge))
	r.Post("/v1/authorizations", h.operation(payment.OpAuthorization))
	r.Get("/v1/transactions", h.listTransactions)
	r.Get("/v1/transactions/{id}", h.getTransaction)
	r.Post("/v1/transactions/{id}/capture", h.followUp(payment.OpCapture))
	r.Post("/v1/transactions/{id}/reauthorize", h.followUp(payment.OpReauthorization))
	r.Post("/v1/transactions/{id}/tip", h.followUp(payment.OpTip))
	r.Post("/v1/transactions/{id}/void", h.followUp(payment.OpVoid))
	r.Post("/v1/transactions/{id}/refund", h.followUp(payment.OpRefund))
	r.Post("/v1/transactions/{id}/cancel", h.followUp(""))
	r.Post("/v1/transactions/{id}/resolve", h.resolve)

	r.Get("/v1/terminals", h.terminals)
	r.Post("/v1/terminals/{name}/abort", h.abort)
	r.Post("/v1/terminals/{name}/search", h.search)
	return r
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, &payment.Error{Code: payment.CodeNotFound, Message: "no such route: " + clip(r.URL.Path, 200)})
}

// methodNotAllowed answers 405 with the Allow header chi's own handler would
// set (a custom handler does not get the list, so it is asked again, on the
// path chi routed: the escaped one when it holds an escaped slash).
func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if h.router.Match(chi.NewRouteContext(), m, path) {
			w.Header().Add("Allow", m)
		}
	}
	h.writeError(w, r, &payment.Error{Code: payment.CodeMethodNotAllowed,
		Message: "method " + clip(r.Method, 20) + " is not allowed on " + clip(r.URL.Path, 200)})
}

// clip shortens s for messages and logs.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
