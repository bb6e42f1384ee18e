package terminal

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/payment"
)

// Defaults of ClientConfig.
const (
	// DefaultConnectTimeout bounds getting a connection: dial, proxy CONNECT
	// and TLS handshake.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultResponseTimeout bounds a blocking payment operation. /sync/charge
	// waits for the customer: clients in the field wait about 90–95 s
	// (research/kushki-one.md §5), Adyen asks for a status check after 120 s
	// (research/anchors-reliability.md §2.1).
	DefaultResponseTimeout = 120 * time.Second
	// DefaultControlTimeout bounds abort and the searches (a third-party
	// client uses 10 s for abort; research §5).
	DefaultControlTimeout = 15 * time.Second
)

// MaxAnswer is the most of an answer body a Client reads; a longer answer
// is an error (an unclear outcome on a payment operation).
const MaxAnswer = 1 << 20

// ClientConfig configures a Client. Zero durations take the defaults.
type ClientConfig struct {
	// BaseURL is the route's base: LAN "http://{ip}:6868/terminal/v1"
	// (LANBaseURL), cloud "https://…/terminal/v1/{serial}" (CloudBaseURL).
	BaseURL string
	// Kind is LAN or Cloud: it picks the paths and methods (Path).
	Kind Kind
	// Signer signs (and maybe encrypts) every request; required.
	Signer hmac.Signer

	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	ControlTimeout  time.Duration

	// TLSConfig is used for https base URLs; nil means the system roots and
	// TLS 1.2 at least.
	TLSConfig *tls.Config
	// Proxy picks a proxy for the cloud route; nil means
	// http.ProxyFromEnvironment. The LAN route never uses a proxy.
	Proxy func(*http.Request) (*url.URL, error)
	// DialContext replaces the default dialer (tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
	// OnWrote, when set, is called when net/http reports the request
	// written (httptrace WroteRequest), before the answer is read. net/http
	// calls it just before it flushes its buffer to the socket, so a small
	// request may not have left the process yet: a crash test that kills at
	// this point must wait a moment first (cmd/posbridge does). It must not
	// block.
	OnWrote func(Endpoint)
}

// LANBaseURL returns the LAN base URL of a terminal at hostport
// ("192.0.2.10:6868"): http://{hostport}/terminal/v1 (research §1).
func LANBaseURL(hostport string) string { return "http://" + hostport + "/terminal/v1" }

// CloudBaseURL returns the cloud base URL of a terminal: root is
// "https://cloudt.kushkipagos.com/terminal/v1" (production) or
// "https://uat-cloudt.kushkipagos.com/terminal/v1" (UAT); the serial is
// appended as a path segment (research §1).
func CloudBaseURL(root, serial string) string {
	return strings.TrimRight(root, "/") + "/" + url.PathEscape(serial)
}

// Client sends Payment API requests to one terminal over one route. It is
// safe for concurrent use; it holds no connection between requests.
//
// Every request gets a fresh connection (DisableKeepAlives), so the line
// between "not sent" and "outcome unknown" is exactly "was a connection to
// this request obtained" (httptrace GotConn): a stale pooled connection, the
// only case where Go's Transport silently re-sends a request, can never
// occur. For the same reason HTTP/2 is off (it has its own retry rules) and
// no Idempotency-Key header is ever set: net/http treats a POST carrying one
// as replayable.
type Client struct {
	base    string
	kind    Kind
	route   payment.Route
	signer  hmac.Signer
	connect time.Duration
	respond time.Duration
	control time.Duration
	now     func() time.Time
	onWrote func(Endpoint)
	http    *http.Client
}

// NewClient returns a Client for cfg. It fails on a base URL that is not
// absolute http(s), an unknown Kind, a nil Signer or a negative timeout. It
// does no I/O.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("terminal: base url %q is not an absolute http(s) url", cfg.BaseURL)
	}
	if cfg.Kind != LAN && cfg.Kind != Cloud {
		return nil, fmt.Errorf("terminal: unknown route kind %q", cfg.Kind)
	}
	if cfg.Signer == nil {
		return nil, errors.New("terminal: no signer")
	}
	if cfg.ConnectTimeout < 0 || cfg.ResponseTimeout < 0 || cfg.ControlTimeout < 0 {
		return nil, errors.New("terminal: negative timeout")
	}
	c := &Client{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		kind:    cfg.Kind,
		route:   routeOf(cfg.Kind),
		signer:  cfg.Signer,
		connect: orDefault(cfg.ConnectTimeout, DefaultConnectTimeout),
		respond: orDefault(cfg.ResponseTimeout, DefaultResponseTimeout),
		control: orDefault(cfg.ControlTimeout, DefaultControlTimeout),
		now:     cfg.Now,
		onWrote: cfg.OnWrote,
	}
	if c.now == nil {
		c.now = time.Now
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// net/http detaches the dial from the request's cancellation;
			// this keeps a dial from outliving the connect budget, which
			// the timer in exchange enforces for the request itself.
			ctx, cancel := context.WithTimeout(ctx, c.connect)
			defer cancel()
			return dial(ctx, network, addr)
		},
		TLSHandshakeTimeout:    c.connect,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		Protocols:              new(http.Protocols),
	}
	tr.Protocols.SetHTTP1(true)
	if u.Scheme == "https" {
		if cfg.TLSConfig != nil {
			tr.TLSClientConfig = cfg.TLSConfig.Clone()
		} else {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	if cfg.Kind == Cloud {
		tr.Proxy = cfg.Proxy
		if tr.Proxy == nil {
			tr.Proxy = http.ProxyFromEnvironment
		}
	}
	c.http = &http.Client{
		Transport: tr,
		// A redirect is not an answer; following one would send the
		// operation somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func routeOf(k Kind) payment.Route {
	if k == Cloud {
		return payment.RouteCloud
	}
	return payment.RouteLAN
}

// The payment operations. Each sends its request and waits up to the
// response timeout, then returns Classify's reading of the answer, with
// Route set on the Result and on the errors. Transport failures are
// *TransportError (payment.ErrNotSent or payment.ErrOutcomeUnknown).

// Charge runs /sync/charge.
func (c *Client) Charge(ctx context.Context, req ChargeRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointCharge, req)
}

// Authorization runs /sync/authorization (a pre-authorization).
func (c *Client) Authorization(ctx context.Context, req AuthorizationRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointAuthorization, req)
}

// Capture runs /sync/capture.
func (c *Client) Capture(ctx context.Context, req CaptureRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointCapture, req)
}

// ReAuthorization runs /sync/re_authorization.
func (c *Client) ReAuthorization(ctx context.Context, req ReAuthorizationRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointReAuthorization, req)
}

// PosTip runs /sync/pos_tip.
func (c *Client) PosTip(ctx context.Context, req PosTipRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointPosTip, req)
}

// Void runs /sync/void.
func (c *Client) Void(ctx context.Context, req VoidRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointVoid, req)
}

// Refund runs /sync/refund.
func (c *Client) Refund(ctx context.Context, req RefundRequest) (*payment.Result, error) {
	return c.pay(ctx, EndpointRefund, req)
}

func (c *Client) pay(ctx context.Context, e Endpoint, req any) (*payment.Result, error) {
	status, answer, err := c.exchange(ctx, e, encodeCompact(req), c.respond)
	if err != nil {
		return nil, err
	}
	res, err := Classify(status, answer)
	if err != nil {
		return nil, stamp(err, e, c.route)
	}
	res.Route = c.route
	return res, nil
}

// Abort cancels the transaction in progress: GET /sync/abort without a body
// on the LAN, POST with {} on the cloud (research §1). It waits up to the
// control timeout. It returns nil when something was aborted, a
// *NothingToAbortError (payment.ErrNothingToAbort) on 409, and otherwise the
// errors of the payment operations.
func (c *Client) Abort(ctx context.Context) error {
	method, _ := Path(c.kind, EndpointAbort)
	var body []byte
	if method != http.MethodGet {
		body = []byte("{}")
	}
	status, answer, err := c.exchange(ctx, EndpointAbort, body, c.control)
	if err != nil {
		return err
	}
	return stamp(classifyAbort(status, answer), EndpointAbort, c.route)
}

// SearchLocal runs transaction_search_local, the terminal's own history. It
// refuses, sending nothing, a request that filters on transaction_type (the
// local search does not support it; seeds) or asks for more than
// MaxSearchSize items.
func (c *Client) SearchLocal(ctx context.Context, req SearchRequest) (*SearchResponse, error) {
	return c.searchTyped(ctx, EndpointSearchLocal, req)
}

// SearchOnline runs transaction_search_online, the acquirer's history.
func (c *Client) SearchOnline(ctx context.Context, req SearchRequest) (*SearchResponse, error) {
	return c.searchTyped(ctx, EndpointSearchOnline, req)
}

func (c *Client) searchTyped(ctx context.Context, e Endpoint, req SearchRequest) (*SearchResponse, error) {
	body, err := c.search(ctx, e, req)
	if err != nil {
		return nil, err
	}
	var resp SearchResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("terminal: %s %s: decode answer: %w", c.route, e, err)
	}
	for i := range resp.Items {
		if m := resp.Items[i].MaskedCard; m != "" && !maskedPAN(m) {
			resp.Items[i].MaskedCard = ""
		}
	}
	return &resp, nil
}

// search sends a search and returns the plaintext answer: a JSON document.
func (c *Client) search(ctx context.Context, e Endpoint, req SearchRequest) ([]byte, error) {
	if e == EndpointSearchLocal && req.Filters.TransactionType != "" {
		return nil, fmt.Errorf("terminal: %s: the local search does not filter on transaction_type", e)
	}
	if req.Size > MaxSearchSize || req.Size < 0 || req.Page < 0 {
		return nil, fmt.Errorf("terminal: %s: page %d size %d out of range (size ≤ %d)", e, req.Page, req.Size, MaxSearchSize)
	}
	status, answer, err := c.exchange(ctx, e, encodeCompact(req), c.control)
	if err != nil {
		return nil, err
	}
	body, err := classifySearch(status, answer)
	return body, stamp(err, e, c.route)
}

// errConnectTimeout is the cause of a request cancelled because no
// connection came within the connect timeout.
var errConnectTimeout = errors.New("connect timeout")

// exchange signs and sends one request and reads its answer, decrypted. An
// error is a *TransportError or, for an answer that cannot be read, an
// *UnclearAnswerError.
func (c *Client) exchange(ctx context.Context, e Endpoint, payload []byte, timeout time.Duration) (int, []byte, error) {
	method, path := Path(c.kind, e)
	notSent := func(err error) error {
		return &TransportError{Endpoint: e, Route: c.route, Sent: false, Err: err}
	}
	sealed, err := c.signer.Seal(method, payload, c.now())
	if err != nil {
		return 0, nil, notSent(fmt.Errorf("sign: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, cancelConnect := context.WithCancelCause(ctx)
	defer cancelConnect(nil)

	// connected turns true once net/http hands this request a connection:
	// from then on, any failure may come after the terminal read the request.
	var connected atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil && c.onWrote != nil {
				c.onWrote(e)
			}
		},
	}
	// One budget for dial, proxy CONNECT and TLS handshake together.
	connectTimer := time.AfterFunc(c.connect, func() {
		if !connected.Load() {
			cancelConnect(errConnectTimeout)
		}
	})
	defer connectTimer.Stop()

	var body io.Reader
	if sealed.Body != nil {
		body = bytes.NewReader(sealed.Body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, c.base+path, body)
	if err != nil {
		return 0, nil, notSent(fmt.Errorf("build request: %w", err))
	}
	for k, vs := range sealed.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if sealed.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "posbridge")

	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, e, connected.Load(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return 0, nil, c.transportError(ctx, e, true, fmt.Errorf("read answer: %w", err))
	}
	if len(raw) > MaxAnswer {
		return 0, nil, &UnclearAnswerError{Endpoint: e, Route: c.route, HTTPStatus: resp.StatusCode,
			Reason: "answer longer than 1 MiB"}
	}
	plain, err := sealed.Open(raw)
	if err != nil {
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			// A refusal is a refusal even when its body cannot be read.
			return resp.StatusCode, raw, nil
		}
		return 0, nil, &UnclearAnswerError{Endpoint: e, Route: c.route, HTTPStatus: resp.StatusCode,
			Reason: "cannot decrypt the answer: " + err.Error(), Raw: scrubJSON(raw, MaxRaw)}
	}
	return resp.StatusCode, plain, nil
}

// transportError names what went wrong, sent or not.
func (c *Client) transportError(ctx context.Context, e Endpoint, sent bool, err error) error {
	switch cause := context.Cause(ctx); {
	case !sent && (cause == errConnectTimeout || (cause == nil && errors.Is(err, context.DeadlineExceeded))):
		// The connect budget ran out: our timer, or the dial's own guard.
		err = fmt.Errorf("no connection within %s: %w", c.connect, err)
	case errors.Is(cause, context.DeadlineExceeded) && sent:
		err = fmt.Errorf("no complete answer within the deadline: %w", err)
	}
	return &TransportError{Endpoint: e, Route: c.route, Sent: sent, Err: err}
}
