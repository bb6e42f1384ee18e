package api

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// journalCheckTimeout bounds the readiness journal check.
const journalCheckTimeout = 2 * time.Second

// maxAttentionIDs caps the ids /readyz lists (the count is always exact).
const maxAttentionIDs = 50

// healthz serves GET /healthz: the process is alive and serving. It needs
// no token, so a supervisor can ask it without one.
func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// readiness is the body of GET /readyz.
type readiness struct {
	Ready  bool            `json:"ready"`
	Checks readinessChecks `json:"checks"`
}

type readinessChecks struct {
	Journal        journalCheck   `json:"journal"`
	Routes         routesCheck    `json:"routes"`
	NeedsAttention attentionCheck `json:"needs_attention"`
}

type journalCheck struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// routesCheck is ok when at least one terminal has a usable route (a LAN
// address that answers, or the cloud): the daemon can take payments on it.
// Terminals says, per terminal, which route an operation would take: lan,
// cloud, none, or unknown when no status provider is configured.
type routesCheck struct {
	OK        bool              `json:"ok"`
	Terminals map[string]string `json:"terminals"`
}

// attentionCheck is ok when no record needs a person.
type attentionCheck struct {
	OK      bool              `json:"ok"`
	Count   int               `json:"count"`
	IDs     []string          `json:"ids"`
	Reasons map[string]string `json:"reasons"`
}

// readyz serves GET /readyz: 200 when the journal takes writes, a terminal
// route is usable and nothing needs attention; 503 otherwise, saying which
// check failed.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	var out readiness
	ctx, cancel := context.WithTimeout(r.Context(), journalCheckTimeout)
	err := h.cfg.JournalCheck(ctx)
	cancel()
	out.Checks.Journal.OK = err == nil
	if err != nil {
		// The error may name files; it goes to the log, not the answer.
		h.log.Warn().Err(err).Str(logRequestID, info(r).requestID).Msg("readiness: journal check failed")
		out.Checks.Journal.Error = "the journal cannot take writes; see the posbridge log"
	}

	out.Checks.Routes.Terminals = map[string]string{}
	for _, t := range h.terminalStatuses() {
		route := "none"
		switch {
		case h.cfg.Terminals == nil:
			route = "unknown" // no status provider: not known to be down
		case t.LAN.Address != "" && t.LAN.Up:
			route = string(payment.RouteLAN)
		case t.Cloud.Enabled:
			route = string(payment.RouteCloud)
		}
		out.Checks.Routes.Terminals[t.Name] = route
		out.Checks.Routes.OK = out.Checks.Routes.OK || route != "none"
	}

	att := h.svc.Health().NeedsAttention
	a := &out.Checks.NeedsAttention
	a.Count, a.OK, a.IDs, a.Reasons = len(att), len(att) == 0, []string{}, map[string]string{}
	for id := range att {
		a.IDs = append(a.IDs, id)
	}
	sort.Strings(a.IDs)
	if len(a.IDs) > maxAttentionIDs {
		a.IDs = a.IDs[:maxAttentionIDs]
	}
	for _, id := range a.IDs {
		a.Reasons[id] = att[id]
	}

	out.Ready = out.Checks.Journal.OK && out.Checks.Routes.OK && a.OK
	status := http.StatusOK
	if !out.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, marshal(out))
}

// metrics serves GET /metrics with the configured handler.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Metrics == nil {
		h.notFound(w, r)
		return
	}
	h.cfg.Metrics.ServeHTTP(w, r)
}
