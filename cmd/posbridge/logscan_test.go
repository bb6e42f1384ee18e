package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPAN is the full card number the simulator's leak_pan fault puts into a
// terminal answer (sim.DefaultCard).
const testPAN = "4242424242424242"

// TestLogsAndOutputsCarryNoSecretsOrCardNumbers runs the full scenario
// (every operation, a decline, an authentication failure, leak_pan on a
// charge and on a search, lost answers settled by recovery, discovery off)
// through the real wiring with debug logging, then scans the logs, the
// journal file's bytes and the CLI's outputs (show, export, config print)
// for the terminal credentials, the API bearer token, every Authorization
// header value that went over the wire, the test card number and any
// Luhn-valid run of 13-19 digits. Then it checks that every log line about
// a payment names the payment and its terminal.
func TestLogsAndOutputsCarryNoSecretsOrCardNumbers(t *testing.T) {
	s := startOps(t, opsOptions{badLane: true})
	run := s.scenario()
	auths := s.authorizations()
	s.stop()
	if len(auths) == 0 {
		t.Fatal("the terminals saw no Authorization header: the scan would prove nothing")
	}

	cfg := []string{"--config", s.cfgPath}
	outputs := map[string][]byte{"daemon log": s.logs.Bytes()}
	journalBytes, err := os.ReadFile(filepath.Join(s.dir, "data", journalFileName))
	if err != nil {
		t.Fatal(err)
	}
	outputs["journal file"] = journalBytes
	outputs["search answer"] = run.search
	var export string
	for name, args := range map[string][]string{
		"journal show leak_pan":   {"journal", "show", run.leak},
		"journal show --json":     {"journal", "show", "--json", run.leak},
		"journal export":          {"journal", "export"},
		"journal export csv":      {"journal", "export", "--format", "csv"},
		"journal ls":              {"journal", "ls", "--limit", "0"},
		"journal show needs_att.": {"journal", "show", run.attention},
		"config print":            {"config", "print"},
		"config validate":         {"config", "validate"},
	} {
		code, stdout, stderr := opsRunCLI(t, append(args, cfg...)...)
		if code != exitOK {
			t.Fatalf("%s: got exit %d, stderr %q", name, code, stderr)
		}
		outputs[name] = []byte(stdout + stderr)
		if name == "journal export" {
			export = stdout
		}
	}

	// Ticket numbers are the terminal's 18-digit receipt numbers
	// (DESIGN.md "A sale also gets an 18-digit ticket number"); about one in
	// ten passes the Luhn check by chance. Only the exact numbers the
	// terminal returned in this run are excused, so a card number cannot
	// hide behind the exclusion (and the test card is searched by value).
	tickets := map[string]bool{}
	for _, r := range opsParseNDJSON(t, export) {
		tickets[r.TicketNumber] = true
		if r.Recovery != nil && r.Recovery.Found != nil {
			tickets[r.Recovery.Found.TicketNumber] = true
		}
	}
	for _, tk := range run.tickets {
		tickets[tk] = true
	}
	delete(tickets, "")
	// The terminal's searches give times as Unix milliseconds (13 digits;
	// seeds/kushki-transactions-list.txt, filters.start_date/end_date; the
	// simulator's "created"). Those within a day of this run's clock are
	// excused too; no card brand issues 13-digit numbers starting with 1.
	from, to := time.Date(2026, 3, 10, 10, 0, 0, 0, opsLima).Add(-24*time.Hour), s.clock.Now().Add(24*time.Hour)

	secrets := map[string]string{
		"lane1 credential":                     opsLane1Secret,
		"lane2 credential (held by posbridge)": opsLane2Secret,
		"lane2 credential (the terminal's)":    opsLane2SimSecret,
		"API bearer token":                     opsToken,
		"test card number":                     testPAN,
	}
	for i, a := range auths {
		secrets["Authorization header "+strconv.Itoa(i)] = a
	}
	for name, out := range outputs {
		if len(out) == 0 {
			t.Errorf("%s: empty, nothing scanned", name)
		}
		for what, secret := range secrets {
			if bytes.Contains(out, []byte(secret)) {
				t.Errorf("%s contains the %s", name, what)
			}
		}
		for _, run := range luhnRuns(out) {
			if !tickets[run] && !unixMillisIn(run, from, to) {
				t.Errorf("%s contains a Luhn-valid number %s…%s (%d digits) that is neither a ticket number nor a time of this run",
					name, run[:6], run[len(run)-4:], len(run))
			}
		}
	}
	// The scan must be able to see a leak: the terminal did send the PAN.
	if !bytes.Contains(outputs["journal show --json"], []byte(`"client_transaction_id": "`+run.leak+`"`)) {
		t.Errorf("journal show --json: does not show the leak_pan charge")
	}

	// Every log line about a payment names the payment and its terminal.
	ids := map[string]string{ // id → terminal
		run.charge: "lane1", run.tip: "lane1", run.auth: "lane1", run.capture: "lane1", run.declined: "lane1",
		run.voided: "lane1", run.void: "lane1", run.refund: "lane1", run.leak: "lane1", run.failed: "lane2",
		run.claimed: "lane1", run.attention: "lane1",
	}
	seen := map[string]int{}
	for i, line := range bytes.Split(bytes.TrimSpace(outputs["daemon log"]), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Errorf("log line %d is not JSON: %v: %s", i+1, err, line)
			continue
		}
		id, _ := rec["client_transaction_id"].(string)
		term, _ := rec["terminal"].(string)
		about := id != "" || rec["component"] == "payment"
		for pid := range ids {
			about = about || bytes.Contains(line, []byte(pid))
		}
		if !about {
			continue
		}
		if id == "" || term == "" {
			t.Errorf("log line %d is about a payment but lacks client_transaction_id or terminal: %s", i+1, line)
			continue
		}
		if want, ok := ids[id]; ok && term != want {
			t.Errorf("log line %d: terminal %q, want %q for %s", i+1, term, want, id)
		}
		seen[id]++
	}
	for id := range ids {
		if seen[id] == 0 {
			t.Errorf("no log line names payment %s: the check above proved nothing for it", id)
		}
	}
}

// luhnRuns returns every run of 13 to 19 ASCII digits in b that stands as
// a token of its own (no letter or digit right before or after it) and
// passes the Luhn check, as a card number would. Digit runs inside longer
// alphanumeric tokens (hex digests, UUID groups, base64) are not card
// numbers and are skipped.
func luhnRuns(b []byte) []string {
	var out []string
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isAlnum := func(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		n := j - i
		if n >= 13 && n <= 19 && (i == 0 || !isAlnum(b[i-1])) && (j == len(b) || !isAlnum(b[j])) && luhn(b[i:j]) {
			out = append(out, string(b[i:j]))
		}
		i = j
	}
	return out
}

// luhn reports whether the digits pass the Luhn (mod 10) check.
func luhn(digits []byte) bool {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// unixMillisIn reports whether digits is a 13-digit Unix time in
// milliseconds between from and to.
func unixMillisIn(digits string, from, to time.Time) bool {
	ms, err := strconv.ParseInt(digits, 10, 64)
	if len(digits) != 13 || err != nil {
		return false
	}
	at := time.UnixMilli(ms)
	return !at.Before(from) && !at.After(to)
}

func TestLuhnRuns(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{"pan":"4242424242424242"}`, []string{"4242424242424242"}},
		{`card 4242424242424241 end`, nil},                         // fails Luhn
		{`x4242424242424242`, nil},                                 // inside a token
		{`a1b2 4242424242424242f`, nil},                            // inside a token
		{`378282246310005,`, []string{"378282246310005"}},          // 15 digits (Amex test card)
		{`4242424242424242424242`, nil},                            // 22 digits: too long
		{`424242424242`, nil},                                      // 12 digits: too short
		{"\x004111111111111111\x01", []string{"4111111111111111"}}, // binary around it
	}
	for _, tt := range tests {
		got := luhnRuns([]byte(tt.in))
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("luhnRuns(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}
