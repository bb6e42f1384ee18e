package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/posbridge/posbridge/internal/terminal"
)

// FaultMode is how an armed fault bends the next matching request.
type FaultMode string

// Fault modes. "Processed" means the terminal ran the operation fully: the
// busy check, the think time, the rules, the decision, the money — exactly as
// without the fault; only the answer is bent.
const (
	// FaultHang: processed, but no answer until the client goes away (then
	// the connection is closed). The terminal itself is free again at once:
	// other requests are served and the searches show the outcome.
	FaultHang FaultMode = "hang"
	// FaultDropAfterApprove: processed (money taken on approval), then the
	// connection is closed without an answer.
	FaultDropAfterApprove FaultMode = "drop_after_approve"
	// FaultDropBefore: the connection is closed without processing.
	FaultDropBefore FaultMode = "drop_before"
	// FaultError500: HTTP 500 TERMINAL/TER-999 without processing.
	FaultError500 FaultMode = "error_500"
	// FaultApproveThen500: processed, then HTTP 500 TERMINAL/TER-999.
	FaultApproveThen500 FaultMode = "approve_then_500"
	// FaultSlow: processed, answered after Delay (default DefaultSlowDelay).
	FaultSlow FaultMode = "slow"
	// FaultCancel: the customer cancels: HTTP 200
	// {"type":"TERMINAL-SUNMI","code":"-1","message":"User cancel the process"}
	// after the customer phase; nothing charged, a CANCELLED item in the
	// local history. Payment endpoints only.
	FaultCancel FaultMode = "cancel"
	// FaultLeakPAN: processed, and the answer carries the full test card
	// number where the masked one belongs (card-safety tests). Payment and
	// search endpoints only.
	FaultLeakPAN FaultMode = "leak_pan"
)

// EndpointRaw names the raw card-present API (POST /pos/v1/transaction) in
// Fault.Endpoints and in State.Requests.
const EndpointRaw = "pos_transaction"

// Fault is a fault armed for the next Count requests to its endpoints.
type Fault struct {
	Mode FaultMode
	// Count is how many matching requests the fault still bends; ArmFault
	// treats 0 as 1.
	Count int
	// Endpoints limits the fault to these endpoint names (terminal endpoint
	// names such as "charge" or "transaction_search_local", or
	// EndpointRaw). Empty means the seven payment endpoints: charge,
	// authorization, capture, re_authorization, pos_tip, void, refund.
	Endpoints []string
	// Delay is the slow fault's delay; 0 means DefaultSlowDelay.
	Delay time.Duration
}

// faultJSON is Fault on the wire: {"mode":"slow","count":2,
// "endpoints":["charge"],"delay":"1.5s"}.
type faultJSON struct {
	Mode      FaultMode `json:"mode"`
	Count     int       `json:"count,omitempty"`
	Endpoints []string  `json:"endpoints,omitempty"`
	Delay     string    `json:"delay,omitempty"`
}

// MarshalJSON writes the delay as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Mode: f.Mode, Count: f.Count, Endpoints: f.Endpoints}
	if f.Delay != 0 {
		j.Delay = f.Delay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the wire form strictly: unknown fields and a delay
// that is not a Go duration ("250ms", "2s") are errors.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	var d time.Duration
	if j.Delay != "" {
		var err error
		if d, err = time.ParseDuration(j.Delay); err != nil {
			return fmt.Errorf("fault: delay: %w", err)
		}
	}
	*f = Fault{Mode: j.Mode, Count: j.Count, Endpoints: j.Endpoints, Delay: d}
	return nil
}

func paymentEndpoint(name string) bool {
	switch terminal.Endpoint(name) {
	case terminal.EndpointCharge, terminal.EndpointAuthorization, terminal.EndpointCapture,
		terminal.EndpointReAuthorization, terminal.EndpointPosTip, terminal.EndpointVoid, terminal.EndpointRefund:
		return true
	}
	return false
}

func knownEndpoint(name string) bool {
	switch terminal.Endpoint(name) {
	case terminal.EndpointAbort, terminal.EndpointSearchLocal, terminal.EndpointSearchOnline:
		return true
	}
	return name == EndpointRaw || paymentEndpoint(name)
}

// validate checks f and fills its defaults.
func (f *Fault) validate() error {
	switch f.Mode {
	case FaultHang, FaultDropAfterApprove, FaultDropBefore, FaultError500, FaultApproveThen500,
		FaultSlow, FaultCancel, FaultLeakPAN:
	default:
		return fmt.Errorf("sim: unknown fault mode %q", f.Mode)
	}
	if f.Count < 0 {
		return fmt.Errorf("sim: fault count %d is negative", f.Count)
	}
	if f.Count == 0 {
		f.Count = 1
	}
	if f.Delay < 0 {
		return fmt.Errorf("sim: fault delay %s is negative", f.Delay)
	}
	if f.Mode == FaultSlow && f.Delay == 0 {
		f.Delay = DefaultSlowDelay
	}
	for _, e := range f.Endpoints {
		if !knownEndpoint(e) {
			return fmt.Errorf("sim: unknown endpoint %q", e)
		}
		switch {
		case f.Mode == FaultCancel && !paymentEndpoint(e):
			return fmt.Errorf("sim: the cancel fault applies only to payment endpoints, not %q", e)
		case f.Mode == FaultLeakPAN && !paymentEndpoint(e) && e != string(terminal.EndpointSearchLocal) &&
			e != string(terminal.EndpointSearchOnline):
			return fmt.Errorf("sim: the leak_pan fault applies only to payment and search endpoints, not %q", e)
		}
	}
	f.Endpoints = append([]string(nil), f.Endpoints...)
	return nil
}

func (f *Fault) matches(endpoint string) bool {
	if len(f.Endpoints) == 0 {
		return paymentEndpoint(endpoint)
	}
	for _, e := range f.Endpoints {
		if e == endpoint {
			return true
		}
	}
	return false
}

// ArmFault arms f for the next f.Count requests to its endpoints. Faults are
// taken in the order they were armed; a request takes at most one. It fails
// for an unknown mode or endpoint, a negative count or delay, or a mode that
// does not apply to a named endpoint.
func (s *Sim) ArmFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
	return nil
}

// Faults returns the armed faults with their remaining counts.
func (s *Sim) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultsLocked()
}

func (s *Sim) faultsLocked() []Fault {
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		c := *f
		c.Endpoints = append([]string(nil), f.Endpoints...)
		out = append(out, c)
	}
	return out
}

// ClearFaults disarms every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault consumes one use of the first fault matching endpoint.
func (s *Sim) takeFault(endpoint string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !f.matches(endpoint) {
			continue
		}
		f.Count--
		taken := *f
		if f.Count <= 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		return &taken
	}
	return nil
}

// leakPAN puts the full test card number where the masked one is.
func leakPAN(resp []byte, c Card) []byte {
	return bytes.ReplaceAll(resp, []byte(c.Masked), []byte(c.PAN))
}
