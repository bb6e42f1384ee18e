package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
)

// TestJournalCommandsAgainstTheRealLifecycle writes a journal through the
// real daemon wiring, then reads it with every journal command twice: while
// the daemon runs (the file is locked: the commands go through its API)
// and after it stopped (the file itself). Both must say which source they
// used and agree.
func TestJournalCommandsAgainstTheRealLifecycle(t *testing.T) {
	s := startOps(t, opsOptions{})
	run := s.scenario()
	cfg := []string{"--config", s.cfgPath}
	path := filepath.Join(s.dir, "data", journalFileName)

	wantStatus := map[string]payment.Status{
		run.charge: payment.StatusRefunded, run.tip: payment.StatusApproved, run.auth: payment.StatusCaptured,
		run.capture: payment.StatusApproved, run.declined: payment.StatusDeclined, run.voided: payment.StatusVoided,
		run.void: payment.StatusApproved, run.refund: payment.StatusApproved, run.leak: payment.StatusApproved,
		run.claimed: payment.StatusApproved, run.attention: payment.StatusNeedsAttention,
	}

	// ---- daemon running: the API source.
	apiSource := "source: running daemon at " + s.base + " (journal file " + path + " is locked by it)"
	code, apiTable, stderr := opsRunCLI(t, append([]string{"journal", "ls", "--limit", "0"}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, apiSource) {
		t.Fatalf("ls (daemon running): got exit %d, stderr %q; want 0 and %q", code, stderr, apiSource)
	}
	opsCheckTable(t, apiTable, wantStatus)

	code, apiJSON, stderr := opsRunCLI(t, append([]string{"journal", "ls", "--json", "--limit", "0"}, cfg...)...)
	if code != exitOK {
		t.Fatalf("ls --json (daemon running): got exit %d, stderr %q", code, stderr)
	}

	code, out, stderr := opsRunCLI(t, append([]string{"journal", "show", run.attention}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, apiSource) {
		t.Fatalf("show (daemon running): got exit %d, stderr %q; want 0 and the API source", code, stderr)
	}
	for _, want := range []string{"status                 needs_attention", "nobody claimed it",
		"recovery: state not available through the API", "needs_attention: recovery could not settle"} {
		if !strings.Contains(out, want) {
			t.Errorf("show (daemon running): output lacks %q:\n%s", want, out)
		}
	}

	code, apiExport, stderr := opsRunCLI(t, append([]string{"journal", "export"}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, apiSource) {
		t.Fatalf("export (daemon running): got exit %d, stderr %q", code, stderr)
	}

	code, out, stderr = opsRunCLI(t, append([]string{"journal", "check"}, cfg...)...)
	if code != exitFailure || !strings.Contains(stderr, "in use by the running daemon") ||
		!strings.Contains(stderr, "Stop the daemon") || !strings.Contains(stderr, "reports its journal ok") {
		t.Errorf("check (daemon running): got exit %d, stdout %q, stderr %q; want 1, the advice to stop it and the daemon's own check", code, out, stderr)
	}

	// The API's show claimed nothing: read from the file below, the record
	// is still unclaimed (GET /v1/transactions/{id} would have claimed it:
	// payment.Service.claim sets claimed on any record that is not final,
	// needs_attention included).
	s.stop()

	// ---- daemon stopped: the file.
	fileSource := "source: journal file " + path + " (daemon stopped)"
	code, fileTable, stderr := opsRunCLI(t, append([]string{"journal", "ls", "--limit", "0"}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, fileSource) {
		t.Fatalf("ls (daemon stopped): got exit %d, stderr %q; want 0 and %q", code, stderr, fileSource)
	}
	if fileTable != apiTable {
		t.Errorf("ls: the file and the API disagree:\nfile:\n%s\nAPI:\n%s", fileTable, apiTable)
	}
	code, fileJSON, _ := opsRunCLI(t, append([]string{"journal", "ls", "--json", "--limit", "0"}, cfg...)...)
	if code != exitOK || fileJSON != apiJSON {
		t.Errorf("ls --json: the file (exit %d) and the API disagree:\nfile:\n%s\nAPI:\n%s", code, fileJSON, apiJSON)
	}

	code, out, _ = opsRunCLI(t, append([]string{"journal", "show", run.attention}, cfg...)...)
	if code != exitOK {
		t.Fatalf("show (daemon stopped): got exit %d", code)
	}
	for _, want := range []string{"claimed                no", "\nrecovery:\n", "found", "reason", "policy report",
		"found approved on the terminal"} {
		if !strings.Contains(out, want) {
			t.Errorf("show (daemon stopped): output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = opsRunCLI(t, append([]string{"journal", "show", "--json", run.attention}, cfg...)...)
	var shownAttention shownRecord
	if code != exitOK || json.Unmarshal([]byte(out), &shownAttention) != nil {
		t.Fatalf("show --json: got exit %d, %q", code, out)
	}
	if shownAttention.Claimed == nil || *shownAttention.Claimed || shownAttention.Recovery == nil ||
		shownAttention.Recovery.Found == nil || shownAttention.Recovery.Reason == "" {
		t.Errorf("show --json: got claimed %v, recovery %+v; want unclaimed (the API's reads claim nothing) with a found approval and a reason",
			shownAttention.Claimed, shownAttention.Recovery)
	}

	// export NDJSON from the file: oldest first, every record, the same
	// transactions as through the API.
	code, fileExport, stderr := opsRunCLI(t, append([]string{"journal", "export"}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, fileSource) || !strings.Contains(stderr, "exported 11 transaction(s) to stdout") {
		t.Fatalf("export (daemon stopped): got exit %d, stderr %q", code, stderr)
	}
	fromFile, fromAPI := opsParseNDJSON(t, fileExport), opsParseNDJSON(t, apiExport)
	if len(fromFile) != len(wantStatus) {
		t.Fatalf("export: got %d lines, want %d", len(fromFile), len(wantStatus))
	}
	for i, r := range fromFile {
		if got, want := r.Status, wantStatus[r.ID]; got != want {
			t.Errorf("export: %s: got status %s, want %s", r.ID, got, want)
		}
		if i > 0 && r.CreatedAt.Before(fromFile[i-1].CreatedAt) {
			t.Errorf("export: line %d (%s) is older than line %d: want oldest first", i+1, r.CreatedAt, i)
		}
		if r.Claimed == nil {
			t.Errorf("export from the file: %s has no claimed field", r.ID)
		}
		a := fromAPI[i]
		if !reflect.DeepEqual(r.Transaction, a.Transaction) {
			t.Errorf("export line %d: file and API transactions differ:\nfile %+v\nAPI  %+v", i+1, r.Transaction, a.Transaction)
		}
		if a.Recovery != nil || a.Claimed != nil {
			t.Errorf("export through the API: line %d has file-only fields", i+1)
		}
	}

	// export CSV to a file; parse it back.
	csvPath := filepath.Join(s.dir, "export.csv")
	code, _, stderr = opsRunCLI(t, append([]string{"journal", "export", "--format", "csv", "--output", csvPath}, cfg...)...)
	if code != exitOK || !strings.Contains(stderr, "exported 11 transaction(s) to "+csvPath) {
		t.Fatalf("export csv: got exit %d, stderr %q", code, stderr)
	}
	if st, err := os.Stat(csvPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("export csv: got %v, %v; want a file of mode 0600", st, err)
	}
	rows := opsReadCSV(t, csvPath)
	if !reflect.DeepEqual(rows[0], csvColumns) {
		t.Fatalf("csv header: got %v, want %v", rows[0], csvColumns)
	}
	if len(rows) != len(fromFile)+1 {
		t.Fatalf("csv: got %d rows, want %d and a header", len(rows)-1, len(fromFile))
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	for i, row := range rows[1:] {
		r := fromFile[i]
		p := places(r.Currency)
		want := map[string]string{
			"client_transaction_id": r.ID, "status": string(r.Status), "operation": string(r.Operation),
			"terminal": r.Terminal, "currency": "PEN", "amount": r.Amount.Total().Fixed(p),
			"created_at": r.CreatedAt.Format(time.RFC3339Nano), "transaction_reference": r.Reference,
			"ticket_number": r.TicketNumber, "events": strconv.Itoa(len(r.Events)),
		}
		for c, w := range want {
			if got := row[col[c]]; got != w {
				t.Errorf("csv row %d column %s: got %q, want %q", i+1, c, got, w)
			}
		}
		if _, err := money.Parse(row[col["amount"]]); err != nil {
			t.Errorf("csv row %d: amount %q is not a decimal: %v", i+1, row[col["amount"]], err)
		}
		if r.ID == run.attention && !strings.Contains(row[col["recovery_reason"]], "nobody claimed it") {
			t.Errorf("csv: the needs_attention row's recovery_reason is %q", row[col["recovery_reason"]])
		}
		if r.ID == run.charge && (row[col["amount"]] != "12.50" || row[col["refunded_amount"]] != "14.00" || row[col["tip_amount"]] != "1.50") {
			t.Errorf("csv: the charge row: amount %q refunded %q tip %q; want 12.50, 14.00 and 1.50",
				row[col["amount"]], row[col["refunded_amount"]], row[col["tip_amount"]])
		}
	}

	// Filters, on the file.
	filters := []struct {
		name string
		args []string
		want []string // ids, newest first
	}{
		{"status", []string{"--status", "needs_attention"}, []string{run.attention}},
		{"operation", []string{"--operation", "refund"}, []string{run.refund}},
		{"terminal elsewhere", []string{"--terminal", "lane9"}, nil},
		{"until the void window", []string{"--until", "2026-03-10T10:01:00-05:00"},
			[]string{run.voided, run.declined, run.capture, run.auth, run.tip, run.charge}},
		{"since and operation", []string{"--since", "2026-03-10T10:01:00-05:00", "--operation", "charge"},
			[]string{run.attention, run.claimed, run.leak}},
		{"limit", []string{"--limit", "2"}, []string{run.attention, run.claimed}},
	}
	for _, f := range filters {
		t.Run("ls "+f.name, func(t *testing.T) {
			code, out, stderr := opsRunCLI(t, append(append([]string{"journal", "ls", "--json"}, f.args...), cfg...)...)
			if code != exitOK {
				t.Fatalf("got exit %d, stderr %q", code, stderr)
			}
			var got struct{ Transactions []payment.Transaction }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			var ids []string
			for _, tr := range got.Transactions {
				ids = append(ids, tr.ID)
			}
			if !reflect.DeepEqual(ids, f.want) {
				t.Errorf("got %v, want %v", ids, f.want)
			}
		})
	}

	code, out, stderr = opsRunCLI(t, append([]string{"journal", "check"}, cfg...)...)
	if code != exitOK || !strings.Contains(out, "ok (11 records, 1 not final") {
		t.Errorf("check (daemon stopped): got exit %d, %q %q; want 0, ok with 11 records, 1 not final", code, out, stderr)
	}
	code, _, stderr = opsRunCLI(t, "journal", "show", "--file", path, "00000000-0000-4000-8000-000000000000")
	if code != exitFailure || !strings.Contains(stderr, "no transaction") {
		t.Errorf("show of an unknown id: got exit %d, %q; want 1, no transaction", code, stderr)
	}
	code, _, stderr = opsRunCLI(t, append([]string{"journal", "ls", "--api"}, cfg...)...)
	if code != exitFailure || !strings.Contains(stderr, "daemon not reachable") || !strings.Contains(stderr, "source: running daemon at "+s.base+" (--api)") {
		t.Errorf("ls --api with the daemon stopped: got exit %d, %q; want 1, not reachable", code, stderr)
	}
	// The file was opened read-only and closed: the daemon could start again.
	if got, err := os.ReadDir(filepath.Join(s.dir, "data")); err != nil || len(got) == 0 {
		t.Errorf("data_dir: %v %v", got, err)
	}
}

// checkTable checks ls's table: the header, then one line per transaction
// with its status.
func opsCheckTable(t *testing.T, table string, want map[string]payment.Status) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if f := strings.Fields(lines[0]); !reflect.DeepEqual(f, []string{"TIME", "ID", "TERMINAL", "OPERATION", "STATUS", "AMOUNT", "ROUTE", "REFERENCE"}) {
		t.Errorf("ls header: got %v", f)
	}
	if len(lines)-1 != len(want) {
		t.Errorf("ls: got %d rows, want %d:\n%s", len(lines)-1, len(want), table)
	}
	for id, st := range want {
		line, err := opsFindLine(table, id)
		if err != nil {
			t.Errorf("ls: no row for %s", id)
			continue
		}
		f := strings.Fields(line)
		// TIME is two fields (date and time), AMOUNT two ("12.50 PEN") or
		// one ("-" for a void).
		if len(f) < 9 || f[5] != string(st) || f[len(f)-2] != "lan" {
			t.Errorf("ls row for %s: got %v, want status %s on lan", id, f, st)
		}
	}
}

func opsParseNDJSON(t *testing.T, s string) []shownRecord {
	t.Helper()
	var out []shownRecord
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r shownRecord
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("ndjson line %d: %v (%s)", len(out)+1, err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

func opsReadCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	return rows
}

// TestJournalCheckReportsDamage damages a journal written by the real
// lifecycle behind the journal's back (bbolt directly) and expects check to
// name each problem and exit 1.
func TestJournalCheckReportsDamage(t *testing.T) {
	s := startOps(t, opsOptions{})
	charge := opsNewID()
	s.txn(s.do("POST", "/v1/charges", `{"client_transaction_id":"`+charge+`","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":5}}`), 200, "charge")
	second := opsNewID()
	s.txn(s.do("POST", "/v1/charges", `{"client_transaction_id":"`+second+`","amount":{"iva":0,"subtotal_iva":0,"subtotal_iva0":6}}`), 200, "charge")
	s.stop()
	path := filepath.Join(s.dir, "data", journalFileName)

	code, out, stderr := opsRunCLI(t, "journal", "check", "--file", path)
	if code != exitOK {
		t.Fatalf("check before the damage: got exit %d, %q %q", code, out, stderr)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("in_flight")).Put([]byte("no-such-record"), nil); err != nil {
			return err
		}
		return tx.Bucket([]byte("records")).Put([]byte(second), []byte("{not json"))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("damage: %v", err)
	}

	code, out, _ = opsRunCLI(t, "journal", "check", "--file", path)
	if code != exitFailure {
		t.Errorf("check after the damage: got exit %d, want 1", code)
	}
	for _, want := range []string{"problem(s):", "no-such-record", second} {
		if !strings.Contains(out, want) {
			t.Errorf("check after the damage: output lacks %q:\n%s", want, out)
		}
	}

	// A file that is not a journal at all.
	junk := filepath.Join(s.dir, "junk.db")
	opsWriteFile(t, junk, strings.Repeat("x", 8192))
	code, out, _ = opsRunCLI(t, "journal", "check", "--file", junk)
	if code != exitFailure || !strings.Contains(out, "cannot be opened") {
		t.Errorf("check of a non-journal: got exit %d, %q; want 1, cannot be opened", code, out)
	}
}

func TestJournalCommandLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "missing.db")
	tests := []struct {
		name string
		args []string
		code int
		in   string // in stdout (exit 0) or stderr
	}{
		{"no command", []string{"journal"}, exitUsage, "usage: posbridge journal"},
		{"help", []string{"journal", "--help"}, exitOK, "Where the records come from"},
		{"unknown command", []string{"journal", "rm"}, exitUsage, `unknown command "rm"`},
		{"ls help", []string{"journal", "ls", "--help"}, exitOK, "--since"},
		{"show help", []string{"journal", "show", "-h"}, exitOK, "event"},
		{"export help", []string{"journal", "export", "--help"}, exitOK, "last_event_detail"},
		{"check help", []string{"journal", "check", "--help"}, exitOK, "problems found"},
		{"bad flag", []string{"journal", "ls", "--colour"}, exitUsage, "unknown flag"},
		{"bad status", []string{"journal", "ls", "--status", "paid", "--file", file}, exitUsage, "not one of pending"},
		{"bad operation", []string{"journal", "ls", "--operation", "sale", "--file", file}, exitUsage, "not one of charge"},
		{"bad since", []string{"journal", "ls", "--since", "yesterday", "--file", file}, exitUsage, "--since"},
		{"until before since", []string{"journal", "ls", "--since", "2026-03-10", "--until", "2026-03-09", "--file", file}, exitUsage, "after --since"},
		{"negative limit", []string{"journal", "ls", "--limit", "-1", "--file", file}, exitUsage, "--limit"},
		{"file and api", []string{"journal", "ls", "--file", file, "--api"}, exitUsage, "exclude each other"},
		{"show without id", []string{"journal", "show", "--file", file}, exitUsage, "client_transaction_id is missing"},
		{"show two ids", []string{"journal", "show", "--file", file, "a", "b"}, exitUsage, "one ID at a time"},
		{"export format", []string{"journal", "export", "--format", "xml", "--file", file}, exitUsage, "not ndjson or csv"},
		{"check argument", []string{"journal", "check", "extra"}, exitUsage, "unexpected argument"},
		{"check has no api", []string{"journal", "check", "--api"}, exitUsage, "unknown flag"},
		{"missing file", []string{"journal", "ls", "--file", file}, exitFailure, "no journal file at " + file},
		{"missing data dir", []string{"journal", "check", "--data-dir", dir}, exitFailure, "no journal file at " + filepath.Join(dir, journalFileName)},
		{"bad url", []string{"journal", "ls", "--url", "ftp://x", "--config", opsMinimalConfig(t, dir)}, exitFailure, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := opsRunCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit: got %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout, stderr)
			}
			where := stderr
			if code == exitOK {
				where = stdout
			}
			if !strings.Contains(where, tt.in) {
				t.Errorf("got stdout %q stderr %q, want %q in the %s", stdout, stderr, tt.in, map[bool]string{true: "stdout", false: "stderr"}[code == exitOK])
			}
		})
	}
}

// writeMinimalConfig writes a valid configuration with one terminal.
func opsMinimalConfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "minimal.yaml")
	opsWriteFile(t, p, `data_dir: `+dir+`
terminals:
  - {name: lane1, serial: S1, lan_address: "127.0.0.1:1", auth: hmac, credential_env: NOT_READ_HERE, currency: PEN}
`)
	return p
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, opsLima)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2026-03-10T10:00:00-05:00", want: time.Date(2026, 3, 10, 10, 0, 0, 0, opsLima)},
		{in: "2026-03-10T15:00:00Z", want: time.Date(2026, 3, 10, 10, 0, 0, 0, opsLima)},
		{in: "2026-03-10", want: time.Date(2026, 3, 10, 0, 0, 0, 0, opsLima)},
		{in: "2026-03-10T09:30", want: time.Date(2026, 3, 10, 9, 30, 0, 0, opsLima)},
		{in: "2026-03-10 09:30:15", want: time.Date(2026, 3, 10, 9, 30, 15, 0, opsLima)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "-1h", bad: true},
		{in: "0s", bad: true},
		{in: "yesterday", bad: true},
		{in: "2026-13-01", bad: true},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now, opsLima)
		switch {
		case tt.bad && err == nil:
			t.Errorf("parseWhen(%q): got %v, want an error", tt.in, got)
		case !tt.bad && (err != nil || !got.Equal(tt.want)):
			t.Errorf("parseWhen(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestCSVColumnsAreDocumented(t *testing.T) {
	var doc []string
	for _, c := range strings.Split(csvColumnList, ",") {
		doc = append(doc, strings.TrimSpace(c))
	}
	if !reflect.DeepEqual(doc, csvColumns) {
		t.Errorf("usage text lists %v, want csvColumns %v", doc, csvColumns)
	}
	if got := len(csvRow(&payment.Record{})); got != len(csvColumns) {
		t.Errorf("csvRow: got %d cells, want %d", got, len(csvColumns))
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"12.50":           "12.50",
		"=HYPERLINK(1)":   "'=HYPERLINK(1)",
		"+1":              "'+1",
		"-1":              "'-1",
		"@SUM(A1)":        "'@SUM(A1)",
		"\tx":             "'\tx",
		"abort failed: x": "abort failed: x",
	} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestSortOldestFirst(t *testing.T) {
	t0 := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	rs := []*payment.Record{
		{Transaction: payment.Transaction{ID: "b", CreatedAt: t0}},
		{Transaction: payment.Transaction{ID: "c", CreatedAt: t0.Add(-time.Second)}},
		{Transaction: payment.Transaction{ID: "a", CreatedAt: t0}},
	}
	sortOldestFirst(rs)
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	if want := []string{"c", "a", "b"}; !sort.StringsAreSorted(got[1:]) || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
