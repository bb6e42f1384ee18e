package main

import (
	"context"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// notifier speaks the sd_notify protocol when the daemon runs under systemd
// (NOTIFY_SOCKET set) and does nothing otherwise.
type notifier struct{ log zerolog.Logger }

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn().Err(err).Str("state", state).Msg("sd_notify")
	}
}

// Ready tells systemd the daemon is serving (Type=notify).
func (n notifier) Ready() { n.send(sd.SdNotifyReady) }

// Stopping tells systemd the daemon is shutting down.
func (n notifier) Stopping() { n.send(sd.SdNotifyStopping) }

// Watchdog pings systemd's watchdog at half its interval until ctx ends, as
// long as healthy reports true: a wedged daemon stops pinging and systemd
// restarts it. It returns at once when no watchdog is configured.
func (n notifier) Watchdog(ctx context.Context, healthy func() bool) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy() {
				n.send(sd.SdNotifyWatchdog)
			}
		}
	}
}
