package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/posbridge/posbridge/internal/payment"
)

// mountTmpfs mounts a tmpfs with the given options on a new temporary
// directory and unmounts it at cleanup. It skips the test, saying why, where
// mounting is not permitted.
func mountTmpfs(t *testing.T, options string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs (%s) on %s: %v (needs root or CAP_SYS_ADMIN)", options, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestFullDisk fills a 128 KiB tmpfs from four lanes at once, with each
// write path. Every Update that cannot be written must fail with ErrCommit,
// the Journal must refuse writes after the first failure, and the file,
// reopened, must pass Check with every acknowledged record and none of the
// failed ones.
func TestFullDisk(t *testing.T) {
	for _, mode := range []struct {
		name  string
		write writeMode
	}{{"auto", writeAuto}, {"batch", writeBatch}, {"plain", writePlain}} {
		t.Run(mode.name, func(t *testing.T) { testFullDisk(t, mode.write) })
	}
}

func testFullDisk(t *testing.T, write writeMode) {
	ctx := context.Background()
	dir := mountTmpfs(t, "size=128k")
	path := filepath.Join(dir, "journal.db")
	j, err := Open(path, Options{write: write})
	if err != nil {
		t.Fatal(err)
	}
	const lanes = 4
	var (
		mu     sync.Mutex
		acked  []string
		failed = map[string]error{}
		wg     sync.WaitGroup
	)
	for lane := range lanes {
		wg.Go(func() {
			for i := range 1000 {
				r := newRecord(fmt.Sprintf("f%d-%03d", lane, i), at(lane*1000+i), payment.StatusPending)
				r.Metadata["pad"] = strings.Repeat("p", 3000)
				err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) })
				mu.Lock()
				if err != nil {
					failed[r.ID] = err
				} else {
					acked = append(acked, r.ID)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(failed) == 0 {
		t.Fatal("4000 records of 3 KB fit in a 128 KiB tmpfs; the disk never filled")
	}
	enospc := 0
	for id, err := range failed {
		if !errors.Is(err, ErrCommit) {
			t.Fatalf("Update(%s) on a full disk: got %v, want ErrCommit", id, err)
		}
		if errors.Is(err, syscall.ENOSPC) {
			enospc++
		}
	}
	if enospc == 0 {
		t.Fatalf("no failure wraps ENOSPC: %v", failed)
	}
	t.Logf("%d records acknowledged, %d refused; e.g. %v", len(acked), len(failed), j.Err())
	if j.Err() == nil {
		t.Fatal("Err after a commit failure: got nil, want the failure")
	}
	ran := false
	err = j.Update(ctx, func(payment.Tx) error { ran = true; return nil })
	if !errors.Is(err, ErrCommit) || ran {
		t.Fatalf("Update after a commit failure: got %v (fn ran: %v), want ErrCommit without running fn", err, ran)
	}
	// Reads still work.
	if _, err := j.Get(ctx, acked[0]); err != nil {
		t.Fatalf("Get after a commit failure: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen on the still-full disk: opening writes nothing.
	j = MustOpenPath(t, path)
	mustCheck(t, j)
	for id := range failed {
		if _, err := j.Get(ctx, id); !errors.Is(err, payment.ErrNotFound) {
			t.Fatalf("Get(%s), whose commit failed: got %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range acked {
		mustGet(t, j, id)
	}
	s, err := j.Stats(ctx)
	if err != nil || s.Records != len(acked) || s.InFlight != len(acked) {
		t.Fatalf("Stats after reopen: got %+v, %v; want %d records, all in flight", s, err, len(acked))
	}
}
