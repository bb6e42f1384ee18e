package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/journal"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

const journalUsage = `usage: posbridge journal <command> [flags]

Inspects the journal, posbridge's durable record of every payment.

Commands:
  ls        list transactions, newest first (filters, table or --json)
  show ID   one transaction in full: fields, event history, recovery state
  export    every transaction, oldest first, as NDJSON or CSV
  check     verify the journal file (bbolt pages, records, indexes)
  resolve ID --status S --note TEXT
            record a person's decision on a payment that needs attention
            (through the running daemon)

Where the records come from (always said on stderr as "source: ..."):
  - the journal file, data_dir/journal.db of the configuration (or --data-dir,
    or --file), opened read-only, when no daemon holds it;
  - the running daemon's REST API (listen and api.token_* of the
    configuration, or --url) when the daemon holds the file, or with --api.
Reading through the API claims nothing: show uses
GET /v1/transactions?client_transaction_id=ID, not GET /v1/transactions/ID.
check needs the file itself and refuses while the daemon runs.

Exit codes: 0 success; 1 failure (not found, source unavailable, problems
found by check); 2 bad command line.

Run 'posbridge journal <command> --help' for a command's flags.
`

const journalLsUsage = `usage: posbridge journal ls [flags]

Lists transactions, newest first (by created_at), as a table: TIME (local
time), ID (client_transaction_id), TERMINAL, OPERATION, STATUS, AMOUNT
(total and currency), ROUTE and REFERENCE (transaction_reference); or, with
--json, one JSON object {"transactions": [...]} in the API's transaction shape.

--since and --until take an RFC 3339 time (2026-03-10T10:00:00-05:00), a
local date or date and time (2026-03-10, 2026-03-10T10:00), or a duration
back from now (90m, 24h, 168h). --since is inclusive, --until exclusive.

Exit codes: 0 listed (even none), 1 the source failed, 2 bad flags.

Flags:
`

const journalShowUsage = `usage: posbridge journal show [flags] ID

Shows one transaction by client_transaction_id: every field, the event
history (time, status, route, code, detail), and, read from the file, the
recovery state (attempts, what was found, why it needs attention). Through
the running daemon's API the recovery state is not available; the reason a
transaction needs attention is also the detail of its last event.

Exit codes: 0 shown, 1 not found or the source failed, 2 bad command line.

Flags:
`

const journalExportUsage = `usage: posbridge journal export [flags]

Writes every transaction, oldest first (by created_at), to stdout or --output.

--format ndjson (default): one JSON object per line, the API's transaction
shape (api/openapi.yaml Transaction), plus "recovery" when read from the file
and the record has recovery state.

--format csv: a header line, then one line per transaction with these
columns, always in this order:
  ` + csvColumnList + `
Times are RFC 3339; amounts are decimals with the currency's places
(amount is the total; extra_taxes the sum of the extra taxes; the *_amount
columns are the balances of an original, empty when none); events is the
number of events; last_event_detail their last detail; recovery_reason is
why a transaction needs attention (file source only). A cell that would
start with = + - @ is prefixed with ' so spreadsheets do not run it.

--output writes a new file (mode 0600) atomically: a temporary file in the
same directory renamed over the name when complete.

Exit codes: 0 exported, 1 the source or the output failed, 2 bad flags.

Flags:
`

const journalCheckUsage = `usage: posbridge journal check [flags]

Verifies the journal file: bbolt's own page check, the schema, that every
record decodes, the record count, and that every index agrees with the
records. Prints each problem found. It needs the file, so it refuses while
the daemon holds it: stop the daemon first (systemctl stop posbridge); it
then prints what the daemon's own journal check (/readyz) says.

Exit codes: 0 no problem, 1 problems found (or the file cannot be opened or
is in use), 2 bad command line.

Flags:
`

// journalFileName is the journal's name inside data_dir (daemon.go opens
// the same).
const journalFileName = "journal.db"

// runJournal implements "posbridge journal".
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, journalUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, journalUsage)
		return exitOK
	case "ls":
		return journalLs(ctx, rest, stdout, stderr, time.Now)
	case "show":
		return journalShow(ctx, rest, stdout, stderr)
	case "export":
		return journalExport(ctx, rest, stdout, stderr)
	case "check":
		return journalCheck(ctx, rest, stdout, stderr)
	case "resolve":
		return journalResolve(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "posbridge journal: unknown command %q\n\n%s", sub, journalUsage)
	return exitUsage
}

// journalFlags are the flags every journal command shares: where the
// configuration, the file and the daemon are.
type journalFlags struct {
	name    string // "posbridge journal ls"
	usage   string
	fs      *pflag.FlagSet
	load    func() (*config.Config, string, error)
	file    *string
	useAPI  *bool
	url     *string
	timeout *time.Duration
}

func newJournalFlags(sub, usage string, withAPI bool) *journalFlags {
	flags := pflag.NewFlagSet("posbridge journal "+sub, pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	jf := &journalFlags{name: "posbridge journal " + sub, usage: usage, fs: flags}
	jf.load = configFlags(flags)
	jf.file = flags.String("file", "", "journal file to read (default data_dir/"+journalFileName+")")
	jf.timeout = flags.Duration("timeout", 30*time.Second, "give up on the daemon's API after this long")
	if withAPI {
		jf.useAPI = flags.Bool("api", false, "ask the running daemon's API even when the file could be read")
		jf.url = flags.String("url", "", "the daemon's API base URL (default http://<listen> from the configuration); implies --api")
	} else {
		jf.useAPI, jf.url = new(bool), new(string)
	}
	return jf
}

// parse parses args. It returns -1 to go on, or the exit code.
func (jf *journalFlags) parse(args []string, stdout, stderr io.Writer) int {
	if err := jf.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, jf.usage+jf.fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n\n%s%s", jf.name, err, jf.usage, jf.fs.FlagUsages())
		return exitUsage
	}
	if *jf.timeout <= 0 {
		fmt.Fprintf(stderr, "%s: --timeout must be positive\n", jf.name)
		return exitUsage
	}
	if *jf.file != "" && (*jf.useAPI || *jf.url != "") {
		fmt.Fprintf(stderr, "%s: --file and --api/--url exclude each other\n", jf.name)
		return exitUsage
	}
	return -1
}

// configAsked reports whether the command line or the machine names a
// configuration (then it must load).
func (jf *journalFlags) configAsked() bool {
	return jf.fs.Changed("config") || jf.fs.Changed("dev") || fileExists(defaultConfigPath)
}

// journalPath returns the journal file to read: --file; or
// --data-dir/journal.db when no configuration is asked for or installed;
// or data_dir/journal.db of the loaded configuration (which --data-dir
// overrides). cfg is the configuration when one was loaded.
func (jf *journalFlags) journalPath() (path string, cfg *config.Config, err error) {
	if *jf.file != "" {
		return *jf.file, nil, nil
	}
	if dd, _ := jf.fs.GetString("data-dir"); dd != "" && !jf.configAsked() {
		return filepath.Join(dd, journalFileName), nil, nil
	}
	cfg, _, err = jf.load()
	if err != nil {
		return "", nil, fmt.Errorf("%w\n(use --file PATH or --data-dir DIR to read a journal file without the configuration)", err)
	}
	return filepath.Join(cfg.DataDir, journalFileName), cfg, nil
}

// apiClient returns a client for the daemon's API, from --url and the
// configuration (cfg, or loaded now when one is asked for or installed).
// Without either it asks the default listen address without a token.
func (jf *journalFlags) apiClient(cfg *config.Config) (*daemonClient, error) {
	if cfg == nil && jf.configAsked() {
		c, _, err := jf.load()
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	return newDaemonClient(cfg, *jf.url, *jf.timeout)
}

// source is where journal records are read from.
type source interface {
	// describe says which source this is, for the "source:" line.
	describe() string
	// list returns up to limit records (0: all) matching f, newest first.
	list(ctx context.Context, f payment.Filter, limit int) ([]*payment.Record, error)
	// get returns one record, or an error wrapping payment.ErrNotFound.
	get(ctx context.Context, id string) (*payment.Record, error)
	// each calls fn with every record, oldest first.
	each(ctx context.Context, fn func(*payment.Record) error) error
	close() error
}

// openSource picks the source for ls, show and export and says which on
// stderr: the file when it can be opened, the daemon when --api/--url ask
// for it or the file is locked by a running daemon.
func (jf *journalFlags) openSource(stderr io.Writer) (source, error) {
	if *jf.useAPI || *jf.url != "" {
		c, err := jf.apiClient(nil)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "source: running daemon at %s (--api)\n", c.base.Redacted())
		return &apiSource{c: c}, nil
	}
	path, cfg, err := jf.journalPath()
	if err != nil {
		return nil, err
	}
	j, err := journal.OpenReadOnly(path)
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "source: journal file %s (daemon stopped)\n", path)
		return &fileSource{j: j}, nil
	case errors.Is(err, journal.ErrInUse):
		c, cerr := jf.apiClient(cfg)
		if cerr != nil {
			return nil, fmt.Errorf("journal file %s is locked by a running daemon, and its API cannot be used: %w", path, cerr)
		}
		fmt.Fprintf(stderr, "source: running daemon at %s (journal file %s is locked by it)\n", c.base.Redacted(), path)
		return &apiSource{c: c}, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no journal file at %s (has the daemon run with this data_dir?)", path)
	}
	return nil, err
}

// fileSource reads the journal file (read-only, shared lock).
type fileSource struct{ j *journal.Journal }

func (s *fileSource) describe() string { return "journal file " + s.j.Path() }
func (s *fileSource) close() error     { return s.j.Close() }

func (s *fileSource) get(ctx context.Context, id string) (*payment.Record, error) {
	return s.j.Get(ctx, id)
}

func (s *fileSource) each(ctx context.Context, fn func(*payment.Record) error) error {
	return s.j.Each(ctx, fn)
}

func (s *fileSource) list(ctx context.Context, f payment.Filter, limit int) ([]*payment.Record, error) {
	var out []*payment.Record
	for {
		f.Limit = journal.MaxListLimit
		if limit > 0 {
			f.Limit = min(limit-len(out), journal.MaxListLimit)
		}
		page, next, err := s.j.List(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		f.Cursor = next
	}
}

// apiSource reads through the running daemon's API.
type apiSource struct{ c *daemonClient }

func (s *apiSource) describe() string { return "running daemon at " + s.c.base.Redacted() }
func (s *apiSource) close() error     { return nil }

func (s *apiSource) get(ctx context.Context, id string) (*payment.Record, error) {
	page, err := s.c.listTransactions(ctx, payment.Filter{}, id)
	if err != nil {
		return nil, err
	}
	if len(page.Transactions) == 0 {
		return nil, fmt.Errorf("transaction %s: %w", id, payment.ErrNotFound)
	}
	return &payment.Record{Transaction: page.Transactions[0]}, nil
}

func (s *apiSource) list(ctx context.Context, f payment.Filter, limit int) ([]*payment.Record, error) {
	var out []*payment.Record
	for {
		f.Limit = journal.MaxListLimit
		if limit > 0 {
			f.Limit = min(limit-len(out), journal.MaxListLimit)
		}
		page, err := s.c.listTransactions(ctx, f, "")
		if err != nil {
			return nil, err
		}
		for _, t := range page.Transactions {
			out = append(out, &payment.Record{Transaction: t})
		}
		if page.NextCursor == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
}

// each pages through the whole list (newest first, the only order the API
// offers) and hands the records out oldest first.
func (s *apiSource) each(ctx context.Context, fn func(*payment.Record) error) error {
	all, err := s.list(ctx, payment.Filter{}, 0)
	if err != nil {
		return err
	}
	sortOldestFirst(all)
	for _, r := range all {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// sortOldestFirst orders records as journal.Each does: created_at, then id.
func sortOldestFirst(rs []*payment.Record) {
	sort.SliceStable(rs, func(a, b int) bool {
		if !rs[a].CreatedAt.Equal(rs[b].CreatedAt) {
			return rs[a].CreatedAt.Before(rs[b].CreatedAt)
		}
		return rs[a].ID < rs[b].ID
	})
}

// ---- ls ---------------------------------------------------------------------

func journalLs(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	jf := newJournalFlags("ls", journalLsUsage, true)
	status := jf.fs.String("status", "", "only this status ("+joinStatuses()+")")
	op := jf.fs.String("operation", "", "only this operation ("+joinOperations()+")")
	term := jf.fs.String("terminal", "", "only this terminal (its name)")
	since := jf.fs.String("since", "", "only transactions created at or after this time")
	until := jf.fs.String("until", "", "only transactions created before this time")
	limit := jf.fs.Int("limit", 50, "at most this many (0: all)")
	asJSON := jf.fs.Bool("json", false, `print {"transactions": [...]} instead of a table`)
	if code := jf.parse(args, stdout, stderr); code >= 0 {
		return code
	}
	if jf.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", jf.name, jf.fs.Arg(0))
		return exitUsage
	}
	var f payment.Filter
	if *status != "" {
		if f.Status = payment.Status(*status); !f.Status.Valid() {
			fmt.Fprintf(stderr, "%s: --status %q is not one of %s\n", jf.name, *status, joinStatuses())
			return exitUsage
		}
	}
	if *op != "" {
		if f.Operation = payment.Operation(*op); !f.Operation.Valid() {
			fmt.Fprintf(stderr, "%s: --operation %q is not one of %s\n", jf.name, *op, joinOperations())
			return exitUsage
		}
	}
	f.Terminal = *term
	for _, p := range []struct {
		flag, val string
		dst       *time.Time
	}{{"since", *since, &f.From}, {"until", *until, &f.To}} {
		if p.val == "" {
			continue
		}
		t, err := parseWhen(p.val, now(), time.Local)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --%s: %v\n", jf.name, p.flag, err)
			return exitUsage
		}
		*p.dst = t
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		fmt.Fprintf(stderr, "%s: --until must be after --since\n", jf.name)
		return exitUsage
	}
	if *limit < 0 {
		fmt.Fprintf(stderr, "%s: --limit must not be negative\n", jf.name)
		return exitUsage
	}

	src, err := jf.openSource(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(ctx, *jf.timeout)
	defer cancel()
	recs, err := src.list(ctx, f, *limit)
	cerr := src.close()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	if cerr != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, cerr)
	}

	if *asJSON {
		out := struct {
			Transactions []payment.Transaction `json:"transactions"`
		}{Transactions: []payment.Transaction{}}
		for _, r := range recs {
			out.Transactions = append(out.Transactions, r.Transaction)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tID\tTERMINAL\tOPERATION\tSTATUS\tAMOUNT\tROUTE\tREFERENCE")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.CreatedAt.Local().Format(time.DateTime), r.ID,
			r.Terminal, r.Operation, r.Status, listAmount(r), dash(string(r.Route)), dash(r.Reference))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	if len(recs) == *limit && *limit > 0 {
		fmt.Fprintf(stderr, "(%d shown: the limit; --limit 0 lists all)\n", len(recs))
	}
	return exitOK
}

// parseWhen reads a --since/--until value: RFC 3339, a date or date and
// time in loc, or a duration back from now.
func parseWhen(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.DateOnly, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", time.DateTime} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-03-10T10:00:00-05:00, 2026-03-10, 2026-03-10T10:00) or a duration back from now (24h)", s)
}

func joinStatuses() string {
	s := make([]string, len(payment.Statuses))
	for i, x := range payment.Statuses {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

func joinOperations() string {
	s := make([]string, len(payment.Operations))
	for i, x := range payment.Operations {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// places returns the currency's decimal places (2 for an unknown one).
func places(c money.Currency) int {
	if p, ok := c.Places(); ok {
		return p
	}
	return 2
}

// listAmount is ls's AMOUNT: the total with its currency, "-" for a void
// (which carries no amount: it voids the whole original).
func listAmount(r *payment.Record) string {
	if r.Operation == payment.OpVoid && r.Amount.Total().IsZero() {
		return "-"
	}
	return amountText(r.Amount, r.Currency)
}

// amountText is an amount's total with its currency: "12.50 PEN".
func amountText(a payment.Amount, c money.Currency) string {
	return strings.TrimSpace(a.Total().Fixed(places(c)) + " " + string(c))
}

// ---- show -------------------------------------------------------------------

// shownRecord is a record as show --json and export print it: the API's
// transaction object plus, from the file, whether the POS claimed it and
// the recovery state.
type shownRecord struct {
	payment.Transaction
	Claimed  *bool                  `json:"claimed,omitempty"`
	Recovery *payment.RecoveryState `json:"recovery,omitempty"`
}

func shown(r *payment.Record, fromFile bool) shownRecord {
	s := shownRecord{Transaction: r.Transaction, Recovery: r.Recovery}
	if fromFile {
		c := r.Claimed
		s.Claimed = &c
	}
	return s
}

func journalShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	jf := newJournalFlags("show", journalShowUsage, true)
	asJSON := jf.fs.Bool("json", false, "print the transaction as JSON")
	if code := jf.parse(args, stdout, stderr); code >= 0 {
		return code
	}
	switch jf.fs.NArg() {
	case 1:
	case 0:
		fmt.Fprintf(stderr, "%s: the client_transaction_id is missing\n\n%s%s", jf.name, jf.usage, jf.fs.FlagUsages())
		return exitUsage
	default:
		fmt.Fprintf(stderr, "%s: unexpected argument %q (one ID at a time)\n", jf.name, jf.fs.Arg(1))
		return exitUsage
	}
	id := jf.fs.Arg(0)
	src, err := jf.openSource(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(ctx, *jf.timeout)
	defer cancel()
	r, err := src.get(ctx, canonicalUUID(id))
	_ = src.close()
	switch {
	case errors.Is(err, payment.ErrNotFound):
		fmt.Fprintf(stderr, "%s: no transaction %q in the journal\n", jf.name, id)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	_, fromFile := src.(*fileSource)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(shown(r, fromFile)); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
			return exitFailure
		}
		return exitOK
	}
	if err := writeRecord(stdout, r, fromFile); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	return exitOK
}

// canonicalUUID lower-cases a UUID, as the journal stores ids; anything
// else is returned as it is.
func canonicalUUID(s string) string {
	if len(s) == 36 && strings.Count(s, "-") == 4 {
		return strings.ToLower(s)
	}
	return s
}

// writeRecord prints a record for people.
func writeRecord(w io.Writer, r *payment.Record, fromFile bool) error {
	p := places(r.Currency)
	dec := func(d *money.Decimal) string {
		if d == nil {
			return ""
		}
		return d.Fixed(p) + " " + string(r.Currency)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s\t%s\n", name, value)
		}
	}
	field("client_transaction_id", r.ID)
	field("operation", string(r.Operation))
	field("original_id", r.OriginalID)
	field("terminal", r.Terminal)
	field("route", string(r.Route))
	field("status", string(r.Status))
	if listAmount(r) != "-" {
		field("amount", amountText(r.Amount, r.Currency)+" ("+amountParts(r.Amount, p)+")")
	}
	field("authorized_amount", dec(r.AuthorizedAmount))
	field("captured_amount", dec(r.CapturedAmount))
	field("tip_amount", dec(r.TipAmount))
	field("refunded_amount", dec(r.RefundedAmount))
	field("transaction_reference", r.Reference)
	field("ticket_number", r.TicketNumber)
	field("authorization_code", r.AuthorizationCode)
	if c := r.Card; c != nil {
		field("card", strings.Join(nonEmpty(c.Brand, c.Type, c.Masked), " "))
	}
	field("created_at", r.CreatedAt.Format(time.RFC3339Nano))
	field("updated_at", r.UpdatedAt.Format(time.RFC3339Nano))
	if len(r.Metadata) > 0 {
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + strconv.Quote(r.Metadata[k])
		}
		field("metadata", strings.Join(keys, " "))
	}
	if len(r.TerminalResponse) > 0 {
		field("terminal_response", fmt.Sprintf("%d bytes (--json shows it)", len(r.TerminalResponse)))
	}
	if fromFile {
		field("claimed", yesNo(r.Claimed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nevents:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tSTATUS\tROUTE\tCODE\tDETAIL")
	for _, e := range r.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Status, dash(string(e.Route)), dash(e.Code), e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if st := r.Recovery; st != nil {
		fmt.Fprintln(w, "\nrecovery:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		rf := func(name, value string) {
			if value != "" {
				fmt.Fprintf(tw, "  %s\t%s\n", name, value)
			}
		}
		rf("since", st.Since.Format(time.RFC3339))
		rf("attempts", strconv.Itoa(st.Attempts))
		rf("aborted", yesNo(st.Aborted))
		if f := st.Found; f != nil {
			rf("found", strings.Join(nonEmpty(string(f.Status), "reference "+f.Reference, f.Code), ", ")+
				" at "+st.FoundAt.Format(time.RFC3339))
		}
		if st.ReversalSent != "" {
			rf("reversal_sent", st.ReversalSent+" at "+st.ReversalAt.Format(time.RFC3339))
		}
		if st.UseRefund {
			rf("use_refund", "yes (the void was refused)")
		}
		rf("reason", st.Reason)
		if err := tw.Flush(); err != nil {
			return err
		}
	} else if !fromFile && (r.Status == payment.StatusUnknown || r.Status == payment.StatusNeedsAttention) {
		fmt.Fprintln(w, "\nrecovery: state not available through the API (stop the daemon to read the file; /readyz lists the reason)")
	}
	if r.Status == payment.StatusNeedsAttention {
		fmt.Fprintln(w, "\nneeds_attention: recovery could not settle this payment and a person must decide.")
		fmt.Fprintln(w, "Confirm with the customer and the terminal's history whether money was taken")
		fmt.Fprintln(w, "(POST /v1/terminals/"+r.Terminal+"/search with this client_transaction_id),")
		fmt.Fprintln(w, "then return it on the terminal or in Kushki's console, or keep it.")
	}
	return nil
}

func amountParts(a payment.Amount, p int) string {
	parts := []string{"iva " + a.IVA.Fixed(p), "subtotal_iva " + a.SubtotalIVA.Fixed(p), "subtotal_iva0 " + a.SubtotalIVA0.Fixed(p)}
	if a.Tip != nil {
		parts = append(parts, "tip "+a.Tip.Fixed(p))
	}
	if x := extraTaxes(a); x != nil {
		parts = append(parts, "extra_taxes "+x.Fixed(p))
	}
	return strings.Join(parts, ", ")
}

// extraTaxes returns the sum of the extra taxes, nil when there are none.
func extraTaxes(a payment.Amount) *money.Decimal {
	x := a.ExtraTaxes
	if x == nil {
		return nil
	}
	var sum money.Decimal
	for _, d := range []*money.Decimal{x.AirportTax, x.IAC, x.ICE, x.TravelAgency} {
		if d != nil {
			sum = sum.Add(*d)
		}
	}
	return &sum
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && s != "reference " {
			out = append(out, s)
		}
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ---- export -----------------------------------------------------------------

// csvColumns are export --format csv's columns, in order. Adding one at the
// end is compatible; never rename or reorder.
var csvColumns = []string{
	"created_at", "updated_at", "client_transaction_id", "operation", "original_id", "terminal", "route",
	"status", "currency", "amount", "iva", "subtotal_iva", "subtotal_iva0", "tip", "extra_taxes",
	"transaction_reference", "ticket_number", "authorization_code", "card_brand", "card_type", "card_masked",
	"authorized_amount", "captured_amount", "tip_amount", "refunded_amount",
	"events", "last_event_at", "last_event_detail", "recovery_reason",
}

// csvColumnList is csvColumns for the usage text (kept in step by a test).
const csvColumnList = "created_at, updated_at, client_transaction_id, operation, original_id,\n  terminal, route, status, currency, amount, iva, subtotal_iva,\n  subtotal_iva0, tip, extra_taxes, transaction_reference, ticket_number,\n  authorization_code, card_brand, card_type, card_masked,\n  authorized_amount, captured_amount, tip_amount, refunded_amount, events,\n  last_event_at, last_event_detail, recovery_reason"

// csvRow is one record as export --format csv writes it.
func csvRow(r *payment.Record) []string {
	p := places(r.Currency)
	dec := func(d *money.Decimal) string {
		if d == nil {
			return ""
		}
		return d.Fixed(p)
	}
	var brand, typ, masked string
	if c := r.Card; c != nil {
		brand, typ, masked = c.Brand, c.Type, c.Masked
	}
	var lastAt, lastDetail, reason string
	if n := len(r.Events); n > 0 {
		lastAt, lastDetail = r.Events[n-1].At.Format(time.RFC3339Nano), r.Events[n-1].Detail
	}
	if r.Recovery != nil {
		reason = r.Recovery.Reason
	}
	total := r.Amount.Total()
	row := []string{
		r.CreatedAt.Format(time.RFC3339Nano), r.UpdatedAt.Format(time.RFC3339Nano), r.ID, string(r.Operation),
		r.OriginalID, r.Terminal, string(r.Route), string(r.Status), string(r.Currency),
		total.Fixed(p), r.Amount.IVA.Fixed(p), r.Amount.SubtotalIVA.Fixed(p), r.Amount.SubtotalIVA0.Fixed(p),
		dec(r.Amount.Tip), dec(extraTaxes(r.Amount)),
		r.Reference, r.TicketNumber, r.AuthorizationCode, brand, typ, masked,
		dec(r.AuthorizedAmount), dec(r.CapturedAmount), dec(r.TipAmount), dec(r.RefundedAmount),
		strconv.Itoa(len(r.Events)), lastAt, lastDetail, reason,
	}
	for i, c := range row {
		row[i] = csvSafe(c)
	}
	return row
}

// csvSafe keeps a spreadsheet from reading a cell as a formula (OWASP "CSV
// injection"): a cell starting with = + - @ or a tab or CR gets a leading
// apostrophe. No amount or time posbridge writes starts that way.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func journalExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	jf := newJournalFlags("export", journalExportUsage, true)
	format := jf.fs.String("format", "ndjson", "ndjson or csv")
	output := jf.fs.String("output", "", "write to this file instead of stdout")
	if code := jf.parse(args, stdout, stderr); code >= 0 {
		return code
	}
	if jf.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", jf.name, jf.fs.Arg(0))
		return exitUsage
	}
	if *format != "ndjson" && *format != "csv" {
		fmt.Fprintf(stderr, "%s: --format %q is not ndjson or csv\n", jf.name, *format)
		return exitUsage
	}
	src, err := jf.openSource(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	_, fromFile := src.(*fileSource)

	w := stdout
	var out *atomicFile
	if *output != "" {
		if out, err = createAtomic(*output); err != nil {
			_ = src.close()
			fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
			return exitFailure
		}
		defer out.abort()
		w = out
	}

	ctx, cancel := context.WithTimeout(ctx, *jf.timeout)
	defer cancel()
	n := 0
	var write func(*payment.Record) error
	var cw *csv.Writer
	switch *format {
	case "csv":
		cw = csv.NewWriter(w)
		if err := cw.Write(csvColumns); err != nil {
			_ = src.close()
			fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
			return exitFailure
		}
		write = func(r *payment.Record) error { n++; return cw.Write(csvRow(r)) }
	default:
		enc := json.NewEncoder(w)
		write = func(r *payment.Record) error { n++; return enc.Encode(shown(r, fromFile)) }
	}
	err = src.each(ctx, write)
	if cerr := src.close(); err == nil {
		err = cerr
	}
	if err == nil && cw != nil {
		cw.Flush()
		err = cw.Error()
	}
	if err == nil && out != nil {
		err = out.commit()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	where := "stdout"
	if out != nil {
		where = *output
	}
	fmt.Fprintf(stderr, "exported %d transaction(s) to %s\n", n, where)
	return exitOK
}

// atomicFile is a new file written under a temporary name and renamed into
// place by commit, so a failed export never leaves a partial file.
type atomicFile struct {
	*os.File
	name string
	done bool
}

func createAtomic(name string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return &atomicFile{File: f, name: name}, nil // CreateTemp makes it 0600
}

func (a *atomicFile) commit() error {
	if err := a.Sync(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.Rename(a.Name(), a.name); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	a.done = true
	return nil
}

// abort removes the temporary file unless commit succeeded.
func (a *atomicFile) abort() {
	if !a.done {
		_ = a.Close()
		_ = os.Remove(a.Name())
	}
}

// ---- check ------------------------------------------------------------------

func journalCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	jf := newJournalFlags("check", journalCheckUsage, false)
	if code := jf.parse(args, stdout, stderr); code >= 0 {
		return code
	}
	if jf.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", jf.name, jf.fs.Arg(0))
		return exitUsage
	}
	path, cfg, err := jf.journalPath()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	j, err := journal.OpenReadOnly(path)
	switch {
	case errors.Is(err, journal.ErrInUse):
		fmt.Fprintf(stderr, "%s: journal file %s is in use by the running daemon; check needs the file itself.\n", jf.name, path)
		fmt.Fprintln(stderr, "Stop the daemon (systemctl stop posbridge), run the check, then start it again.")
		daemonJournalCheck(ctx, jf, cfg, stderr)
		return exitFailure
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "%s: no journal file at %s\n", jf.name, path)
		return exitFailure
	case err != nil:
		// Corrupt or of another schema: Open refuses it too, which is a
		// problem found.
		fmt.Fprintf(stdout, "journal %s: cannot be opened: %v\n", path, err)
		return exitFailure
	}
	defer j.Close()
	fmt.Fprintf(stderr, "source: journal file %s (daemon stopped)\n", path)

	err = j.Check(ctx)
	var ce *journal.CheckError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(stdout, "journal %s: %d problem(s):\n", path, ce.Total)
		for _, p := range ce.Problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		if ce.Total > len(ce.Problems) {
			fmt.Fprintf(stdout, "  … and %d more\n", ce.Total-len(ce.Problems))
		}
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	st, err := j.Stats(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "journal %s: ok (%d records, %d not final, %d bytes)\n", path, st.Records, st.InFlight, st.FileSize)
	return exitOK
}

// daemonJournalCheck prints what the running daemon's /readyz says of its
// journal, or why it could not be asked.
func daemonJournalCheck(ctx context.Context, jf *journalFlags, cfg *config.Config, stderr io.Writer) {
	c, err := jf.apiClient(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "The daemon's readiness could not be asked: %v\n", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, *jf.timeout)
	defer cancel()
	var ready struct {
		Checks struct {
			Journal struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			} `json:"journal"`
		} `json:"checks"`
	}
	if err := c.getJSON(ctx, "/readyz", nil, &ready, true); err != nil {
		fmt.Fprintf(stderr, "The daemon's readiness could not be asked: %v\n", err)
		return
	}
	if ready.Checks.Journal.OK {
		fmt.Fprintf(stderr, "Meanwhile the daemon at %s reports its journal ok (/readyz: it takes writes).\n", c.base.Redacted())
		return
	}
	fmt.Fprintf(stderr, "Meanwhile the daemon at %s reports its journal NOT ok (/readyz): %s\n", c.base.Redacted(), ready.Checks.Journal.Error)
}

// ---- the daemon's API -------------------------------------------------------

// daemonAnswerLimit caps how much of one API answer is read (a page of 500
// transactions with their terminal responses fits many times over).
const daemonAnswerLimit = 64 << 20

// daemonClient reads from a running daemon's REST API, with the bearer
// token and a Host header the daemon accepts (as health does). It is safe
// for concurrent use.
type daemonClient struct {
	base   *url.URL // http://127.0.0.1:8740
	host   string   // Host header
	token  string   // "" when none is configured
	client *http.Client
}

// newDaemonClient builds a client for rawURL, or for cfg's listen address
// when rawURL is empty (the default configuration's when cfg is nil). The
// token comes from cfg's api.token_file or api.token_env.
func newDaemonClient(cfg *config.Config, rawURL string, timeout time.Duration) (*daemonClient, error) {
	c := &daemonClient{client: &http.Client{
		Timeout: timeout,
		// No proxy from the environment: the token goes to the daemon only;
		// and a redirect could carry it elsewhere.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if rawURL == "" {
		listen := config.Default().Listen
		if cfg != nil {
			listen = cfg.Listen
		}
		u, err := readyURL(listen)
		if err != nil {
			return nil, err
		}
		rawURL = strings.TrimSuffix(u, "/readyz")
	}
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", rawURL)
	}
	c.base = u
	var allowed []string
	if cfg != nil {
		allowed = cfg.API.AllowedHosts
		if cfg.API.TokenFile != "" || cfg.API.TokenEnv != "" {
			if c.token, err = config.Secret("api token", cfg.API.TokenFile, cfg.API.TokenEnv); err != nil {
				return nil, err
			}
		}
	}
	c.host = hostHeader(u, allowed)
	return c, nil
}

// apiErrorBody is the API's one error shape.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// getJSON GETs path?q and decodes the JSON answer into out. An answer
// other than 200 is an error saying the daemon's code and message, unless
// anyStatus (for /readyz, whose 503 is an answer).
func (c *daemonClient) getJSON(ctx context.Context, path string, q url.Values, out any, anyStatus bool) error {
	return c.call(ctx, http.MethodGet, path, q, nil, out, anyStatus)
}

// call sends one request to the daemon (body, when not nil, as JSON) and
// decodes the JSON answer into out; see getJSON for anyStatus.
func (c *daemonClient) call(ctx context.Context, method, path string, q url.Values, body, out any, anyStatus bool) error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Host = c.host
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "posbridge-cli/"+version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("daemon not reachable: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, daemonAnswerLimit))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK && !anyStatus {
		var e apiErrorBody
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			hint := ""
			if resp.StatusCode == http.StatusUnauthorized {
				hint = " (check api.token_file / api.token_env of the configuration)"
			}
			return fmt.Errorf("the daemon answered %d %s: %s%s", resp.StatusCode, e.Error.Code, e.Error.Message, hint)
		}
		return fmt.Errorf("the daemon answered HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the daemon's answer is not the expected JSON: %w", err)
	}
	return nil
}

// transactionPage is the body of GET /v1/transactions.
type transactionPage struct {
	Transactions []payment.Transaction `json:"transactions"`
	NextCursor   string                `json:"next_cursor"`
}

// listTransactions asks GET /v1/transactions with f's filters, and with
// client_transaction_id when id is set (an exact lookup that, unlike GET
// /v1/transactions/{id}, does not claim the transaction).
func (c *daemonClient) listTransactions(ctx context.Context, f payment.Filter, id string) (transactionPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", string(f.Status))
	set("operation", string(f.Operation))
	set("terminal", f.Terminal)
	if !f.From.IsZero() {
		q.Set("from", f.From.Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.Format(time.RFC3339Nano))
	}
	set("cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	set("client_transaction_id", id)
	var page transactionPage
	err := c.getJSON(ctx, "/v1/transactions", q, &page, false)
	return page, err
}
