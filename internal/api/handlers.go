package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/posbridge/posbridge/internal/payment"
)

// writeJSON writes a JSON answer.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshal encodes plain data, which cannot fail.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("api: encode answer: " + err.Error())
	}
	return b
}

// writeError writes the one error shape with the status of its code.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, e *payment.Error) {
	note(r, e.ID, "")
	writeJSON(w, HTTPStatus(e.Code), payment.ErrorBody(e))
}

// fail writes err, which came from the service. A request whose client went
// away is only logged: nobody reads the answer, and the operation, if one
// started, goes on and is journaled.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && (errors.Is(err, r.Context().Err())) {
		info(r).gone = true
		return
	}
	e := coded(err)
	switch e.Code {
	case payment.CodeJournalUnavailable, payment.CodeInternal:
		h.log.Error().Err(err).Str(logRequestID, info(r).requestID).Str(logID, e.ID).Msg("request failed")
	}
	h.writeError(w, r, e)
}

// reply writes an operation's reply: the transaction object (200), a stored
// error body with its code's status, or 202 for an accepted asynchronous
// request.
func (h *handler) reply(w http.ResponseWriter, r *http.Request, rep *payment.Reply, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	note(r, rep.ID, "")
	if rep.Accepted {
		loc := "/v1/transactions/" + rep.ID
		w.Header().Set("Location", loc)
		w.Header().Set(headerPreferenceApplied, "respond-async")
		writeJSON(w, http.StatusAccepted, marshal(accepted{ID: rep.ID, Location: loc}))
		return
	}
	if rep.Replayed {
		w.Header().Set(headerReplayed, "true")
	}
	if rep.Code == "" && info(r).terminal == "" {
		// For the access log: the terminal the service chose.
		var t struct {
			Terminal string `json:"terminal"`
		}
		if json.Unmarshal(rep.Body, &t) == nil {
			note(r, "", t.Terminal)
		}
	}
	status := http.StatusOK
	if rep.Code != "" {
		status = HTTPStatus(rep.Code)
	}
	writeJSON(w, status, rep.Body)
}

// accepted is the 202 body of an asynchronous request.
type accepted struct {
	ID       string `json:"client_transaction_id"`
	Location string `json:"location"`
}

// readBody enforces Content-Type: application/json and the body cap and
// returns the body. It writes the error itself and returns false on failure.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if perr := noQuery(r); perr != nil {
		h.writeError(w, r, perr)
		return nil, false
	}
	ct := r.Header.Values("Content-Type")
	mt := ""
	if len(ct) == 1 {
		var params map[string]string
		var err error
		mt, params, err = mime.ParseMediaType(ct[0])
		if cs, ok := params["charset"]; err != nil || (ok && !strings.EqualFold(cs, "utf-8")) {
			mt = ""
		}
	}
	if mt != "application/json" {
		h.writeError(w, r, &payment.Error{Code: payment.CodeUnsupportedMedia,
			Message: "a POST body must be sent with Content-Type: application/json"})
		return nil, false
	}
	limit := h.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		h.tooLarge(w, r)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		h.tooLarge(w, r)
		return nil, false
	case err != nil:
		if r.Context().Err() != nil {
			info(r).gone = true
			return nil, false
		}
		h.writeError(w, r, badRequest("", "the body could not be read"))
		return nil, false
	}
	return b, true
}

func (h *handler) tooLarge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	h.writeError(w, r, &payment.Error{Code: payment.CodeTooLarge,
		Message: fmt.Sprintf("the body exceeds %d bytes", h.cfg.MaxBodyBytes)})
}

// noQuery refuses a query string on routes that take none.
func noQuery(r *http.Request) *payment.Error {
	_, perr := query(r)
	return perr
}

// query parses the query string and refuses parameters not in allowed, or
// given more than once.
func query(r *http.Request, allowed ...string) (url.Values, *payment.Error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("", "the query string is malformed")
	}
	for k, vals := range v {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		switch {
		case !ok:
			return nil, badRequest(clip(k, 64), fmt.Sprintf("unknown query parameter %q", clip(k, 64)))
		case len(vals) > 1:
			return nil, badRequest(k, fmt.Sprintf("query parameter %q is given more than once", k))
		}
	}
	return v, nil
}

// preferAsync reports whether the request carries Prefer: respond-async
// (RFC 7240: comma-separated preferences, names case-insensitive).
func preferAsync(r *http.Request) bool {
	for _, v := range r.Header.Values(headerPrefer) {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(p, ";")
			name, _, _ = strings.Cut(name, "=")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// pathParam returns a path parameter, decoded: chi matches on the escaped
// path when it holds an escaped slash (URL.RawPath set), and then hands
// parameters out escaped.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

// canonicalID returns a UUID path segment in the journal's canonical form
// (lower case) and anything else as it is (it will not be found).
func canonicalID(s string) string {
	if id, err := uuid.Parse(s); err == nil && len(s) == 36 {
		return id.String()
	}
	return s
}

// operation serves POST /v1/charges and /v1/authorizations.
func (h *handler) operation(op payment.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := h.readBody(w, r)
		if !ok {
			return
		}
		body, perr := decodeOperation(b, bodyPayment)
		if perr != nil {
			h.writeError(w, r, perr)
			return
		}
		note(r, body.ID, body.Terminal)
		req := payment.Request{Operation: op, ID: body.ID, Terminal: body.Terminal, Amount: body.Amount, Metadata: body.Metadata}
		rep, err := h.svc.Execute(r.Context(), req, preferAsync(r))
		h.reply(w, r, rep, err)
	}
}

// followUp serves POST /v1/transactions/{id}/{capture,…}; op "" is cancel.
func (h *handler) followUp(op payment.Operation) http.HandlerFunc {
	kind := bodyFollowUp
	if op == "" {
		kind = bodyCancel
	}
	return func(w http.ResponseWriter, r *http.Request) {
		orig := canonicalID(pathParam(r, "id"))
		b, ok := h.readBody(w, r)
		if !ok {
			return
		}
		body, perr := decodeOperation(b, kind)
		if perr != nil {
			h.writeError(w, r, perr)
			return
		}
		note(r, body.ID, "")
		req := payment.Request{Operation: op, ID: body.ID, OriginalID: orig, Amount: body.Amount, Metadata: body.Metadata}
		var rep *payment.Reply
		var err error
		if op == "" {
			rep, err = h.svc.Cancel(r.Context(), req, preferAsync(r))
		} else {
			rep, err = h.svc.Execute(r.Context(), req, preferAsync(r))
		}
		h.reply(w, r, rep, err)
	}
}

// resolve serves POST /v1/transactions/{id}/resolve: a person's decision on
// a payment recovery could not settle (needs_attention).
func (h *handler) resolve(w http.ResponseWriter, r *http.Request) {
	id := canonicalID(pathParam(r, "id"))
	note(r, id, "")
	b, ok := h.readBody(w, r)
	if !ok {
		return
	}
	body, perr := decodeResolve(b)
	if perr != nil {
		perr.ID = id
		h.writeError(w, r, perr)
		return
	}
	rec, err := h.svc.Resolve(r.Context(), id, body.Status, body.Note)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	note(r, "", rec.Terminal)
	writeJSON(w, http.StatusOK, marshal(rec.Transaction))
}

// getTransaction serves GET /v1/transactions/{id}[?wait=90s]. Reading a
// transaction by id claims it: recovery keeps an approval the POS asked for.
func (h *handler) getTransaction(w http.ResponseWriter, r *http.Request) {
	id := canonicalID(pathParam(r, "id"))
	note(r, id, "")
	q, perr := query(r, "wait")
	if perr != nil {
		h.writeError(w, r, perr)
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); q.Has("wait") {
		d, err := parseWait(s)
		if err != nil {
			h.writeError(w, r, badRequest("wait", "wait must be a duration such as 90s or 2m, or a number of seconds, from 0 up"))
			return
		}
		wait = min(d, h.cfg.MaxWait)
	}
	rec, err := h.svc.Get(r.Context(), id, wait, true)
	if err != nil {
		h.fail(w, r, journalRead(err))
		return
	}
	note(r, "", rec.Terminal) // for the access log: a payment line names its terminal
	writeJSON(w, http.StatusOK, marshal(rec.Transaction))
}

// waitRE is the form of ?wait= that api/openapi.yaml documents: whole
// seconds, or a Go duration of unsigned decimal parts ("90s", "1m30s",
// "1.5s"); time.ParseDuration alone would also take signs and ".5s".
var waitRE = regexp.MustCompile(`^([0-9]+|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`)

// parseWait reads a wait: whole seconds or a duration such as 1m30s.
func parseWait(s string) (time.Duration, error) {
	if !waitRE.MatchString(s) {
		return 0, errors.New("bad wait")
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		const most = uint64(math.MaxInt64 / int64(time.Second))
		return time.Duration(min(n, most)) * time.Second, nil // capped by MaxWait later
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("bad wait")
	}
	return d, nil
}

// journalRead classifies an error of Get or List: coded and context errors
// stay, any other is the journal failing to read.
func journalRead(err error) error {
	var pe *payment.Error
	if errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w (%w)", &payment.Error{Code: payment.CodeJournalUnavailable, Message: msgJournal}, err)
}

// transactionList is the body of GET /v1/transactions.
type transactionList struct {
	Transactions []payment.Transaction `json:"transactions"`
	NextCursor   string                `json:"next_cursor,omitempty"`
}

// listTransactions serves GET /v1/transactions: the journal, newest first,
// filtered and paginated. It does not claim anything.
func (h *handler) listTransactions(w http.ResponseWriter, r *http.Request) {
	q, perr := query(r, "status", "operation", "terminal", "from", "to", "cursor", "limit", "client_transaction_id")
	if perr != nil {
		h.writeError(w, r, perr)
		return
	}
	var f payment.Filter
	if s := q.Get("status"); q.Has("status") {
		if f.Status = payment.Status(s); !f.Status.Valid() {
			h.writeError(w, r, invalid("status", fmt.Sprintf("unknown status %q", clip(s, 40))))
			return
		}
	}
	if s := q.Get("operation"); q.Has("operation") {
		if f.Operation = payment.Operation(s); !f.Operation.Valid() {
			h.writeError(w, r, invalid("operation", fmt.Sprintf("unknown operation %q", clip(s, 40))))
			return
		}
	}
	f.Terminal = q.Get("terminal")
	note(r, "", f.Terminal)
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if !q.Has(p.name) {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, q.Get(p.name))
		if err != nil {
			h.writeError(w, r, badRequest(p.name, p.name+" must be an RFC 3339 date-time such as 2026-03-10T10:00:00-05:00"))
			return
		}
		*p.dst = t
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		h.writeError(w, r, invalid("to", "to must be after from"))
		return
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		switch {
		case err != nil:
			h.writeError(w, r, badRequest("limit", "limit must be an integer"))
			return
		case n < 1 || n > 500:
			h.writeError(w, r, invalid("limit", "limit must be between 1 and 500"))
			return
		}
		f.Limit = n
	}
	f.Cursor = q.Get("cursor")

	out := transactionList{Transactions: []payment.Transaction{}}
	if q.Has("client_transaction_id") {
		// An exact lookup that, unlike GET /v1/transactions/{id}, claims
		// nothing; the other filters still apply.
		id := canonicalID(q.Get("client_transaction_id"))
		note(r, id, "")
		rec, err := h.svc.Get(r.Context(), id, 0, false)
		var pe *payment.Error
		switch {
		case errors.As(err, &pe) && pe.Code == payment.CodeNotFound:
		case err != nil:
			h.fail(w, r, journalRead(err))
			return
		case matches(rec, f):
			note(r, "", rec.Terminal)
			out.Transactions = append(out.Transactions, rec.Transaction)
		}
		writeJSON(w, http.StatusOK, marshal(out))
		return
	}
	recs, next, err := h.svc.List(r.Context(), f)
	if err != nil {
		h.fail(w, r, journalRead(err))
		return
	}
	for _, rec := range recs {
		out.Transactions = append(out.Transactions, rec.Transaction)
	}
	out.NextCursor = next
	writeJSON(w, http.StatusOK, marshal(out))
}

// matches applies a Filter to one record (From ≤ created_at < To).
func matches(r *payment.Record, f payment.Filter) bool {
	return (f.Status == "" || r.Status == f.Status) &&
		(f.Operation == "" || r.Operation == f.Operation) &&
		(f.Terminal == "" || r.Terminal == f.Terminal) &&
		(f.From.IsZero() || !r.CreatedAt.Before(f.From)) &&
		(f.To.IsZero() || r.CreatedAt.Before(f.To))
}
