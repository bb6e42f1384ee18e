package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// simDemoCredential is the credential of "posbridge sim" when neither
// --credential-file nor POSBRIDGE_SIM_CREDENTIAL gives one. It is public
// (printed in --help) and protects nothing: the simulator moves no money.
const simDemoCredential = "posbridge-sim-demo-credential"

// simCredentialEnv names the environment variable holding the credential.
const simCredentialEnv = "POSBRIDGE_SIM_CREDENTIAL"

const simUsage = `usage: posbridge sim [flags]

Runs a simulated Kushki ONE SmartPOS terminal: the Payment API on the LAN
paths (/terminal/v1/sync/...) and the cloud paths (/terminal/v1/{serial}/sync/...),
Kushki's raw card-present API (POST /pos/v1/transaction: Reverse and Void),
and a control API for tests under /_sim (faults, ledger, state, reset). No
real money moves. Outcomes follow Kushki's UAT test amounts: a total of 10,
40 or 50 is declined (codes 01, 04, 05), 74 is approved after a delay,
anything else is approved.

The credential (Private-Credential-Id in the hmac mode, business code in the
encrypted mode) comes from --credential-file, else from $` + simCredentialEnv + `,
else the public demo credential "` + simDemoCredential + `". It is never printed.

The simulator advertises itself by DNS-SD as _kushki-one._tcp with TXT
serial=<serial> unless --no-advertise; --iface limits the interfaces.

--demo sends one signed sample charge with posbridge's terminal client once
listening, prints the request, its signature headers and the classified
answer, and keeps serving. Ctrl-C stops.

Examples:
  posbridge sim --no-advertise --think-time 0
  curl -s localhost:6868/_sim/ledger
  curl -s -XPOST localhost:6868/_sim/faults -d '{"mode":"drop_after_approve"}'

Flags:
`

// simFlags holds the parsed command line.
type simFlags struct {
	addr, cloudAddr, serial, auth, credFile, currency, idempotency, instance string
	logLevel, logFormat                                                      string
	thinkTime, approvalPhase, delayed, voidWait                              time.Duration
	advertise, noAdvertise, encrypt, demo                                    bool
	ifaces                                                                   []string
}

// runSim implements "posbridge sim".
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("posbridge sim", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var f simFlags
	fs.StringVar(&f.addr, "addr", ":6868", "LAN listen address (the terminal's port is 6868)")
	fs.StringVar(&f.cloudAddr, "cloud-addr", "", "optional second listener standing in for the cloud route (same terminal)")
	fs.StringVar(&f.serial, "serial", "P3SIM0001", "terminal serial (cloud path segment, TXT record, encrypted-mode password)")
	fs.StringVar(&f.auth, "auth", "hmac", "authentication generation: hmac or encrypted")
	fs.StringVar(&f.credFile, "credential-file", "", "file holding the credential (default $"+simCredentialEnv+", else the demo credential)")
	fs.StringVar(&f.currency, "currency", "PEN", "terminal currency: CLP, COP (0 decimals), MXN, PEN (2 decimals)")
	fs.DurationVar(&f.thinkTime, "think-time", sim.DefaultThinkTime, "how long a charge or authorization holds the terminal (0: none)")
	fs.DurationVar(&f.approvalPhase, "approval-phase", sim.DefaultApprovalPhase, "last part of the think time in which abort no longer works (0: none)")
	fs.DurationVar(&f.delayed, "delayed-approval", sim.DefaultDelayedApproval, "extra delay of the 'approved with delay' amounts 74 and 174 (0: none)")
	fs.DurationVar(&f.voidWait, "void-wait", sim.DefaultVoidMinWait, "how long after the original a void or reverse is accepted (0: at once)")
	fs.StringVar(&f.idempotency, "idempotency", string(sim.IdempotencyReplay), "reused client_transaction_id: replay, reject or charge")
	fs.BoolVar(&f.advertise, "advertise", true, "advertise by DNS-SD")
	fs.BoolVar(&f.noAdvertise, "no-advertise", false, "do not advertise by DNS-SD")
	fs.StringArrayVar(&f.ifaces, "iface", nil, "interface to advertise on (repeatable; default: lo for a loopback --addr, else every multicast interface)")
	fs.StringVar(&f.instance, "instance", "", "DNS-SD instance name (default kushki-one-<serial>)")
	fs.BoolVar(&f.encrypt, "encrypt-responses", false, "encrypted mode: answer with encrypted bodies")
	fs.BoolVar(&f.demo, "demo", false, "send one signed sample charge once listening and print it")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every request)")
	fs.StringVar(&f.logFormat, "log-format", "auto", "auto, json or console")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, simUsage+fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "posbridge sim: %v\n\n%s%s", err, simUsage, fs.FlagUsages())
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "posbridge sim: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, credSource, err := f.config()
	if err != nil {
		fmt.Fprintf(stderr, "posbridge sim: %v\n", err)
		return exitUsage
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge sim: %v\n", err)
		return exitUsage
	}
	cfg.Logger = log.With().Str(logComponent, "sim").Logger()
	s, err := sim.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge sim: %v\n", err)
		return exitUsage
	}
	defer s.Close()

	lanLn, err := net.Listen("tcp", f.addr)
	if err != nil {
		fmt.Fprintf(stderr, "posbridge sim: listen %s: %v\n", f.addr, err)
		return exitFailure
	}
	listeners := []net.Listener{lanLn}
	var cloudLn net.Listener
	if f.cloudAddr != "" {
		if cloudLn, err = net.Listen("tcp", f.cloudAddr); err != nil {
			lanLn.Close()
			fmt.Fprintf(stderr, "posbridge sim: listen %s: %v\n", f.cloudAddr, err)
			return exitFailure
		}
		listeners = append(listeners, cloudLn)
	}
	advertised := "off"
	if f.advertise && !f.noAdvertise {
		if err := s.Advertise(lanLn.Addr()); err != nil {
			// Serving matters more than being found: carry on without it.
			log.Warn().Err(err).Msg("DNS-SD advertisement failed; serving without it (see --iface, --no-advertise)")
			advertised = "failed"
		} else {
			advertised = sim.ServiceType + " instance " + cfg.Advertise.Instance
		}
	}

	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- s.Serve(l) }()
	}
	lanBase := terminal.LANBaseURL(dialable(lanLn.Addr()))
	fmt.Fprintf(stdout, "posbridge sim: simulated Kushki ONE terminal %s (%s, %s; no real payments)\n", cfg.Serial, cfg.Auth, cfg.Currency)
	fmt.Fprintf(stdout, "  LAN route:    %s\n", lanBase)
	fmt.Fprintf(stdout, "  cloud route:  %s\n", terminal.CloudBaseURL("http://"+dialable(lanLn.Addr())+"/terminal/v1", cfg.Serial))
	if cloudLn != nil {
		fmt.Fprintf(stdout, "  cloud listener: %s\n", terminal.CloudBaseURL("http://"+dialable(cloudLn.Addr())+"/terminal/v1", cfg.Serial))
	}
	fmt.Fprintf(stdout, "  raw API:      http://%s/pos/v1/transaction\n", dialable(lanLn.Addr()))
	fmt.Fprintf(stdout, "  control:      http://%s/_sim/{ledger,state,faults,reset}\n", dialable(lanLn.Addr()))
	fmt.Fprintf(stdout, "  credential:   %s\n", credSource)
	fmt.Fprintf(stdout, "  DNS-SD:       %s\n", advertised)

	if f.demo {
		if err := simDemo(ctx, stdout, lanBase, cfg); err != nil {
			fmt.Fprintf(stderr, "posbridge sim: demo: %v\n", err)
		}
	}

	select {
	case <-ctx.Done():
		log.Info().Msg("stopping")
	case err := <-errc:
		if err != nil {
			log.Error().Err(err).Msg("serving failed")
			s.Close()
			return exitFailure
		}
	}
	if err := s.Close(); err != nil {
		log.Error().Err(err).Msg("closing")
		return exitFailure
	}
	return exitOK
}

// config turns the flags into a simulator configuration and says where the
// credential came from (never what it is).
func (f *simFlags) config() (sim.Config, string, error) {
	var cfg sim.Config
	mode := hmac.Mode(f.auth)
	if mode != hmac.ModeHMAC && mode != hmac.ModeEncrypted {
		return cfg, "", fmt.Errorf("--auth %q: want hmac or encrypted", f.auth)
	}
	idem, err := sim.ParseIdempotency(f.idempotency)
	if err != nil {
		return cfg, "", fmt.Errorf("--idempotency: %w", err)
	}
	for name, d := range map[string]time.Duration{"--think-time": f.thinkTime, "--approval-phase": f.approvalPhase,
		"--delayed-approval": f.delayed, "--void-wait": f.voidWait} {
		if d < 0 {
			return cfg, "", fmt.Errorf("%s must not be negative", name)
		}
	}
	secret, source, err := simCredential(f.credFile)
	if err != nil {
		return cfg, "", err
	}
	cfg = sim.Config{
		Serial:           f.serial,
		Auth:             mode,
		Credential:       hmac.Credential{Secret: secret, Serial: f.serial},
		EncryptResponses: f.encrypt,
		Currency:         money.Currency(strings.ToUpper(f.currency)),
		ThinkTime:        noneIfZero(f.thinkTime),
		ApprovalPhase:    noneIfZero(f.approvalPhase),
		DelayedApproval:  noneIfZero(f.delayed),
		VoidMinWait:      noneIfZero(f.voidWait),
		Idempotency:      idem,
		Advertise:        sim.Advertise{Enabled: f.advertise && !f.noAdvertise, Interfaces: f.ifaces, Instance: f.instance},
	}
	if cfg.Advertise.Instance == "" {
		cfg.Advertise.Instance = "kushki-one-" + f.serial
	}
	return cfg, source, nil
}

// noneIfZero maps a flag's 0 ("none") to sim.Config's negative ("none"; its
// zero means "default").
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// simCredential reads the credential from the file, the environment or the
// built-in demo value, and describes its source.
func simCredential(path string) (secret, source string, err error) {
	switch {
	case path != "":
		fh, err := os.Open(path)
		if err != nil {
			return "", "", fmt.Errorf("credential file: %w", err)
		}
		defer fh.Close()
		b, err := io.ReadAll(io.LimitReader(fh, 4097))
		if err != nil {
			return "", "", fmt.Errorf("credential file: %w", err)
		}
		if len(b) > 4096 {
			return "", "", fmt.Errorf("credential file %s: larger than 4 KiB", path)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", "", fmt.Errorf("credential file %s is empty", path)
		}
		return secret, "from " + path, nil
	case os.Getenv(simCredentialEnv) != "":
		return strings.TrimSpace(os.Getenv(simCredentialEnv)), "from $" + simCredentialEnv, nil
	}
	return simDemoCredential, `the public demo credential "` + simDemoCredential + `"`, nil
}

// dialable returns host:port a local client can dial for a listener address
// (the unspecified address becomes loopback).
func dialable(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		if ip.To4() != nil || ip == nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// simDemo sends one sample charge with the real terminal client and prints
// what went over the wire and how posbridge classifies the answer.
func simDemo(ctx context.Context, w io.Writer, base string, cfg sim.Config) error {
	signer, err := hmac.NewSigner(cfg.Auth, cfg.Credential)
	if err != nil {
		return err
	}
	tap := &wireTap{}
	client, err := terminal.NewClient(terminal.ClientConfig{
		BaseURL: base,
		Kind:    terminal.LAN,
		Signer:  signer,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tap.wrap(c), nil
		},
	})
	if err != nil {
		return err
	}
	total := money.MustParse("12.5")
	if places, _ := cfg.Currency.Places(); places == 0 {
		total = money.MustParse("1500")
	}
	req := terminal.ChargeRequest{
		ClientTransactionID: uuid.NewString(),
		Amount:              payment.Amount{SubtotalIVA0: total},
		Metadata:            terminal.Metadata{"reference": "demo"},
	}
	plain, _ := json.Marshal(req)
	fmt.Fprintf(w, "\ndemo: POST %s/sync/charge\n  body (plaintext): %s\n", base, plain)
	res, callErr := client.Charge(ctx, req)
	fmt.Fprintln(w, "  headers sent (signature, never the credential):")
	for _, h := range tap.headers() {
		fmt.Fprintf(w, "    %s\n", h)
	}
	if cfg.Auth == hmac.ModeEncrypted {
		fmt.Fprintf(w, "  body on the wire: %s\n", clipText(tap.body(), 120))
	}
	if callErr != nil {
		fmt.Fprintf(w, "  answer: error: %v\n", callErr)
		return nil
	}
	out, _ := json.MarshalIndent(struct {
		Status    payment.Status `json:"status"`
		Route     payment.Route  `json:"route"`
		Reference string         `json:"transaction_reference"`
		Ticket    string         `json:"ticket_number"`
		AuthCode  string         `json:"authorization_code"`
		Card      *payment.Card  `json:"card"`
		Code      string         `json:"code"`
		Message   string         `json:"message"`
	}{res.Status, res.Route, res.Reference, res.TicketNumber, res.AuthorizationCode, res.Card, res.Code, res.Message}, "  ", "  ")
	fmt.Fprintf(w, "  answer, as posbridge classifies it:\n  %s\n\n", out)
	return nil
}

// wireTap records the bytes a client writes on its connections.
type wireTap struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *wireTap) wrap(c net.Conn) net.Conn { return &tapConn{Conn: c, tap: t} }

type tapConn struct {
	net.Conn
	tap *wireTap
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.tap.mu.Lock()
	if c.tap.buf.Len() < 64<<10 {
		c.tap.buf.Write(p)
	}
	c.tap.mu.Unlock()
	return c.Conn.Write(p)
}

// headers returns the request's authentication headers as written.
func (t *wireTap) headers() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	head, _, _ := bytes.Cut(t.buf.Bytes(), []byte("\r\n\r\n"))
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "authorization", "timestamp", "content-type":
			out = append(out, line)
		}
	}
	return out
}

// body returns the request body as written.
func (t *wireTap) body() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, body, _ := bytes.Cut(t.buf.Bytes(), []byte("\r\n\r\n"))
	return string(body)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
