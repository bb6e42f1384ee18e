package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/cloud"
	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/failpoint"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/journal"
	"github.com/posbridge/posbridge/internal/lan"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/terminal"
)

// FPTerminalWrote is the failpoint hit right after a payment request was
// written to the terminal, before its answer is read: the daemon dies while
// the terminal works.
const FPTerminalWrote = "terminal-wrote-request"

// daemon is posbridge serve: every part wired together. newDaemon does no
// I/O; Open starts everything (fails fast: journal locked or corrupt, port in
// use); Serve blocks; Close stops within a deadline.
type daemon struct {
	cfg     *config.Config
	log     zerolog.Logger
	journal *journal.Journal
	gateway *terminal.Gateway
	browser *lan.Browser
	svc     *payment.Service
	metrics *metrics
	server  *http.Server
	ln      net.Listener
	fatal   chan error // an outcome that could not be made durable

	stopBackground context.CancelFunc
	background     sync.WaitGroup
}

// daemonOptions are the few things a caller (serve, tests) may set beyond
// the configuration.
type daemonOptions struct {
	Logger zerolog.Logger
	// Credentials overrides secrets by terminal name (dev mode and tests);
	// otherwise they are read from each terminal's credential_file/_env.
	Credentials map[string]string
	// Listener, when set, is used instead of listening on cfg.Listen.
	Listener net.Listener
	Now      func() time.Time
}

func newDaemon(cfg *config.Config, opts daemonOptions) *daemon {
	return &daemon{cfg: cfg, log: opts.Logger, fatal: make(chan error, 1)}
}

// Open opens the journal, builds the routes, starts discovery and recovery,
// and listens. On error everything opened so far is closed again.
func (d *daemon) Open(ctx context.Context, opts daemonOptions) (err error) {
	cfg := d.cfg
	defer func() {
		if err != nil {
			d.closeParts()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	d.journal, err = journal.Open(filepath.Join(cfg.DataDir, "journal.db"), journal.Options{})
	if err != nil {
		return err
	}

	var terms []terminal.TerminalConfig
	var infos []payment.TerminalInfo
	var lanTerms []lan.Terminal
	for _, t := range cfg.Terminals {
		secret, ok := opts.Credentials[t.Name]
		if !ok {
			if secret, err = config.Secret("terminal "+t.Name, t.CredentialFile, t.CredentialEnv); err != nil {
				return err
			}
		}
		signer, err := hmac.NewSigner(hmac.Mode(t.Auth), hmac.Credential{Secret: secret, Serial: t.Serial})
		if err != nil {
			return fmt.Errorf("terminal %s: %w", t.Name, err)
		}
		tc := terminal.TerminalConfig{
			Name: t.Name, Serial: t.Serial, LANAddress: t.LANAddress,
			LAN: terminal.ClientConfig{
				Signer:          signer,
				ConnectTimeout:  cfg.Timeouts.LANConnect,
				ResponseTimeout: cfg.Timeouts.Response,
				ControlTimeout:  cfg.Timeouts.Control,
				OnWrote:         onWrote,
				Now:             opts.Now,
			},
		}
		if t.Cloud && cfg.Cloud.Environment != "off" {
			base, err := cloud.BaseURL(cfg.Cloud.Environment, t.Serial, cfg.Cloud.BaseURL)
			if err != nil {
				return fmt.Errorf("terminal %s: cloud route: %w", t.Name, err)
			}
			cc := tc.LAN
			cc.BaseURL, cc.Kind = base, terminal.Cloud
			// Across the Internet, with a TLS handshake: its own budget.
			cc.ConnectTimeout = cfg.Timeouts.Connect
			tc.Cloud = &cc
		}
		terms = append(terms, tc)
		infos = append(infos, payment.TerminalInfo{Name: t.Name, Currency: money.Currency(t.Currency)})
		lanTerms = append(lanTerms, lan.Terminal{Name: t.Name, Serial: t.Serial, Static: t.LANAddress})
	}
	d.metrics = newMetrics(version)
	d.gateway, err = terminal.NewGateway(terminal.GatewayConfig{Terminals: terms, Now: opts.Now, Observe: d.metrics.observe})
	if err != nil {
		return err
	}

	var reverser payment.Reverser
	if r := cfg.Cloud.RawAPI; r.CredentialFile != "" || r.CredentialEnv != "" {
		secret, err := config.Secret("cloud.raw_api", r.CredentialFile, r.CredentialEnv)
		if err != nil {
			return err
		}
		base, err := cloud.RawBaseURL(cfg.Cloud.Environment, r.BaseURL)
		if err != nil {
			return fmt.Errorf("cloud.raw_api: %w", err)
		}
		currencies := map[string]money.Currency{}
		for _, t := range infos {
			currencies[t.Name] = t.Currency
		}
		if reverser, err = cloud.NewRawClient(cloud.RawConfig{BaseURL: base, Credential: secret,
			Currencies: currencies, ConnectTimeout: cfg.Timeouts.Connect}); err != nil {
			return err
		}
	}

	cutoff, _ := time.Parse("15:04", cfg.Recovery.Cutoff)
	d.svc, err = payment.New(payment.Config{
		Journal:   d.journal,
		Gateway:   d.gateway,
		Reverser:  reverser,
		Terminals: infos,
		Policy: payment.Policy{
			VoidDelay: cfg.Recovery.ReverseDelay,
			Cutoff:    time.Duration(cutoff.Hour())*time.Hour + time.Duration(cutoff.Minute())*time.Minute,
			Location:  cfg.Recovery.Location(),
		},
		Recovery: payment.RecoveryConfig{
			ReverseAbandoned: cfg.Recovery.Abandoned == "reverse",
			ClaimWindow:      cfg.Recovery.ClaimWindow,
			Budget:           cfg.Recovery.Budget,
			NotFoundGrace:    cfg.Recovery.NotFoundGrace,
			BackoffMin:       cfg.Recovery.BackoffMin,
			BackoffMax:       cfg.Recovery.BackoffMax,
		},
		ResponseTimeout: cfg.Timeouts.Response,
		Fatal:           d.onFatal,
		Now:             opts.Now,
		Logger:          d.log,
		Observer:        d.metrics,
	})
	if err != nil {
		return err
	}
	if err := d.svc.Start(ctx); err != nil {
		return err
	}

	bg, stop := context.WithCancel(context.Background())
	d.stopBackground = stop
	if cfg.Discovery.Enabled && needsDiscovery(cfg) {
		d.browser = lan.New(lan.Options{
			Services:   []string{cfg.Discovery.Service},
			Domain:     cfg.Discovery.Domain,
			Interfaces: cfg.Discovery.Interfaces,
			Interval:   cfg.Discovery.Interval,
			Terminals:  lanTerms,
			Store:      lan.NewStore(cfg.DataDir),
			OnUpdate:   d.onLANUpdate,
			Logger:     d.log.With().Str(logComponent, "lan").Logger(),
		})
		if err := d.browser.Open(); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
	}
	d.background.Add(1)
	go func() { defer d.background.Done(); d.probeLAN(bg) }()

	d.ln = opts.Listener
	if d.ln == nil {
		if d.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	handler, err := d.handler(listenerPort(d.ln))
	if err != nil {
		return err
	}
	d.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A blocking payment may take the whole response timeout.
		WriteTimeout:   cfg.Timeouts.Response + cfg.API.MaxWait + 30*time.Second,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	d.log.Info().Str("listen", d.ln.Addr().String()).Str("data_dir", cfg.DataDir).
		Int("terminals", len(cfg.Terminals)).Msg("posbridge ready")
	return nil
}

// onWrote is the terminal client's hook after a request is written: a
// failpoint for crash tests (compiled out of normal builds). The hook is
// httptrace's WroteRequest, which net/http calls before it flushes its
// write buffer to the socket: killing the process inside it would kill it
// before a small request left it. So the failpoint fires a moment later,
// once the flush that follows the hook has handed the request to the
// kernel (and long before a charge's answer: the customer is paying).
func onWrote(terminal.Endpoint) {
	if failpoint.Enabled {
		go func() { time.Sleep(50 * time.Millisecond); failpoint.Inject(FPTerminalWrote) }()
	}
}

func needsDiscovery(cfg *config.Config) bool {
	for _, t := range cfg.Terminals {
		if t.LANAddress == "" {
			return true
		}
	}
	return false
}

// onLANUpdate hands an address found by discovery (or remembered) to the
// gateway. lan does not import terminal: this is where they meet. A new
// address is assumed up, so a terminal that moved (DHCP) is followed by the
// next operation.
func (d *daemon) onLANUpdate(u lan.Update) {
	if u.Name == "" {
		return
	}
	var prev string
	for _, st := range d.gateway.Status() {
		if st.Name == u.Name {
			prev = st.LANAddress
		}
	}
	if err := d.gateway.SetLANAddress(u.Name, u.Address); err != nil {
		d.log.Warn().Err(err).Str("terminal", u.Name).Msg("lan address")
		return
	}
	d.log.Info().Str("terminal", u.Name).Str("address", u.Address).Str("previous", prev).
		Str("source", string(u.Source)).Msg("lan address")
	d.svc.Kick()
}

// probeLAN runs every discovery.probe_interval until ctx ends. It probes the
// LAN route of every terminal whose LAN is down (a TCP connect bounded by
// timeouts.lan_connect, all terminals at once) and hands the result to the
// gateway, which fails back when the current address connects and keeps the
// probe's round trip. While some discovered LAN stays down it also asks
// discovery to browse again, since the terminal may have moved (DHCP) and
// zeroconf reports an instance only once per browse: at once, then at
// intervals doubling up to discovery.interval (RFC 6762 §5.2 asks continuous
// queries to back off).
func (d *daemon) probeLAN(ctx context.Context) {
	t := time.NewTicker(d.cfg.Discovery.ProbeInterval)
	defer t.Stop()
	var (
		nextRescan time.Time
		rescanWait time.Duration // 0 while every LAN is up
	)
	probe := func(st terminal.TerminalStatus) {
		pctx, cancel := context.WithTimeout(ctx, d.cfg.Timeouts.LANConnect)
		start := time.Now()
		err := lan.Probe(pctx, st.LANAddress)
		rtt := time.Since(start)
		cancel()
		if ctx.Err() != nil {
			return // stopping: says nothing about the LAN
		}
		if d.gateway.NoteLANProbe(st.Name, st.LANAddress, rtt, err) {
			d.log.Info().Str("terminal", st.Name).Str("address", st.LANAddress).Dur("probe_round_trip", rtt).
				Msg("lan route is back: failing back")
			d.svc.Kick()
		} else if err != nil {
			d.log.Debug().Err(err).Str("terminal", st.Name).Msg("lan route still down")
		}
	}
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		var down []terminal.TerminalStatus
		for _, st := range d.gateway.Status() {
			if !st.LANUp && st.LANAddress != "" {
				down = append(down, st)
			}
		}
		var wg sync.WaitGroup
		for _, st := range down {
			wg.Add(1)
			go func() { defer wg.Done(); probe(st) }()
		}
		wg.Wait()

		lost := false // a discovered (not static) LAN still down
		for _, st := range d.gateway.Status() {
			if d.browser == nil || st.LANUp || st.LANAddress == "" {
				continue
			}
			if bs, ok := d.browser.Lookup(st.Serial); ok && bs.Source != lan.SourceStatic {
				lost = true
			}
		}
		switch {
		case !lost:
			rescanWait = 0
		case rescanWait == 0 || !now.Before(nextRescan):
			d.browser.Rescan()
			rescanWait = min(max(2*rescanWait, d.cfg.Discovery.ProbeInterval), d.cfg.Discovery.Interval)
			nextRescan = now.Add(rescanWait)
			d.log.Debug().Dur("next_in", rescanWait).Msg("lan route down: browsing DNS-SD again")
		}
	}
}

// onFatal is payment.Config.Fatal: an outcome the terminal gave could not be
// made durable. The daemon must stop (no fsync retry); recovery settles the
// payment after the restart.
func (d *daemon) onFatal(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// Serve answers the API until ctx ends or an outcome cannot be made
// durable; then it closes everything.
func (d *daemon) Serve(ctx context.Context, notify notifier) error {
	errc := make(chan error, 1)
	go func() { errc <- d.server.Serve(d.ln) }()
	notify.Ready()
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go notify.Watchdog(wctx, func() bool { return d.journal.Err() == nil })

	var runErr error
	drain := true
	select {
	case <-ctx.Done():
		d.log.Info().Msg("stopping: signal")
	case err := <-d.fatal:
		// No fsync retry and no draining: the journal refuses writes now, and
		// recovery settles every unfinished payment after the restart.
		runErr, drain = err, false
		d.log.Error().Err(err).Msg("stopping at once: an outcome could not be made durable")
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("serve: %w", err)
		}
	}
	notify.Stopping()
	stopWatchdog()
	return errors.Join(runErr, d.close(drain))
}

// Close stops the API (waiting for running calls to reach their durable
// outcome, up to the response timeout), recovery, discovery and the journal.
func (d *daemon) Close() error { return d.close(true) }

// close stops everything; without drain it does not wait for running calls.
func (d *daemon) close(drain bool) error {
	wait := d.cfg.Timeouts.Response + 10*time.Second
	if !drain {
		wait = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var errs []error
	if d.server != nil {
		if !drain {
			_ = d.server.Close()
		} else if err := d.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("api: %w", err))
		}
	}
	if d.svc != nil {
		if err := d.svc.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, d.closeParts())
	return errors.Join(errs...)
}

// closeParts closes what Open opened besides the API and the service.
func (d *daemon) closeParts() error {
	var errs []error
	if d.server == nil && d.ln != nil {
		_ = d.ln.Close()
	}
	if d.stopBackground != nil {
		d.stopBackground()
		d.background.Wait()
	}
	if d.browser != nil {
		errs = append(errs, d.browser.Close())
	}
	if d.journal != nil {
		errs = append(errs, d.journal.Close())
	}
	return errors.Join(errs...)
}
