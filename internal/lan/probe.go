package lan

import (
	"context"
	"fmt"
	"net"
	"time"
)

// DefaultProbeTimeout bounds a Probe whose context has no deadline.
const DefaultProbeTimeout = 3 * time.Second

// Probe checks that a terminal's LAN API accepts TCP connections at hostport:
// it connects and closes at once, sending nothing. The attempt ends at ctx's
// deadline, or after DefaultProbeTimeout when ctx has none.
//
// It returns nil when the connection was accepted, and otherwise the dial
// error (refused, no route, timeout, ctx's error), wrapped. It is safe for
// concurrent use.
func Probe(ctx context.Context, hostport string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultProbeTimeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return fmt.Errorf("lan: probe %s: %w", hostport, err)
	}
	c.Close()
	return nil
}
