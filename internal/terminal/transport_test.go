package terminal

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/payment"
)

// Timeouts of the fault tests: short enough to keep the suite quick, long
// enough that a loaded machine cannot trip them on a healthy path. Nothing
// asserts how long anything took.
const (
	faultConnect  = 300 * time.Millisecond
	faultResponse = 500 * time.Millisecond
)

func charge(c *Client) error {
	_, err := c.Charge(context.Background(), ChargeRequest{ClientTransactionID: "id-1", Amount: testAmount()})
	return err
}

// wantTransport asserts err is a *TransportError with the given Sent, and
// that it matches exactly one of the two sentinels.
func wantTransport(t *testing.T, err error, sent bool) {
	t.Helper()
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("got %v (%T), want a *TransportError", err, err)
	}
	if te.Sent != sent {
		t.Fatalf("got Sent %v (%v), want %v", te.Sent, err, sent)
	}
	if errors.Is(err, payment.ErrNotSent) == sent || errors.Is(err, payment.ErrOutcomeUnknown) != sent {
		t.Fatalf("got ErrNotSent %v ErrOutcomeUnknown %v, want exactly the one for Sent %v",
			errors.Is(err, payment.ErrNotSent), errors.Is(err, payment.ErrOutcomeUnknown), sent)
	}
	if te.Endpoint != EndpointCharge {
		t.Errorf("got endpoint %q, want charge", te.Endpoint)
	}
}

func faultClient(t *testing.T, hostport string, mutate func(*ClientConfig)) *Client {
	cfg := ClientConfig{BaseURL: LANBaseURL(hostport), Kind: LAN, Signer: mustSigner(t, hmac.ModeHMAC),
		ConnectTimeout: faultConnect, ResponseTimeout: faultResponse}
	if mutate != nil {
		mutate(&cfg)
	}
	return mustClient(t, cfg)
}

func TestNotSentClosedPort(t *testing.T) {
	wantTransport(t, charge(faultClient(t, closedAddr(t), nil)), false)
}

// TestNotSentConnectTimeout: a dial that never completes (an address that
// drops SYNs) ends at the connect timeout, not sent.
func TestNotSentConnectTimeout(t *testing.T) {
	var dials atomic.Int32
	c := faultClient(t, "192.0.2.1:6868", func(cfg *ClientConfig) {
		cfg.ResponseTimeout = time.Minute // the connect budget must end it, not this
		cfg.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		}
	})
	done := make(chan error, 1)
	go func() { done <- charge(c) }()
	select {
	case err := <-done:
		wantTransport(t, err, false)
		if !strings.Contains(err.Error(), "no connection within") {
			t.Errorf("got %q, want it to name the connect timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("charge still blocked 30 s after a 300 ms connect timeout")
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("got %d dials, want 1", got)
	}
}

// TestNotSentTLSFailure: a cloud route whose certificate is not trusted never
// gets a connection.
func TestNotSentTLSFailure(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	srv.StartTLS()
	defer srv.Close()
	c := mustClient(t, ClientConfig{BaseURL: CloudBaseURL(srv.URL+"/terminal/v1", testSerial), Kind: Cloud,
		Signer: mustSigner(t, hmac.ModeHMAC), ConnectTimeout: 10 * time.Second})
	wantTransport(t, charge(c), false)
	if got := hits.Load(); got != 0 {
		t.Errorf("server handled %d requests, want 0", got)
	}

	// The same server, trusted, answers: the failure above was the handshake.
	trusted := mustClient(t, ClientConfig{BaseURL: CloudBaseURL(srv.URL+"/terminal/v1", testSerial), Kind: Cloud,
		Signer: mustSigner(t, hmac.ModeHMAC), TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	if err := charge(trusted); !errors.As(err, new(*UnclearAnswerError)) {
		t.Errorf("got %v, want the empty 200 answer read as unclear", err)
	}
}

func TestNotSentCancelledBefore(t *testing.T) {
	srv := newRawServer(t, readRequest)
	c := faultClient(t, srv.addr(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Charge(ctx, ChargeRequest{ClientTransactionID: "id-1", Amount: testAmount()})
	wantTransport(t, err, false)
}

// The unknown outcomes: a connection was obtained, then something failed.
func TestOutcomeUnknown(t *testing.T) {
	cases := []struct {
		name   string
		handle func(net.Conn)
	}{
		{"accepts and never answers", func(c net.Conn) {
			readRequest(c)
			_, _ = io.Copy(io.Discard, c) // until the client gives up
		}},
		{"reads the request and closes", readRequest},
		{"closes at once", func(net.Conn) {}},
		{"sends half a body", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"approved\":tr")
		}},
		{"sends half the headers", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Ty")
		}},
		{"sends garbage", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "\x00\x01garbage\r\n\r\n")
		}},
		{"headers then stalls", func(c net.Conn) {
			readRequest(c)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"appr")
			_, _ = io.Copy(io.Discard, c)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, tc.handle)
			var wrote atomic.Int32
			c := faultClient(t, srv.addr(), func(cfg *ClientConfig) {
				cfg.OnWrote = func(e Endpoint) {
					if e == EndpointCharge {
						wrote.Add(1)
					}
				}
			})
			wantTransport(t, charge(c), true)
			srv.Close()
			if got := srv.accepted(); got != 1 {
				t.Errorf("server accepted %d connections, want 1 (no silent retry)", got)
			}
			if got := wrote.Load(); got > 1 {
				t.Errorf("OnWrote called %d times, want at most 1", got)
			}
		})
	}
}

// TestOnWrote: the crash-test hook runs after the request is written and
// before the answer is read.
func TestOnWrote(t *testing.T) {
	answered := make(chan struct{})
	calls := make(chan Endpoint, 4)
	var once sync.Once
	srv := newRawServer(t, func(c net.Conn) {
		readRequest(c)
		<-answered
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"approved\":true}")
	})
	c := faultClient(t, srv.addr(), func(cfg *ClientConfig) {
		cfg.ResponseTimeout = 30 * time.Second
		cfg.OnWrote = func(e Endpoint) {
			calls <- e
			once.Do(func() { close(answered) }) // the server answers only once the hook ran
		}
	})
	if err := charge(c); err != nil {
		t.Fatalf("got %v, want approval", err)
	}
	close(calls)
	var got []Endpoint
	for e := range calls {
		got = append(got, e)
	}
	if len(got) != 1 || got[0] != EndpointCharge {
		t.Errorf("got hook calls %v, want [charge]", got)
	}
}

func TestUnclearAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"500", 500, `{"type":"TERMINAL","code":"X","message":"boom"}`},
		{"503 empty", 503, ``},
		{"garbage 200", 200, `not json`},
		{"truncated but complete by length", 200, `{"approved":true,"rawResp`},
		{"over 1 MiB", 200, `{"approved":false,"pad":"` + strings.Repeat("x", MaxAnswer) + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := faultClient(t, strings.TrimPrefix(srv.URL, "http://"), func(cfg *ClientConfig) { cfg.ResponseTimeout = 30 * time.Second })
			err := charge(c)
			var ue *UnclearAnswerError
			if !errors.As(err, &ue) || !errors.Is(err, payment.ErrOutcomeUnknown) || errors.Is(err, payment.ErrNotSent) {
				t.Fatalf("got %v, want an UnclearAnswerError (outcome unknown only)", err)
			}
			if ue.HTTPStatus != tc.status || ue.Endpoint != EndpointCharge || ue.Route != payment.RouteLAN {
				t.Errorf("got status %d endpoint %q route %q, want %d charge lan", ue.HTTPStatus, ue.Endpoint, ue.Route, tc.status)
			}
			if len(ue.Raw) > MaxRaw {
				t.Errorf("got raw of %d bytes, want at most %d", len(ue.Raw), MaxRaw)
			}
		})
	}
}

// TestNoRedirect: a redirect is not followed (it would send the operation
// elsewhere) and settles nothing.
func TestNoRedirect(t *testing.T) {
	var other atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { other.Add(1) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := faultClient(t, strings.TrimPrefix(srv.URL, "http://"), nil)
	if err := charge(c); !errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Errorf("got %v, want outcome unknown", err)
	}
	if got := other.Load(); got != 0 {
		t.Errorf("redirect target got %d requests, want 0", got)
	}
}
