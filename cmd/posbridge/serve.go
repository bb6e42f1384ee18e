package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/config"
	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/sim"
)

const serveUsage = `usage: posbridge serve [flags]

Runs the daemon: the local REST API (default 127.0.0.1:8740), the journal in
data_dir, the routes to the terminals (LAN by DNS-SD or a static address,
cloud as fallback) and the recovery of unknown outcomes. Under systemd it
reports READY=1 once all of that is open, pings the watchdog, and drains
running payments on SIGTERM. A second signal stops it at once.

With --dev it uses the embedded development configuration and also runs a
simulated Kushki ONE terminal on 127.0.0.1:6868 in the same process, with a
credential generated at start: try it with
  curl -s -X POST http://127.0.0.1:8740/v1/charges -H 'Content-Type: application/json' \
       -d '{"amount": {"iva": 0, "subtotal_iva": 0, "subtotal_iva0": 12.50}}'

Flags:
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	load := configFlags(fs)
	simAddr := fs.String("dev-sim-addr", "127.0.0.1:6868", "with --dev: where the simulated terminal listens")
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, serveUsage)
			fs.PrintDefaults()
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "posbridge serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, source, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "posbridge serve: %v\n", err)
		return exitFailure
	}
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge serve: %v\n", err)
		return exitFailure
	}
	log.Info().Str("config", source).Str("version", version).Msg("starting")

	opts := daemonOptions{Logger: log}
	if dev, _ := fs.GetBool("dev"); dev {
		stopSim, creds, err := startDevSim(cfg, *simAddr, log)
		if err != nil {
			log.Error().Err(err).Msg("dev simulator")
			return exitFailure
		}
		defer stopSim()
		opts.Credentials = creds
	}

	d := newDaemon(cfg, opts)
	if err := d.Open(ctx, opts); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return exitFailure
	}
	// After the first signal the daemon drains; a second one stops it at once.
	go func() {
		<-ctx.Done()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		log.Warn().Msg("second signal: stopping now")
		os.Exit(exitFailure)
	}()
	if err := d.Serve(ctx, notifier{log: log}); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return exitFailure
	}
	log.Info().Msg("stopped")
	return exitOK
}

// startDevSim runs the simulator for --dev on addr and returns the
// credential for every configured terminal (one generated secret, never
// written anywhere).
func startDevSim(cfg *config.Config, addr string, log zerolog.Logger) (stop func(), creds map[string]string, err error) {
	if len(cfg.Terminals) != 1 {
		return nil, nil, errors.New("--dev expects exactly one terminal in the configuration")
	}
	t := cfg.Terminals[0]
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return nil, nil, err
	}
	secret := hex.EncodeToString(buf)
	voidWait := cfg.Recovery.ReverseDelay
	if voidWait == 0 {
		voidWait = -1 // sim.Config: zero means its default, negative means none
	}
	s, err := sim.New(sim.Config{
		Serial:      t.Serial,
		Auth:        hmac.Mode(t.Auth),
		Credential:  hmac.Credential{Secret: secret, Serial: t.Serial},
		Currency:    money.Currency(t.Currency),
		ThinkTime:   3 * time.Second,
		VoidMinWait: voidWait,
		Logger:      log.With().Str(logComponent, "sim").Logger(),
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dev simulator: listen %s: %w", addr, err)
	}
	cfg.Terminals[0].LANAddress = ln.Addr().String()
	go func() { _ = s.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Str("serial", t.Serial).Msg("dev simulator running (simulated terminal; no real payments)")
	return func() { _ = s.Close() }, map[string]string{t.Name: secret}, nil
}
