//go:build failpoint

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether failpoints are compiled in.
const Enabled = true

// The failpoints armed for this process, read once from the environment
// variable POSBRIDGE_FAILPOINTS: a comma-separated list of name=action, where
// action is "kill" (SIGKILL this process on the first hit) or "kill@N" (on
// the N-th hit). Example: POSBRIDGE_FAILPOINTS=after-intent-commit=kill@3.
// A hit is announced on stderr as "FAILPOINT <name>" just before the kill so
// the test harness can tell which point fired.
var armed = sync.OnceValue(func() map[string]*point {
	m := map[string]*point{}
	for _, spec := range strings.Split(os.Getenv("POSBRIDGE_FAILPOINTS"), ",") {
		name, action, ok := strings.Cut(strings.TrimSpace(spec), "=")
		if !ok || name == "" {
			continue
		}
		p := &point{at: 1}
		if n, found := strings.CutPrefix(action, "kill@"); found {
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				p.at = v
			}
		} else if action != "kill" {
			continue
		}
		m[name] = p
	}
	return m
})

type point struct {
	mu   sync.Mutex
	hits int
	at   int
}

// Inject kills the process with SIGKILL when the named failpoint is armed
// and this is the hit it waits for; otherwise it returns at once.
func Inject(name string) {
	p := armed()[name]
	if p == nil {
		return
	}
	p.mu.Lock()
	p.hits++
	fire := p.hits == p.at
	p.mu.Unlock()
	if fire {
		fmt.Fprintf(os.Stderr, "FAILPOINT %s\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; never return
	}
}
