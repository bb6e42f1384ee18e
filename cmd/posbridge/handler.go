package main

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/posbridge/posbridge/internal/api"
	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/payment"
)

// handler builds the local REST API over the daemon's parts, for the port
// the daemon listens on.
func (d *daemon) handler(port int) (http.Handler, error) {
	var token string
	if d.cfg.API.TokenFile != "" || d.cfg.API.TokenEnv != "" {
		var err error
		if token, err = config.Secret("api token", d.cfg.API.TokenFile, d.cfg.API.TokenEnv); err != nil {
			return nil, err
		}
	}
	d.metrics.watch(d)
	return api.New(api.Config{
		Service:        d.svc,
		Terminals:      d.terminalStatus,
		JournalCheck:   d.journalCheck,
		Metrics:        d.metrics.handler(),
		Port:           port,
		AllowedHosts:   d.cfg.API.AllowedHosts,
		AllowedOrigins: d.cfg.API.AllowedOrigins,
		Token:          token,
		MaxBodyBytes:   d.cfg.API.MaxBodyBytes,
		MaxWait:        d.cfg.API.MaxWait,
		Logger:         d.log,
	})
}

// terminalStatus adapts the gateway's route health to the API's view.
func (d *daemon) terminalStatus() []api.TerminalStatus {
	var out []api.TerminalStatus
	for _, s := range d.gateway.Status() {
		ts := api.TerminalStatus{Name: s.Name, Serial: s.Serial, Route: s.Route, LastError: s.LastError,
			LAN:   api.LANStatus{Address: s.LANAddress, Up: s.LANUp, LastSeen: s.LastSeen},
			Cloud: api.CloudStatus{Enabled: s.Cloud}}
		if rt, ok := s.RoundTrip[payment.RouteLAN]; ok {
			ms := rt.Milliseconds()
			ts.LAN.LastRoundTripMS = &ms
		}
		if rt, ok := s.RoundTrip[payment.RouteCloud]; ok {
			ms := rt.Milliseconds()
			ts.Cloud.LastRoundTripMS = &ms
		}
		out = append(out, ts)
	}
	return out
}

// journalCheck is readiness's view of the journal: it must be open and
// still taking writes (a commit failure stops writes until a restart).
func (d *daemon) journalCheck(ctx context.Context) error {
	if err := d.journal.Err(); err != nil {
		return err
	}
	if _, err := d.journal.Get(ctx, "readiness-probe"); err != nil && !errors.Is(err, payment.ErrNotFound) {
		return err
	}
	return nil
}

func listenerPort(ln net.Listener) int {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
