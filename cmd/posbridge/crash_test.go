package main

// Crash tests with real processes (DESIGN.md "Quality bars": the process
// killed with SIGKILL at any point of a payment's life, and restarted, ends
// every payment in a definite state with zero double charges and zero lost
// approvals). The posbridge daemon runs as its own process against
// simulators running as their own processes, and is SIGKILLed at each
// failpoint of a payment's life and at random moments, then restarted while
// the POS model keeps paying, retrying, polling and abandoning. After each
// batch of kills a clean life lets recovery finish, and the journal file is
// checked against the simulators' ledgers (pos_test.go).
//
// Plain `go test` runs the CI sweep (every failpoint at least 20 times, at
// least 100 random kills); POSBRIDGE_CRASH_SOAK=1 (make crash-soak) the long
// one (200 per failpoint, 1,000 random kills).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/payment"
)

// crashPoints are the failpoints of a payment's life, in the order a
// payment meets them: the lifecycle's, then recovery's.
func crashPoints() (lifecycle, recovery []string) {
	return []string{
			payment.FPBeforeIntent,       // validated, intent not written
			payment.FPAfterIntentCommit,  // intent durable, nothing sent
			FPTerminalWrote,              // request written, the terminal works
			payment.FPAfterAnswer,        // answer read, outcome not written
			payment.FPAfterOutcomeCommit, // outcome durable, POS not answered
			payment.FPAfterClaimCommit,   // a POS claim durable, POS not answered
		}, []string{
			payment.FPRecoveryAfterAbort,   // abort answered, not journaled
			payment.FPRecoveryAfterSearch,  // search answered, not journaled
			payment.FPRecoveryBeforeVoid,   // void intent durable, void not sent
			payment.FPRecoveryAfterVoid,    // void answered, not journaled
			payment.FPRecoveryBeforeSettle, // settlement known, not journaled
		}
}

// crashScale is how much a run does.
type crashScale struct {
	perPoint    int // kills at each failpoint
	random      int // random kills
	pointBatch  int // failpoint lives between two checks
	randomBatch int // random-kill lives between two checks
}

func crashScaleFromEnv() crashScale {
	if os.Getenv("POSBRIDGE_CRASH_SOAK") != "" {
		return crashScale{perPoint: 200, random: 1000, pointBatch: 110, randomBatch: 100}
	}
	return crashScale{perPoint: 20, random: 100, pointBatch: 110, randomBatch: 50}
}

// crashSeed returns the seed of a test's random choices (logged, so a run
// can be compared with another; timing is not reproducible anyway).
func crashSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return seed
}

// TestCrashFailpoints kills the daemon at every failpoint of a payment's
// life, perPoint times each. Failpoints are armed as name=kill@N with N
// small and random, so a life dies at the first to third time a payment (or
// recovery) gets there; the simulators also drop or fail a request now and
// then, so that unknown outcomes, claims and abandoned approvals keep
// recovery's failpoints reachable.
func TestCrashFailpoints(t *testing.T) {
	t.Parallel()
	sc := crashScaleFromEnv()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	e := newFPEnv(t, fpOptions{Lanes: 3})
	pos := newPOS(e)
	pos.faults = true
	counts := newCounts()
	began := time.Now()

	// Rounds of every point once: the lifecycle's first, which leave unknown
	// outcomes behind, then recovery's, which settle them.
	life, rec := crashPoints()
	var plan []string
	for range sc.perPoint {
		a, b := append([]string(nil), life...), append([]string(nil), rec...)
		rng.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		plan = append(plan, append(a, b...)...)
	}
	isRecovery := map[string]bool{}
	for _, p := range rec {
		isRecovery[p] = true
	}
	retries := 0
	var c *fpCounts
	for batch := 1; len(plan) > 0; batch++ {
		n := min(sc.pointBatch, len(plan))
		lives := plan[:n]
		plan = plan[n:]
		driving(pos, seed+uint64(batch), func() {
			for _, fp := range lives {
				// The N-th hit of the point kills: lifecycle points are hit
				// often, recovery's less; the rarest die at the first hit.
				at := 1 + rng.IntN(3)
				switch {
				case fp == payment.FPAfterClaimCommit, fp == payment.FPRecoveryBeforeVoid, fp == payment.FPRecoveryAfterVoid:
					at = 1
				case isRecovery[fp]:
					at = 1 + rng.IntN(2)
				}
				if !failpointLife(t, e, fp, at, counts) {
					retries++
					if retries > sc.perPoint*len(life) {
						t.Fatalf("failpoints not reached too often: %v", counts.Missed)
					}
					plan = append(plan, fp)
				}
			}
		})
		c = verifyBatch(t, e, pos, counts, rng, fmt.Sprintf("failpoint batch %d", batch))
	}
	finalReport(t, c, "TestCrashFailpoints", time.Since(began))
	for _, fp := range append(life, rec...) {
		if c.Kills[fp] < sc.perPoint {
			t.Errorf("failpoint %s: %d kills, want at least %d", fp, c.Kills[fp], sc.perPoint)
		}
	}
}

// driving runs the POS model's workers while lives runs, and stops them
// when it returns, also when it ends the test with t.Fatal.
func driving(pos *posModel, seed uint64, lives func()) {
	ctx, stop := context.WithCancel(context.Background())
	wait := pos.run(ctx, 3, seed)
	defer func() {
		stop()
		wait()
	}()
	lives()
}

// failpointLife runs one life armed with fp=kill@at and waits for it to
// die there. It returns false when the failpoint was not reached within
// 20 s (the harness then kills the daemon itself).
func failpointLife(t *testing.T, e *fpEnv, fp string, at int, counts *fpCounts) bool {
	t.Helper()
	d := e.start(fmt.Sprintf("%s=kill@%d", fp, at))
	counts.Lives++
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.kill()
		<-d.done
		if d.firedFailpoint() == "" {
			counts.Missed[fp]++
			return false
		}
	}
	if got := d.firedFailpoint(); got != fp || !d.sigkilled() {
		t.Fatalf("life %d (POSBRIDGE_FAILPOINTS=%s) ended with %s after announcing failpoint %q; want a SIGKILL at %s:\n%s",
			d.life, d.spec, d.state, got, fp, fpTail(d.out.String(), 6000))
	}
	counts.Kills[fp]++
	return true
}

// TestCrashRandomKills SIGKILLs the daemon at random moments: mostly a
// random delay after a payment was sent (0 to 1.2 s: the intent, the
// terminal's think time, the answer, the outcome, the reply, and recovery
// work), sometimes while it is still starting.
func TestCrashRandomKills(t *testing.T) {
	t.Parallel()
	sc := crashScaleFromEnv()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	e := newFPEnv(t, fpOptions{Lanes: 3})
	pos := newPOS(e)
	pos.faults = true
	counts := newCounts()
	began := time.Now()
	var c *fpCounts
	for batch, done := 1, 0; done < sc.random; batch++ {
		n := min(sc.randomBatch, sc.random-done)
		driving(pos, seed+uint64(batch), func() {
			for range n {
				randomLife(t, e, rng, counts)
			}
		})
		done += n
		c = verifyBatch(t, e, pos, counts, rng, fmt.Sprintf("random batch %d", batch))
	}
	finalReport(t, c, "TestCrashRandomKills", time.Since(began))
	if c.Kills["random"] < sc.random {
		t.Errorf("random kills: %d, want at least %d", c.Kills["random"], sc.random)
	}
}

// randomLife starts a daemon and SIGKILLs it at a random moment.
func randomLife(t *testing.T, e *fpEnv, rng *rand.Rand, counts *fpCounts) {
	t.Helper()
	d := e.start("")
	counts.Lives++
	if rng.IntN(10) == 0 {
		// While it opens the journal, resumes recovery, starts listening.
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	} else {
		if !d.waitReady(t) {
			t.Fatalf("life %d died by itself (%s):\n%s", d.life, d.state, fpTail(d.out.String(), 6000))
		}
		select {
		case <-e.started:
		default:
		}
		select {
		case <-e.started:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(time.Duration(rng.IntN(1200)) * time.Millisecond)
	}
	d.kill()
	<-d.done
	if !d.sigkilled() {
		t.Fatalf("life %d ended with %s before the harness killed it:\n%s", d.life, d.state, fpTail(d.out.String(), 6000))
	}
	counts.Kills["random"]++
}

// verifyBatch ends a batch: a clean life in which the POS gets a final
// answer for every payment it still wants, a sample of settled payments
// is sent again (their answers must not have changed), and recovery
// settles everything; then the daemon stops and the journal is checked
// against the ledgers. Violations fail the test at once.
func verifyBatch(t *testing.T, e *fpEnv, pos *posModel, counts *fpCounts, rng *rand.Rand, name string) *fpCounts {
	t.Helper()
	began := time.Now()
	d := e.mustStart()
	counts.Lives++
	pos.settleClaims(t, rng.Uint64())
	claimed := time.Since(began)
	pos.replaySample(t, d, 40, rng)
	e.waitSettled(d)
	d.stop(t)
	t.Logf("%s: POS answered in %s, all settled in %s", name, claimed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	c := newCounts()
	c.Lives = counts.Lives
	for k, v := range counts.Kills {
		c.Kills[k] = v
	}
	for k, v := range counts.Missed {
		c.Missed[k] = v
	}
	bad := pos.check(t, c)
	if len(bad) > 0 {
		for _, b := range bad[:min(len(bad), 40)] {
			t.Error(b)
		}
		c.report(t, name+": VIOLATIONS", 0)
		t.FailNow()
	}
	return c
}

// finalReport logs a test's figures (those of its last check, which
// cover the whole journal and ledgers) and fails a run that proved little.
func finalReport(t *testing.T, c *fpCounts, name string, took time.Duration) {
	t.Helper()
	c.report(t, name, took)
	if c.Approvals == 0 || c.Settled["search"] == 0 {
		t.Errorf("the run proved little: %d approvals on the ledgers, %d settled by search", c.Approvals, c.Settled["search"])
	}
}
