package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/posbridge/posbridge/internal/payment"
)

// terminalStatuses returns every configured terminal with its routes (from
// the provider) and whether it is busy (from the service), in configuration
// order.
func (h *handler) terminalStatuses() []TerminalStatus {
	infos := h.svc.Terminals()
	byName := map[string]TerminalStatus{}
	if h.cfg.Terminals != nil {
		for _, t := range h.cfg.Terminals() {
			byName[t.Name] = t
		}
	}
	out := make([]TerminalStatus, 0, len(infos))
	for _, ti := range infos {
		t, ok := byName[ti.Name]
		if !ok {
			t = TerminalStatus{Name: ti.Name}
		}
		if t.Currency == "" {
			t.Currency = ti.Currency
		}
		t.RunningID = h.svc.Busy(ti.Name)
		t.Busy = t.RunningID != ""
		out = append(out, t)
	}
	return out
}

// terminals serves GET /v1/terminals.
func (h *handler) terminals(w http.ResponseWriter, r *http.Request) {
	if perr := noQuery(r); perr != nil {
		h.writeError(w, r, perr)
		return
	}
	writeJSON(w, http.StatusOK, marshal(struct {
		Terminals []TerminalStatus `json:"terminals"`
	}{h.terminalStatuses()}))
}

// abortResult is the body of a successful abort.
type abortResult struct {
	Terminal string        `json:"terminal"`
	Route    payment.Route `json:"route"`
	Aborted  bool          `json:"aborted"`
}

// abort serves POST /v1/terminals/{name}/abort: the terminal cancels the
// transaction in progress (only before it asked the acquirer); the
// operation that was running settles as cancelled through its own call.
func (h *handler) abort(w http.ResponseWriter, r *http.Request) {
	name := pathParam(r, "name")
	note(r, "", name)
	b, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if _, perr := decodeOperation(b, bodyEmpty); perr != nil {
		h.writeError(w, r, perr)
		return
	}
	note(r, h.svc.Busy(name), "")
	route, err := h.svc.Abort(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, marshal(abortResult{Terminal: name, Route: route, Aborted: true}))
}

// searchResult is the body of a terminal search.
type searchResult struct {
	Terminal string               `json:"terminal"`
	Route    payment.Route        `json:"route"`
	Source   payment.SearchSource `json:"source"`
	Result   json.RawMessage      `json:"result"`
}

// search serves POST /v1/terminals/{name}/search: the terminal's own
// (local) or the acquirer's (online) transaction history, as the terminal
// answered it, card data masked.
func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	name := pathParam(r, "name")
	note(r, "", name)
	b, ok := h.readBody(w, r)
	if !ok {
		return
	}
	q, perr := decodeSearch(b)
	if perr != nil {
		h.writeError(w, r, perr)
		return
	}
	note(r, q.ClientTransactionID, "")
	raw, route, err := h.svc.Search(r.Context(), name, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !json.Valid(raw) || string(bytes.TrimSpace(raw)) == "null" {
		h.fail(w, r, &payment.Error{Code: payment.CodeTerminalError, Message: "the terminal's search answer is not a JSON value"})
		return
	}
	writeJSON(w, http.StatusOK, marshal(searchResult{Terminal: name, Route: route, Source: q.Source, Result: raw}))
}
