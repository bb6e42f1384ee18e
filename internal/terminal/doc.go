// Package terminal speaks the Kushki ONE Payment API: it signs and sends the
// ten operations to one terminal over one route (Client), reads the answers
// into payment results with a conservative classification (Classify), tells
// "never reached the terminal" apart from "may have reached it"
// (TransportError), keeps card numbers out of everything it hands back, and
// reaches named terminals LAN first with the cloud as fallback (Gateway, the
// payment.Gateway of the daemon).
//
// It is not the payment lifecycle: it never retries an operation whose
// outcome is unknown, never writes the journal, and never decides what to do
// about an unknown outcome (internal/payment does). It does not discover
// terminals either: discovery hands addresses to Gateway.SetLANAddress.
package terminal
