package sim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultThinkTime       = 2 * time.Second
	DefaultApprovalPhase   = 500 * time.Millisecond
	DefaultDelayedApproval = 3 * time.Second
	DefaultSlowDelay       = 3 * time.Second
	// DefaultVoidMinWait is the vendor's "wait at least 1 minute after the
	// original" (seeds/kushki-one-smartpos-payment-api.txt "Void").
	DefaultVoidMinWait = time.Minute
	// DefaultMaxBody caps a request body; a larger one is a PARAMETER error.
	DefaultMaxBody = 64 << 10
	// DefaultCurrency is the currency of a Config without one.
	DefaultCurrency = money.PEN
)

// Idempotency says what the simulator does with a client_transaction_id it
// has already processed. The vendor promises that the terminal "detects the
// duplicate and prevents double charging" (seeds, "client_transaction_id") but
// not what it answers, so the three behaviours are selectable.
type Idempotency string

// Idempotency modes.
const (
	// IdempotencyReplay (the default): the same id with the same request
	// returns the first answer again, taking no money; the same id with a
	// different request (or endpoint) is a PAR-008 error.
	IdempotencyReplay Idempotency = "replay"
	// IdempotencyReject: any reuse of an id is a PAR-008 error.
	IdempotencyReject Idempotency = "reject"
	// IdempotencyCharge: the duplicate is processed as a new payment and
	// takes money again — the worst a real terminal might do. Crash tests
	// use it to prove that posbridge never re-sends.
	IdempotencyCharge Idempotency = "charge"
)

// Advertise configures the DNS-SD advertisement of the simulator as
// _kushki-one._tcp with TXT serial=<serial> (DESIGN.md "Discovery": the vendor
// documents none; this is posbridge's convention).
type Advertise struct {
	// Enabled turns the advertisement on for ListenAndServe.
	Enabled bool
	// Instance is the DNS-SD instance name; empty means "kushki-one-<serial>".
	// (grandcat/zeroconf's browser returns names with spaces escaped as
	// "\ ", so the default has none.)
	Instance string
	// Interfaces names the network interfaces to advertise on (e.g. "lo").
	// Empty means: the loopback interface when the listener is bound to a
	// loopback address, every multicast interface otherwise. Tests must name
	// loopback or an interface of a namespace they created.
	Interfaces []string
	// Host is the host name announced with explicit addresses; empty means
	// "kushki-one-<serial>".
	Host string
}

// Card is the card the simulated customer presents.
type Card struct {
	Franchise string // VISA, MASTERCARD…
	Type      string // credit or debit: pre-authorizations last 28 or 7 days
	Masked    string // what answers carry, e.g. 424242******4242
	PAN       string // a full test number, only ever sent by the leak_pan fault
}

// DefaultCard returns the card of a Config without one: a VISA credit test
// card.
func DefaultCard() Card {
	return Card{Franchise: "VISA", Type: "credit", Masked: "424242******4242", PAN: "4242424242424242"}
}

// Config configures a Sim. The zero value of a duration means its default;
// a negative duration means none (0), as net.Dialer.KeepAlive does.
type Config struct {
	// Serial is the terminal serial (required): the cloud route's path
	// segment, the TXT record, and part of the encrypted-mode password.
	Serial string
	// Auth is the authentication generation the terminal runs; empty means
	// hmac.
	Auth hmac.Mode
	// Credential is the Private-Credential-Id (hmac) or business code
	// (encrypted). Credential.Serial may be empty; it defaults to Serial and
	// must equal it otherwise. The raw card-present API checks its header
	// Private-Credential-Id against Credential.Secret.
	Credential hmac.Credential
	// EncryptResponses makes the encrypted mode answer with encrypted bodies.
	EncryptResponses bool
	// Currency is the terminal's currency (CLP, COP, MXN, PEN); empty means
	// PEN. It fixes the decimal places an amount may carry.
	Currency money.Currency

	// ThinkTime is how long a charge or authorization holds the terminal
	// (the customer presenting the card, then the acquirer answering).
	ThinkTime time.Duration
	// ApprovalPhase is the last part of ThinkTime, after the terminal asked
	// the acquirer: an abort no longer works then. It is clipped to
	// ThinkTime.
	ApprovalPhase time.Duration
	// DelayedApproval is the extra delay of the "approved with delay" test
	// amounts (74, and a void or reverse of an original of 174).
	DelayedApproval time.Duration
	// VoidMinWait is how long after the original a void or reverse is
	// first accepted.
	VoidMinWait time.Duration
	// Location fixes the day of the same-day void and reverse rule (the
	// processor's cut-off at midnight); nil means time.Local.
	Location *time.Location
	// Now is the simulator's clock; nil means time.Now.
	Now func() time.Time
	// After waits for think times and delays; nil means time.After. Tests
	// replace it to decide when a phase ends.
	After func(time.Duration) <-chan time.Time

	// Idempotency is what a reused client_transaction_id does; empty means
	// IdempotencyReplay.
	Idempotency Idempotency
	// Card is the card presented; a zero Card means a VISA credit test card.
	Card Card
	// MaxBody caps request bodies in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// Advertise configures DNS-SD.
	Advertise Advertise
	// Logger receives one line per request (never a body, credential or
	// card number); the zero Logger discards.
	Logger zerolog.Logger
}

// resolve validates c and fills defaults. It does no I/O.
func (c Config) resolve() (Config, error) {
	if c.Serial == "" {
		return c, errors.New("sim: config: serial is required")
	}
	if strings.ContainsAny(c.Serial, "/?#% \t\r\n") {
		return c, fmt.Errorf("sim: config: serial %q cannot be a path segment", c.Serial)
	}
	if c.Auth == "" {
		c.Auth = hmac.ModeHMAC
	}
	if c.Credential.Serial == "" {
		c.Credential.Serial = c.Serial
	} else if c.Credential.Serial != c.Serial {
		return c, errors.New("sim: config: credential serial differs from serial")
	}
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	if _, ok := c.Currency.Places(); !ok {
		return c, fmt.Errorf("sim: config: unsupported currency %q", c.Currency)
	}
	c.ThinkTime = duration(c.ThinkTime, DefaultThinkTime)
	c.ApprovalPhase = min(duration(c.ApprovalPhase, DefaultApprovalPhase), c.ThinkTime)
	c.DelayedApproval = duration(c.DelayedApproval, DefaultDelayedApproval)
	c.VoidMinWait = duration(c.VoidMinWait, DefaultVoidMinWait)
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	switch c.Idempotency {
	case "":
		c.Idempotency = IdempotencyReplay
	case IdempotencyReplay, IdempotencyReject, IdempotencyCharge:
	default:
		return c, fmt.Errorf("sim: config: unknown idempotency mode %q", c.Idempotency)
	}
	if c.Card == (Card{}) {
		c.Card = DefaultCard()
	}
	if !strings.Contains(c.Card.Masked, "*") {
		return c, errors.New("sim: config: card.masked must be masked")
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Advertise.Instance == "" {
		c.Advertise.Instance = "kushki-one-" + c.Serial
	}
	if c.Advertise.Host == "" {
		c.Advertise.Host = "kushki-one-" + strings.ToLower(c.Serial)
	}
	for _, name := range c.Advertise.Interfaces {
		if name == "" {
			return c, errors.New("sim: config: empty interface name")
		}
	}
	return c, nil
}

// duration maps 0 to def and a negative value to 0.
func duration(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// ParseIdempotency parses a mode name as the command line gives it.
func ParseIdempotency(s string) (Idempotency, error) {
	switch m := Idempotency(s); m {
	case IdempotencyReplay, IdempotencyReject, IdempotencyCharge:
		return m, nil
	}
	return "", fmt.Errorf("sim: unknown idempotency mode %q (want replay, reject or charge)", s)
}

// interfacesByName resolves interface names. It reads the host's interface
// table, so it is called only when advertising starts.
func interfacesByName(names []string) ([]net.Interface, error) {
	out := make([]net.Interface, 0, len(names))
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("sim: interface %q: %w", n, err)
		}
		out = append(out, *ifi)
	}
	return out, nil
}
