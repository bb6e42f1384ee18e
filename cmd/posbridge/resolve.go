package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/posbridge/posbridge/internal/payment"
)

const journalResolveUsage = `usage: posbridge journal resolve ID --status STATUS --note TEXT [flags]

Records a person's decision on a payment posbridge could not settle by
itself (status needs_attention), after checking the terminal's history and
with the customer. STATUS is one of:
  approved     the sale stands: the customer was charged and keeps the goods
  not_charged  no money moved
  voided, refunded, reversed
               the money was given back outside posbridge (on the terminal
               or in Kushki's console)
NOTE says what was checked and who decided; it is kept in the payment's
event history. posbridge sends nothing to the terminal. The payment is then
settled: retries of it get the settled answer, and /readyz no longer counts
it.

It goes through the running daemon's API (POST /v1/transactions/ID/resolve):
the daemon owns the journal file.

Exit codes: 0 resolved, 1 refused or the daemon unreachable, 2 bad command
line.

Flags:
`

// journalResolve implements "posbridge journal resolve".
func journalResolve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	jf := newJournalFlags("resolve", journalResolveUsage, true)
	status := jf.fs.String("status", "", "approved, not_charged, voided, refunded or reversed")
	note := jf.fs.String("note", "", "what was checked and who decided")
	if code := jf.parse(args, stdout, stderr); code >= 0 {
		return code
	}
	if jf.fs.NArg() != 1 || *status == "" || strings.TrimSpace(*note) == "" {
		fmt.Fprintf(stderr, "%s: want one ID, --status and --note\n\n%s%s", jf.name, jf.usage, jf.fs.FlagUsages())
		return exitUsage
	}
	if *jf.file != "" {
		fmt.Fprintf(stderr, "%s: --file cannot be used: a resolution goes through the running daemon\n", jf.name)
		return exitUsage
	}
	id := canonicalUUID(jf.fs.Arg(0))
	c, err := jf.apiClient(nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "source: running daemon at %s\n", c.base.Redacted())
	var tx payment.Transaction
	body := map[string]string{"status": *status, "note": *note}
	if err := c.call(ctx, http.MethodPost, "/v1/transactions/"+id+"/resolve", nil, body, &tx, false); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", jf.name, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s resolved as %s\n", tx.ID, tx.Status)
	return exitOK
}
