package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
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

// TestFullDisk fills a 128 KiB tmpfs. The Update that cannot be written must
// fail with ErrCommit, the Journal must refuse writes after it, and the file,
// reopened, must pass Check with every acknowledged record and without the
// failed one.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, "size=128k")
	path := filepath.Join(dir, "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	var failedID string
	var commitErr error
	for i := range 1000 {
		r := newRecord(fmt.Sprintf("f%03d", i), at(i), payment.StatusPending)
		r.Metadata["pad"] = strings.Repeat("p", 3000)
		err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) })
		if err != nil {
			failedID, commitErr = r.ID, err
			break
		}
		acked = append(acked, r.ID)
	}
	if commitErr == nil {
		t.Fatal("1000 records of 3 KB fit in a 128 KiB tmpfs; the disk never filled")
	}
	t.Logf("after %d records: %v", len(acked), commitErr)
	if !errors.Is(commitErr, ErrCommit) || !errors.Is(commitErr, syscall.ENOSPC) {
		t.Fatalf("Update on a full disk: got %v, want ErrCommit wrapping ENOSPC", commitErr)
	}
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
	if _, err := j.Get(ctx, failedID); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("Get(%s), the record whose commit failed: got %v, want ErrNotFound", failedID, err)
	}
	for _, id := range acked {
		mustGet(t, j, id)
	}
	s, err := j.Stats(ctx)
	if err != nil || s.Records != len(acked) || s.InFlight != len(acked) {
		t.Fatalf("Stats after reopen: got %+v, %v; want %d records, all in flight", s, err, len(acked))
	}
}
