package api_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/payment"
)

// journalCheck is the readiness check cmd/posbridge should wire: the
// journal's commit failure, or any failure to read it (closed, I/O).
func journalCheck(b *backend) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := b.journal.Err(); err != nil {
			return err
		}
		if _, err := b.journal.Get(ctx, "readiness-probe"); err != nil && !errors.Is(err, payment.ErrNotFound) {
			return err
		}
		return nil
	}
}

// mountTmpfs mounts a small tmpfs on a new temporary directory and unmounts
// it at cleanup; it skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs on %s: %v (needs root or CAP_SYS_ADMIN)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: got %v, want ENOSPC", err)
			}
			return
		}
	}
}

// TestJournalUnwritable: when the intent cannot be made durable the
// payment is refused with 503 journal_unavailable and nothing reaches the
// terminal. Running as root, file modes do not stop writes, so the journal
// is made unwritable for real: a full disk (the journal on a 1 MiB tmpfs
// that is then filled up, so bbolt's commit fails with ENOSPC), and the
// journal closed underneath the service.
func TestJournalUnwritable(t *testing.T) {
	// The largest charge the API accepts: its intent needs new pages.
	var meta []string
	for i := range 20 {
		meta = append(meta, `"k`+strings.Repeat("x", 60)+string(rune('a'+i))+`":"`+strings.Repeat("v", 256)+`"`)
	}
	body := func(id string) string {
		return `{"client_transaction_id":"` + id + `","amount":{"subtotal_iva0":12},"metadata":{` + strings.Join(meta, ",") + `}}`
	}
	for _, c := range []struct {
		name    string
		dir     func(t *testing.T) string
		breakIt func(t *testing.T, b *backend)
		ready   bool   // what /readyz says afterwards
		cause   string // the journal's error, in the log (never in the answer)
	}{
		{"full disk", func(t *testing.T) string { return mountTmpfs(t, "1m") }, func(t *testing.T, b *backend) { fill(t, b.dir) }, false, "no space left on device"},
		{"closed journal", func(*testing.T) string { return "" }, func(t *testing.T, b *backend) {
			if err := b.journal.Close(); err != nil {
				t.Fatal(err)
			}
		}, false, "journal closed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, c.dir(t))
			s := startAPI(t, b.svc, func(cfg *api.Config) {
				cfg.Terminals = b.terminalStatus
				cfg.JournalCheck = journalCheck(b)
				cfg.MaxBodyBytes = 64 << 10
			})
			// One charge works before the journal breaks.
			if r := s.post(t, "/v1/charges", body(newID())); r.Status != http.StatusOK {
				t.Fatalf("charge before: got %d %s, want 200", r.Status, r.Body)
			}
			c.breakIt(t, b)
			before := b.terminalCalls()
			id := newID()
			r := s.post(t, "/v1/charges", body(id))
			if r.Status != http.StatusServiceUnavailable || r.errorCode() != "journal_unavailable" {
				t.Fatalf("charge after: got %d %s, want 503 journal_unavailable", r.Status, r.Body)
			}
			if !strings.Contains(s.logs.String(), c.cause) {
				t.Errorf("log: no %q in\n%s", c.cause, s.logs.String())
			}
			if strings.Contains(string(r.Body), c.cause) {
				t.Errorf("the answer carries the journal's error: %s", r.Body)
			}
			if after := b.terminalCalls(); after != before {
				t.Errorf("terminal calls: got %d, want %d (none)", after, before)
			}
			if _, ok := b.sim.Ledger().Entry(id); ok {
				t.Errorf("the simulator processed %s", id)
			}
			// Nothing is journaled either: a retry is refused the same way.
			if r := s.post(t, "/v1/charges", body(id)); r.Status != http.StatusServiceUnavailable {
				t.Errorf("retry: got %d %s, want 503", r.Status, r.Body)
			}
			var ready struct {
				Ready  bool `json:"ready"`
				Checks struct {
					Journal struct {
						OK bool `json:"ok"`
					} `json:"journal"`
				} `json:"checks"`
			}
			rr := s.get(t, "/readyz")
			rr.json(t, &ready)
			if ready.Ready != c.ready || ready.Checks.Journal.OK != c.ready {
				t.Errorf("readyz: got %d %s, want ready %v", rr.Status, rr.Body, c.ready)
			}
		})
	}
}
