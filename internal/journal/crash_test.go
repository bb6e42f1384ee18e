package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// The helper-process pattern: the test binary runs itself with helperEnv set
// to a role, and TestMain runs that role instead of the tests.
const (
	helperEnv     = "JOURNAL_TEST_HELPER"
	helperPathEnv = "JOURNAL_TEST_PATH"
	helperTagEnv  = "JOURNAL_TEST_TAG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(helperWriter(os.Getenv(helperPathEnv), os.Getenv(helperTagEnv)))
	case "hold":
		os.Exit(helperHold(os.Getenv(helperPathEnv)))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role")
		os.Exit(2)
	}
}

// helperWriter writes payments on 8 lanes, as the daemon does, until it is
// killed: an intent (pending), then its outcome (approved, with a reference).
// It prints "ACK <status> <id>" only after the Update that wrote it returned.
func helperWriter(path, tag string) int {
	j, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	ctx := context.Background()
	var out sync.Mutex
	var wg sync.WaitGroup
	for lane := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				id := fmt.Sprintf("%s-l%d-%d", tag, lane, n)
				created := time.Unix(0, int64(lane)*1e15+int64(n)*1e6).UTC()
				r := newRecord(id, created, payment.StatusPending)
				if err := j.Update(ctx, func(tx payment.Tx) error { return tx.Put(r) }); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Printf("ACK pending %s\n", id)
				out.Unlock()
				err := j.Update(ctx, func(tx payment.Tx) error {
					r, err := tx.Get(id)
					if err != nil {
						return err
					}
					r.AddEvent(payment.Event{At: created.Add(time.Second), Status: payment.StatusApproved})
					r.Reference = "ref-" + id
					return tx.Put(r)
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Printf("ACK approved %s\n", id)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// helperHold opens the journal, says LOCKED, and holds it until its stdin
// closes.
func helperHold(path string) int {
	j, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("LOCKED")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := j.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helper starts the test binary in a helper role and returns it with a
// channel of its stdout lines (closed at EOF).
func helper(t *testing.T, role, path, tag string) (*exec.Cmd, io.WriteCloser, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperPathEnv+"="+path, helperTagEnv+"="+tag)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, stdin, lines
}

// waitLine waits for want on lines; it fails if the helper ends first or
// nothing comes for a long time.
func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper ended before printing %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("helper did not print %q within 30 s", want)
		}
	}
}

// TestCrashKill kills a writing process with SIGKILL at random moments, over
// and over on one file, and after each kill reopens the journal, runs Check
// and verifies that every write the child acknowledged is there, with at
// least the status it acknowledged. (A process kill leaves the page cache
// intact, so this proves the commit protocol and the indexes under abrupt
// stops, not power-loss durability: research/anchors-reliability.md §3.6.)
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts and kills 40 processes")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x6a6f75726e616c))
	t.Logf("seed %d", seed)

	const rounds = 40
	acked := map[string]payment.Status{} // strongest status acknowledged per id
	totalAcks := 0
	for round := range rounds {
		cmd, stdin, lines := helper(t, "writer", path, fmt.Sprintf("r%02d", round))
		waitLine(t, lines, "READY")
		// Kill after a random number of acknowledgements, then a random
		// sub-millisecond pause, so the kill lands anywhere in a commit.
		killAt := 1 + rng.IntN(250)
		seen := 0
		for seen < killAt {
			l, ok := <-lines
			if !ok {
				t.Fatalf("round %d: writer ended on its own", round)
			}
			if recordAck(t, acked, l) {
				seen++
			}
		}
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Everything the child printed before it died is an acknowledgement.
		for l := range lines {
			if recordAck(t, acked, l) {
				seen++
			}
		}
		_ = cmd.Wait()
		_ = stdin.Close()
		totalAcks += seen

		j, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if err := j.Check(ctx); err != nil {
			t.Fatalf("round %d: Check after SIGKILL: %v", round, err)
		}
		lost := 0
		for id, st := range acked {
			r, err := j.Get(ctx, id)
			switch {
			case err != nil:
				t.Errorf("round %d: acknowledged %s %s: %v", round, st, id, err)
				lost++
			case st == payment.StatusApproved && (r.Status != payment.StatusApproved || r.Reference != "ref-"+id):
				t.Errorf("round %d: %s: acknowledged approved, found %s with reference %q", round, id, r.Status, r.Reference)
				lost++
			}
		}
		inflight, err := j.InFlight(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range inflight {
			if acked[r.ID] == payment.StatusApproved {
				t.Errorf("round %d: %s is in flight but its approval was acknowledged", round, r.ID)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if lost > 0 {
			t.Fatalf("round %d: %d acknowledged writes lost", round, lost)
		}
	}
	t.Logf("%d SIGKILLs, %d acknowledged writes (%d records), 0 lost, 0 Check problems", rounds, totalAcks, len(acked))
}

// recordAck notes an "ACK <status> <id>" line; it reports whether l was one.
func recordAck(t *testing.T, acked map[string]payment.Status, l string) bool {
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "ACK" {
		return false
	}
	st := payment.Status(f[1])
	if st == payment.StatusApproved || acked[f[2]] == "" {
		acked[f[2]] = st
	}
	return true
}

// TestSecondOpenFailsFast: while another process holds the journal, Open
// and OpenReadOnly fail within the lock timeout with a message naming the
// file; once it lets go, Open succeeds.
func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	cmd, stdin, lines := helper(t, "hold", path, "")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitLine(t, lines, "LOCKED")

	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while locked: got %v, want ErrInUse", err)
	}
	if want := "journal " + path + " is in use by another posbridge process"; !strings.Contains(err.Error(), want) {
		t.Fatalf("Open while locked: got %q, want it to contain %q", err, want)
	}
	// It waited for the lock, but not for ever (generous bound: slow CI).
	if elapsed < timeout || elapsed > timeout+10*time.Second {
		t.Fatalf("Open while locked returned after %v, want about %v", elapsed, timeout)
	}
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("OpenReadOnly while locked: got %v, want ErrInUse", err)
	}
	t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)

	// Let go: the holder closes the journal and exits.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	j, err := Open(path, Options{LockTimeout: timeout})
	if err != nil {
		t.Fatalf("Open after the holder exited: %v", err)
	}
	_ = j.Close()
}
