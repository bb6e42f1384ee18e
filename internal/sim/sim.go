package sim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/grandcat/zeroconf"
	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/terminal"
)

// ErrClosed is returned by Serve, ListenAndServe and Advertise after Close.
var ErrClosed = errors.New("sim: closed")

// Sim is one simulated Kushki ONE terminal: its HTTP API on every listener it
// serves, one terminal state (the active transaction, the local history) and
// one ledger. Its methods are safe for concurrent use.
type Sim struct {
	cfg      Config
	verifier hmac.Verifier
	log      zerolog.Logger
	srv      *http.Server
	handler  http.Handler
	done     chan struct{} // closed by Close: every wait gives up
	wg       sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	advert       *zeroconf.Server
	active       *activeTxn
	txns         []*txn
	byID         map[string][]*txn
	byRef        map[string]*txn
	seq          int64
	faults       []*Fault
	requests     map[string]int
	routes       map[string]int
	authFailures int
}

// New returns a simulator for cfg, or an error naming the bad field. It does
// no I/O: nothing listens until Serve or ListenAndServe.
func New(cfg Config) (*Sim, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	v, err := hmac.NewVerifier(c.Auth, c.Credential, hmac.VerifierOptions{EncryptResponses: c.EncryptResponses})
	if err != nil {
		return nil, fmt.Errorf("sim: config: %w", err)
	}
	s := &Sim{
		cfg:      c,
		verifier: v,
		log:      c.Logger.With().Str("component", "sim").Str("serial", c.Serial).Logger(),
		done:     make(chan struct{}),
		byID:     make(map[string][]*txn),
		byRef:    make(map[string]*txn),
		requests: make(map[string]int),
		routes:   make(map[string]int),
	}
	s.handler = s.router()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(s.log, "", 0),
	}
	return s, nil
}

// Serve answers HTTP on l until Close; it may be called for several listeners
// at once (the LAN port and a "cloud" port share one terminal). It returns
// nil when Close ends it, ErrClosed (closing l) when called after Close, and
// any other error from accepting on l.
func (s *Sim) Serve(l net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		l.Close()
		return ErrClosed
	}
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on addr (e.g. ":6868"), advertises the listener by
// DNS-SD when cfg.Advertise.Enabled, and serves until Close. It fails at once
// when addr cannot be listened on or the advertisement cannot start.
func (s *Sim) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: listen: %w", err)
	}
	if s.cfg.Advertise.Enabled {
		if err := s.Advertise(l.Addr()); err != nil {
			l.Close()
			return err
		}
	}
	return s.Serve(l)
}

// Handler returns the simulator's HTTP handler, for mounting in another
// server (an httptest.Server, say). Close still stops it: requests arriving
// after Close get 503 and waiting ones give up.
func (s *Sim) Handler() http.Handler { return s.handler }

// Close stops the simulator: listeners and connections are closed, waiting
// requests give up without an answer, the DNS-SD advertisement is withdrawn.
// It waits for every request handler to return. Calling it again is a no-op.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	advert := s.advert
	s.advert = nil
	close(s.done)
	s.mu.Unlock()

	err := s.srv.Close()
	if advert != nil {
		advert.Shutdown()
	}
	s.wg.Wait()
	return err
}

// enter registers a request handler with Close; false means closed.
func (s *Sim) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Sim) router() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		s.countRequest("unknown", "")
		s.writeError(w, notFoundErr(CodeNoRoute, "", "no such path"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		s.countRequest("unknown", "")
		s.writeError(w, newErr(http.StatusMethodNotAllowed, terminal.TypeNotFound, CodeMethod, "", "method %s not allowed here", req.Method))
	})
	for _, ep := range []terminal.Endpoint{
		terminal.EndpointCharge, terminal.EndpointAuthorization, terminal.EndpointCapture,
		terminal.EndpointReAuthorization, terminal.EndpointPosTip, terminal.EndpointVoid,
		terminal.EndpointRefund, terminal.EndpointAbort, terminal.EndpointSearchOnline,
		terminal.EndpointSearchLocal,
	} {
		m, p := terminal.Path(terminal.LAN, ep)
		r.Method(m, "/terminal/v1"+p, s.terminalHandler(terminal.LAN, ep))
		m, p = terminal.Path(terminal.Cloud, ep)
		r.Method(m, "/terminal/v1/{serial}"+p, s.terminalHandler(terminal.Cloud, ep))
	}
	r.Post("/pos/v1/transaction", s.rawHandler)
	r.Route("/_sim", func(r chi.Router) {
		r.Get("/faults", s.handleGetFaults)
		r.Post("/faults", s.handleArmFault)
		r.Delete("/faults", s.handleClearFaults)
		r.Get("/ledger", s.handleLedger)
		r.Get("/state", s.handleState)
		r.Post("/reset", s.handleReset)
	})
	return r
}

// terminalHandler serves one Payment API endpoint on one route.
func (s *Sim) terminalHandler(kind terminal.Kind, ep terminal.Endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		defer s.wg.Done()
		s.countRequest(string(ep), kind)
		ev := s.log.Debug().Str("route", string(kind)).Str("endpoint", string(ep))
		if kind == terminal.Cloud && chi.URLParam(r, "serial") != s.cfg.Serial {
			s.writeError(w, notFoundErr(CodeNoRoute, "", "no terminal with that serial"))
			ev.Int("status", http.StatusNotFound).Msg("wrong serial")
			return
		}
		f := s.takeFault(string(ep))
		if f != nil {
			ev = ev.Str("fault", string(f.Mode))
			switch f.Mode {
			case FaultDropBefore:
				ev.Msg("dropped before processing")
				_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, s.cfg.MaxBody)) // a clean close, not a reset
				dropConn(w)
				return
			case FaultError500:
				ev.Msg("500 before processing")
				s.writeError(w, internalErr())
				return
			}
		}
		body, e := s.readBody(w, r)
		if e != nil {
			s.writeError(w, e)
			ev.Str("error", errString(e)).Msg("body refused")
			return
		}
		opened, err := s.verifier.Verify(r.Method, r.Header, body, s.cfg.Now())
		if err != nil {
			s.mu.Lock()
			s.authFailures++
			s.mu.Unlock()
			code, msg := "AUTH-000", "authentication failed"
			var ae *hmac.AuthError
			if errors.As(err, &ae) {
				code, msg = ae.Code, ae.Message
			}
			s.writeError(w, newErr(http.StatusUnauthorized, terminal.TypeAuthentication, code, "", "%s", msg))
			ev.Str("error", code).Msg("authentication failed")
			return
		}
		status, resp, ok := s.dispatch(ep, opened.Body, f)
		if !ok {
			ev.Msg("shutting down")
			dropConn(w) // no answer: a closing terminal says nothing
			return
		}
		s.deliver(w, r, f, status, resp, opened.SealResponse, ev)
	}
}

// deliver writes a processed request's answer, bent by the fault f when one
// was taken: leak_pan rewrites it, hang and drop_after_approve withhold it,
// approve_then_500 replaces it, slow delays it. seal turns the plaintext
// answer into wire bytes.
func (s *Sim) deliver(w http.ResponseWriter, r *http.Request, f *Fault, status int, resp []byte,
	seal func([]byte) ([]byte, error), ev *zerolog.Event) {
	ev = ev.Int("status", status)
	if f != nil {
		switch f.Mode {
		case FaultLeakPAN:
			resp = leakPAN(resp, s.cfg.Card)
		case FaultHang:
			ev.Msg("processed; hanging until the client goes away")
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			dropConn(w)
			return
		case FaultDropAfterApprove:
			ev.Msg("processed; dropping the connection")
			dropConn(w)
			return
		case FaultApproveThen500:
			ev.Msg("processed; answering 500")
			s.writeError(w, internalErr())
			return
		case FaultSlow:
			select {
			case <-s.cfg.After(f.Delay):
			case <-r.Context().Done():
				ev.Msg("processed; the client left during the slow answer")
				return
			case <-s.done:
				dropConn(w)
				return
			}
		}
	}
	wire, err := seal(resp)
	if err != nil {
		s.writeError(w, internalErr())
		ev.Err(err).Msg("sealing the answer failed")
		return
	}
	writeJSON(w, status, wire)
	ev.Msg("answered")
}

// dispatch runs one verified request and returns the HTTP status and the
// plaintext body of the answer; ok is false when the simulator is closing
// and the request got no answer.
func (s *Sim) dispatch(ep terminal.Endpoint, body []byte, f *Fault) (status int, resp []byte, ok bool) {
	switch ep {
	case terminal.EndpointAbort:
		if e := decodeAbort(body); e != nil {
			return e.status, s.errorBody(e), true
		}
		return s.abort()
	case terminal.EndpointSearchLocal, terminal.EndpointSearchOnline:
		req, e := decodeSearch(body, ep == terminal.EndpointSearchLocal)
		if e != nil {
			return e.status, s.errorBody(e), true
		}
		return http.StatusOK, s.search(req, ep == terminal.EndpointSearchLocal), true
	}
	req, e := decodePayment(ep, body, s.cfg.Currency)
	if e != nil {
		return e.status, s.errorBody(e), true
	}
	cancel := f != nil && f.Mode == FaultCancel
	return s.pay(req, cancel)
}

func (s *Sim) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, paramErr(CodeMalformed, "", "the body exceeds %d bytes", s.cfg.MaxBody)
		}
		return nil, paramErr(CodeMalformed, "", "the body could not be read")
	}
	return b, nil
}

func (s *Sim) countRequest(endpoint string, kind terminal.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[endpoint]++
	if kind != "" {
		s.routes[string(kind)]++
	}
}

// errorBody renders a LinkFailure with the terminal's traceability object.
func (s *Sim) errorBody(e *apiError) []byte {
	lf := e.lf
	if lf.Object == nil {
		lf.Object = &terminal.ErrorObject{SerialNumber: s.cfg.Serial, TerminalID: s.cfg.Serial}
	}
	return mustJSON(lf)
}

// writeError answers e in plaintext (used before a request is verified, and
// for the 500 faults, which stand for a failure outside the terminal app).
func (s *Sim) writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, s.errorBody(e))
}

func internalErr() *apiError {
	return newErr(http.StatusInternalServerError, terminal.TypeTerminal, CodeInternal, "", "internal terminal error")
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mustJSON encodes the simulator's own plain-data types, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"type":"TERMINAL","code":"TER-999","message":"encoding failed"}`)
	}
	return b
}

// dropConn closes the client's connection without an answer.
func dropConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// credentialOK compares the raw API's Private-Credential-Id header with the
// configured secret in constant time.
func (s *Sim) credentialOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Credential.Secret)) == 1
}
