package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/posbridge/posbridge/internal/money"
)

// The control API lives under /_sim, a path no real terminal serves, and
// needs no authentication: it is for tests and developers, never exposed
// where a real POS could mistake it for a terminal.
//
//	GET    /_sim/faults   armed faults (JSON array of Fault)
//	POST   /_sim/faults   arm one: {"mode":"hang","count":1,"endpoints":["charge"],"delay":"2s"} → 201
//	DELETE /_sim/faults   disarm all → 204
//	GET    /_sim/ledger   the Ledger
//	GET    /_sim/state    the State
//	POST   /_sim/reset    forget history, ledger, counters and faults → 204 (409 while a transaction runs)

// State is a snapshot of the terminal for tests: what is running and how
// many requests each endpoint received.
type State struct {
	Serial   string         `json:"serial"`
	Currency money.Currency `json:"currency"`
	// Active is the transaction in progress, nil when the terminal is idle.
	Active *Active `json:"active"`
	// Requests counts requests by endpoint name ("charge", …, "abort",
	// "transaction_search_local", EndpointRaw, and "unknown" for paths the
	// terminal does not serve), counted on arrival, before authentication.
	Requests map[string]int `json:"requests"`
	// Routes counts terminal requests by route: "lan", "cloud", "raw".
	Routes map[string]int `json:"routes"`
	// TotalRequests is the sum of Requests: 0 proves no call reached the
	// terminal.
	TotalRequests int `json:"total_requests"`
	// AuthFailures counts requests refused for their signature or credential.
	AuthFailures int `json:"auth_failures"`
	// Transactions counts the history (local and raw API).
	Transactions int     `json:"transactions"`
	Faults       []Fault `json:"faults"`
}

// Active describes the transaction in progress.
type Active struct {
	ClientTransactionID string `json:"client_transaction_id"`
	Operation           string `json:"operation"`
	// Phase is "customer" (abort works) or "approval" (the terminal asked
	// the acquirer; abort no longer works).
	Phase string    `json:"phase"`
	Since time.Time `json:"since"`
}

// State returns a snapshot of the terminal.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Serial: s.cfg.Serial, Currency: s.cfg.Currency,
		Requests: make(map[string]int, len(s.requests)), Routes: make(map[string]int, len(s.routes)),
		AuthFailures: s.authFailures, Transactions: len(s.txns), Faults: s.faultsLocked(),
	}
	for k, v := range s.requests {
		st.Requests[k] = v
		st.TotalRequests += v
	}
	for k, v := range s.routes {
		st.Routes[k] = v
	}
	if a := s.active; a != nil {
		st.Active = &Active{ClientTransactionID: a.id, Operation: string(a.ep), Phase: string(a.phase), Since: a.since}
	}
	return st
}

// Ledger returns the ledger of money as it stands.
func (s *Sim) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledgerLocked()
}

// ErrBusy is returned by Reset while a transaction is in progress.
var ErrBusy = errors.New("sim: a transaction is in progress")

// Reset forgets the history, the ledger, the request counters and the armed
// faults, as if the terminal were new. It returns ErrBusy while a transaction
// is in progress.
func (s *Sim) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		return ErrBusy
	}
	s.txns = nil
	s.byID = make(map[string][]*txn)
	s.byRef = make(map[string]*txn)
	s.requests = make(map[string]int)
	s.routes = make(map[string]int)
	s.authFailures = 0
	s.faults = nil
	return nil
}

// controlError is the body of a control API error.
type controlError struct {
	Error string `json:"error"`
}

func (s *Sim) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustJSON(s.Faults()))
}

func (s *Sim) handleArmFault(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, mustJSON(controlError{"the body could not be read"}))
		return
	}
	var f Fault
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, mustJSON(controlError{err.Error()}))
		return
	}
	if err := f.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, mustJSON(controlError{err.Error()}))
		return
	}
	if err := s.ArmFault(f); err != nil {
		writeJSON(w, http.StatusBadRequest, mustJSON(controlError{err.Error()}))
		return
	}
	writeJSON(w, http.StatusCreated, mustJSON(f))
}

func (s *Sim) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleLedger(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustJSON(s.Ledger()))
}

func (s *Sim) handleState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustJSON(s.State()))
}

func (s *Sim) handleReset(w http.ResponseWriter, _ *http.Request) {
	if err := s.Reset(); err != nil {
		writeJSON(w, http.StatusConflict, mustJSON(controlError{err.Error()}))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
