package sim_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/money"
	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/sim"
	"github.com/posbridge/posbridge/internal/terminal"
)

// These tests drive posbridge's real terminal client (internal/terminal)
// against the simulator: the two must agree on every shape, path, signature
// and classification.

// newClient returns a terminal client for f's simulator on a route.
func (f *fixture) newClient(t *testing.T, kind terminal.Kind, signer hmac.Signer) *terminal.Client {
	t.Helper()
	host := strings.TrimPrefix(f.base, "http://")
	base := terminal.LANBaseURL(host)
	if kind == terminal.Cloud {
		base = terminal.CloudBaseURL("http://"+host+"/terminal/v1", testSerial)
	}
	if signer == nil {
		signer = f.signer
	}
	c, err := terminal.NewClient(terminal.ClientConfig{
		BaseURL: base, Kind: kind, Signer: signer, Now: f.clock.Now,
		ConnectTimeout: 10 * time.Second, ResponseTimeout: 60 * time.Second, ControlTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("terminal.NewClient: %v", err)
	}
	return c
}

func amt(v string) payment.Amount { return payment.Amount{SubtotalIVA0: money.MustParse(v)} }

func wantStatus(t *testing.T, op string, r *payment.Result, err error, want payment.Status) *payment.Result {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if r.Status != want {
		t.Fatalf("%s: status %s (%s %s), want %s", op, r.Status, r.Code, r.Message, want)
	}
	return r
}

func TestRealClientEveryOperation(t *testing.T) {
	for _, mode := range []struct {
		name    string
		auth    hmac.Mode
		encrypt bool
	}{{"hmac", hmac.ModeHMAC, false}, {"encrypted", hmac.ModeEncrypted, true}} {
		for _, kind := range []terminal.Kind{terminal.LAN, terminal.Cloud} {
			t.Run(mode.name+"/"+string(kind), func(t *testing.T) {
				f := startSim(t, func(c *sim.Config) { c.Auth, c.EncryptResponses = mode.auth, mode.encrypt })
				c := f.newClient(t, kind, nil)
				ctx := context.Background()
				route := payment.RouteLAN
				if kind == terminal.Cloud {
					route = payment.RouteCloud
				}

				chID := newID()
				ch, err := c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: chID, Amount: amt("100"),
					Metadata: terminal.Metadata{"reference": "T-1"}})
				wantStatus(t, "charge", ch, err, payment.StatusApproved)
				if ch.Route != route || len(ch.TicketNumber) != 18 || ch.AuthorizationCode == "" || ch.Code != "000" ||
					ch.Card == nil || ch.Card.Brand != "VISA" || ch.Card.Type != "credit" || ch.Card.Masked != "424242******4242" {
					t.Errorf("charge result %+v (card %+v)", ch, ch.Card)
				}
				tip := money.MustParse("5")
				r, err := c.PosTip(ctx, terminal.PosTipRequest{ClientTransactionID: newID(), TransactionReference: ch.Reference,
					Amount: payment.Amount{Tip: &tip}})
				wantStatus(t, "pos_tip", r, err, payment.StatusApproved)
				r, err = c.Refund(ctx, terminal.RefundRequest{ClientTransactionID: newID(), TransactionReference: ch.Reference,
					Amount: &payment.Amount{SubtotalIVA0: money.MustParse("30")}})
				wantStatus(t, "refund", r, err, payment.StatusApproved)

				auth, err := c.Authorization(ctx, terminal.AuthorizationRequest{ClientTransactionID: newID(), Amount: amt("200")})
				wantStatus(t, "authorization", auth, err, payment.StatusApproved)
				r, err = c.ReAuthorization(ctx, terminal.ReAuthorizationRequest{ClientTransactionID: newID(),
					TransactionReference: auth.Reference, Amount: amt("20")})
				wantStatus(t, "re_authorization", r, err, payment.StatusApproved)
				r, err = c.Capture(ctx, terminal.CaptureRequest{ClientTransactionID: newID(), TransactionReference: auth.Reference,
					Amount: amt("242")})
				wantStatus(t, "capture", r, err, payment.StatusApproved)

				small, err := c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("7")})
				wantStatus(t, "charge", small, err, payment.StatusApproved)
				f.clock.Advance(time.Minute)
				r, err = c.Void(ctx, terminal.VoidRequest{ClientTransactionID: newID(), TransactionReference: small.Reference})
				wantStatus(t, "void", r, err, payment.StatusApproved)

				d, err := c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("40")})
				wantStatus(t, "declined charge", d, err, payment.StatusDeclined)
				if d.Code != "04" {
					t.Errorf("decline code %q, want 04", d.Code)
				}

				if err := c.Abort(ctx); !errors.Is(err, payment.ErrNothingToAbort) {
					t.Errorf("abort with nothing running: %v, want ErrNothingToAbort", err)
				}
				local, err := c.SearchLocal(ctx, terminal.SearchRequest{Page: 1, Size: 10,
					Filters: terminal.SearchFilters{ClientTransactionID: chID}})
				if err != nil || local.Total != 1 || local.Items[0].TransactionReference != ch.Reference {
					t.Errorf("local search: %+v %v, want the charge", local, err)
				}
				online, err := c.SearchOnline(ctx, terminal.SearchRequest{Page: 1, Size: 500,
					Filters: terminal.SearchFilters{TransactionType: "capture"}})
				if err != nil || online.Total != 1 {
					t.Errorf("online search for captures: %+v %v, want 1", online, err)
				}

				l := f.sim.Ledger()
				// taken 100 + 5 + 242 + 7; returned 30 + 7.
				if l.Totals.Taken != money.MustParse("354") || l.Totals.Returned != money.MustParse("37") ||
					l.Totals.DoubleCharges != 0 || l.Totals.Declined != 1 {
					t.Errorf("ledger totals %+v", l.Totals)
				}
				st := f.sim.State()
				if st.AuthFailures != 0 || st.Routes[string(kind)] != st.TotalRequests {
					t.Errorf("state %+v: want every request on %s and no auth failure", st, kind)
				}
			})
		}
	}
}

func TestRealClientAbort(t *testing.T) {
	for _, kind := range []terminal.Kind{terminal.LAN, terminal.Cloud} {
		t.Run(string(kind), func(t *testing.T) {
			f := startSim(t, func(c *sim.Config) {
				c.Auth, c.ThinkTime, c.ApprovalPhase = hmac.ModeEncrypted, 30*time.Second, -1
			})
			c := f.newClient(t, kind, nil)
			type res struct {
				r   *payment.Result
				err error
			}
			done := make(chan res, 1)
			go func() {
				r, err := c.Charge(context.Background(), terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("20")})
				done <- res{r, err}
			}()
			f.timers.next(t)
			f.waitActive(t, "customer")
			if err := c.Abort(context.Background()); err != nil {
				t.Fatalf("abort: %v", err)
			}
			got := <-done
			wantStatus(t, "aborted charge", got.r, got.err, payment.StatusCancelled)
		})
	}
}

// TestRealClientClassifiesFaults checks that every fault (and the other
// unhappy answers) lands in the right class: not sent, outcome unknown,
// declined, cancelled, busy, or a terminal error.
func TestRealClientClassifiesFaults(t *testing.T) {
	type outcome int
	const (
		approved outcome = iota
		declined
		cancelled
		unknown
	)
	cases := []struct {
		fault sim.FaultMode
		total string
		want  outcome
		taken bool // money taken although the client may not know
	}{
		{sim.FaultDropBefore, "15", unknown, false},
		{sim.FaultDropAfterApprove, "15", unknown, true},
		{sim.FaultError500, "15", unknown, false},
		{sim.FaultApproveThen500, "15", unknown, true},
		{sim.FaultHang, "15", unknown, true},
		{sim.FaultSlow, "15", approved, true},
		{sim.FaultCancel, "15", cancelled, false},
		{sim.FaultLeakPAN, "15", approved, true},
		{"", "10", declined, false},
		{"", "50", declined, false},
	}
	for _, mode := range []hmac.Mode{hmac.ModeHMAC, hmac.ModeEncrypted} {
		for _, c := range cases {
			name := string(mode) + "/" + string(c.fault)
			if c.fault == "" {
				name += "decline " + c.total
			}
			t.Run(name, func(t *testing.T) {
				f := startSim(t, func(cfg *sim.Config) { cfg.Auth, cfg.EncryptResponses = mode, mode == hmac.ModeEncrypted })
				client := f.newClient(t, terminal.LAN, nil)
				if c.fault != "" {
					if err := f.sim.ArmFault(sim.Fault{Mode: c.fault}); err != nil {
						t.Fatal(err)
					}
				}
				id := newID()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				type res struct {
					r   *payment.Result
					err error
				}
				done := make(chan res, 1)
				go func() {
					r, err := client.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: id, Amount: amt(c.total)})
					done <- res{r, err}
				}()
				switch c.fault {
				case sim.FaultHang:
					f.waitTaken(t, id)
					cancel() // the POS gives up
				case sim.FaultSlow:
					f.timers.next(t).fire()
				}
				got := <-done
				switch c.want {
				case unknown:
					if !errors.Is(got.err, payment.ErrOutcomeUnknown) || errors.Is(got.err, payment.ErrNotSent) {
						t.Fatalf("got %+v %v, want an unknown outcome", got.r, got.err)
					}
				case approved:
					wantStatus(t, "charge", got.r, got.err, payment.StatusApproved)
				case declined:
					wantStatus(t, "charge", got.r, got.err, payment.StatusDeclined)
				case cancelled:
					wantStatus(t, "charge", got.r, got.err, payment.StatusCancelled)
				}
				if got.r != nil {
					if (got.r.Card != nil && strings.Contains(got.r.Card.Masked, "4242424242424242")) ||
						strings.Contains(string(got.r.Raw), "4242424242424242") {
						t.Errorf("the client kept the full card number: %+v %s", got.r.Card, got.r.Raw)
					}
				}
				e, _ := f.sim.Ledger().Entry(id)
				if (e.TimesTaken == 1) != c.taken || e.TimesTaken > 1 {
					t.Errorf("money taken %d times, want taken=%v", e.TimesTaken, c.taken)
				}
			})
		}
	}
}

func TestRealClientErrorClasses(t *testing.T) {
	f := startSim(t, func(c *sim.Config) { c.ThinkTime, c.ApprovalPhase = 30*time.Second, -1 })
	c := f.newClient(t, terminal.LAN, nil)
	ctx := context.Background()

	t.Run("not sent", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now: connection refused
		dead, err := terminal.NewClient(terminal.ClientConfig{BaseURL: terminal.LANBaseURL(addr), Kind: terminal.LAN,
			Signer: f.signer, ConnectTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dead.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("5")})
		if !errors.Is(err, payment.ErrNotSent) {
			t.Errorf("got %v, want ErrNotSent", err)
		}
	})
	t.Run("authentication", func(t *testing.T) {
		wrong, _ := hmac.NewSigner(hmac.ModeHMAC, hmac.Credential{Secret: "not-the-secret"})
		_, err := f.newClient(t, terminal.LAN, wrong).Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("5")})
		var te *payment.TerminalError
		if !errors.As(err, &te) || te.HTTPStatus != http.StatusUnauthorized || te.Type != terminal.TypeAuthentication {
			t.Errorf("got %v, want a 401 AUTHENTICATION terminal error", err)
		}
	})
	t.Run("unknown reference", func(t *testing.T) {
		_, err := c.Capture(ctx, terminal.CaptureRequest{ClientTransactionID: newID(), TransactionReference: newID(), Amount: amt("5")})
		var te *payment.TerminalError
		if !errors.As(err, &te) || te.HTTPStatus != http.StatusNotFound || te.Code != sim.CodeNoReference {
			t.Errorf("got %v, want a 404 NF-002 terminal error", err)
		}
	})
	t.Run("lifecycle refusal", func(t *testing.T) {
		done := make(chan *payment.Result, 1)
		go func() {
			r, _ := c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("9")})
			done <- r
		}()
		f.timers.next(t).fire()
		ch := <-done
		_, err := c.Void(ctx, terminal.VoidRequest{ClientTransactionID: newID(), TransactionReference: ch.Reference})
		var te *payment.TerminalError
		if !errors.As(err, &te) || te.Type != terminal.TypeAcquirer || te.Code != sim.CodeOpNotAllowed {
			t.Errorf("void under a minute: %v, want ACQUIRER E041", err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		go c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("9")})
		tm := f.timers.next(t)
		f.waitActive(t, "customer")
		_, err := c.Charge(ctx, terminal.ChargeRequest{ClientTransactionID: newID(), Amount: amt("9")})
		if !errors.Is(err, payment.ErrBusy) {
			t.Errorf("got %v, want ErrBusy", err)
		}
		tm.fire()
	})
}
