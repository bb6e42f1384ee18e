package terminal

import (
	"net/http"

	"github.com/posbridge/posbridge/internal/payment"
)

// This file is the wire contract of the Kushki ONE Payment API as posbridge
// models it: request bodies, the answer of a payment operation, the search
// request and answer, the LinkFailure error envelope and the paths of each
// route. The simulator (internal/sim) serves exactly these shapes.
//
// Sources: seeds/kushki-one-smartpos-payment-api.txt (endpoints, amount object,
// route table), research/kushki-one.md §1 (response fields seen in third-party
// clients), §2 (error envelope), §4 (search, modelled on the raw card-present
// API's Transaction Search) and §7 (raw API response fields). Where the vendor
// is silent we chose, and say so on the field.

// Endpoint names a Payment API endpoint.
type Endpoint string

// The ten endpoints.
const (
	EndpointCharge          Endpoint = "charge"
	EndpointAuthorization   Endpoint = "authorization"
	EndpointCapture         Endpoint = "capture"
	EndpointReAuthorization Endpoint = "re_authorization"
	EndpointPosTip          Endpoint = "pos_tip"
	EndpointVoid            Endpoint = "void"
	EndpointRefund          Endpoint = "refund"
	EndpointAbort           Endpoint = "abort"
	EndpointSearchOnline    Endpoint = "transaction_search_online"
	EndpointSearchLocal     Endpoint = "transaction_search_local"
)

// EndpointFor maps a payment operation to its endpoint.
func EndpointFor(op payment.Operation) (Endpoint, bool) {
	switch op {
	case payment.OpCharge:
		return EndpointCharge, true
	case payment.OpAuthorization:
		return EndpointAuthorization, true
	case payment.OpCapture:
		return EndpointCapture, true
	case payment.OpReauthorization:
		return EndpointReAuthorization, true
	case payment.OpTip:
		return EndpointPosTip, true
	case payment.OpVoid:
		return EndpointVoid, true
	case payment.OpRefund:
		return EndpointRefund, true
	}
	return "", false
}

// Kind tells the two routes apart: they share bodies and headers but differ
// in a few paths and methods.
type Kind string

// Route kinds.
const (
	// LAN: base http://{ip}:6868/terminal/v1.
	LAN Kind = "lan"
	// Cloud: base https://cloudt.kushkipagos.com/terminal/v1/{serial}.
	Cloud Kind = "cloud"
)

// Path returns the method and the path below the route's base URL for an
// endpoint (research §1 "Base URLs and route differences"):
//   - abort is GET /sync/abort on the LAN, POST /sync/abort on the cloud;
//   - the online search is /transaction_search_online on the LAN (no /sync)
//     and /sync/transaction_search_online on the cloud;
//   - everything else is POST /sync/{endpoint} on both.
func Path(k Kind, e Endpoint) (method, path string) {
	switch {
	case e == EndpointAbort && k == LAN:
		return http.MethodGet, "/sync/abort"
	case e == EndpointSearchOnline && k == LAN:
		return http.MethodPost, "/transaction_search_online"
	}
	return http.MethodPost, "/sync/" + string(e)
}

// Metadata is passed through to the terminal. Third-party clients send
// reference, customer_email and device (research §1).
type Metadata map[string]string

// ChargeRequest is the body of /charge.
type ChargeRequest struct {
	ClientTransactionID string         `json:"client_transaction_id"`
	Amount              payment.Amount `json:"amount"`
	Metadata            Metadata       `json:"metadata,omitempty"`
}

// AuthorizationRequest is the body of /authorization (a pre-authorization).
type AuthorizationRequest struct {
	ClientTransactionID string         `json:"client_transaction_id"`
	Amount              payment.Amount `json:"amount"`
	Metadata            Metadata       `json:"metadata,omitempty"`
}

// CaptureRequest is the body of /capture; TransactionReference is the
// authorization's reference (not a re-authorization's; research §1).
type CaptureRequest struct {
	ClientTransactionID  string         `json:"client_transaction_id"`
	TransactionReference string         `json:"transaction_reference"`
	Amount               payment.Amount `json:"amount"`
}

// ReAuthorizationRequest is the body of /re_authorization. An amount of 0
// (subtotal_iva0: 0) only extends the hold's validity.
type ReAuthorizationRequest struct {
	ClientTransactionID  string         `json:"client_transaction_id"`
	TransactionReference string         `json:"transaction_reference"`
	Amount               payment.Amount `json:"amount"`
}

// PosTipRequest is the body of /pos_tip; the tip is in Amount.Tip.
type PosTipRequest struct {
	ClientTransactionID  string         `json:"client_transaction_id"`
	TransactionReference string         `json:"transaction_reference"`
	Amount               payment.Amount `json:"amount"`
}

// VoidRequest is the body of /void: the whole original is voided. (The vendor
// page shows no amount for /void; posbridge never asks for a partial void.)
type VoidRequest struct {
	ClientTransactionID  string `json:"client_transaction_id"`
	TransactionReference string `json:"transaction_reference"`
}

// RefundRequest is the body of /refund. Amount nil refunds what remains.
type RefundRequest struct {
	ClientTransactionID  string          `json:"client_transaction_id"`
	TransactionReference string          `json:"transaction_reference"`
	Amount               *payment.Amount `json:"amount,omitempty"`
}

// SearchRequest is the body of both transaction searches. Its shape is our
// choice, modelled on the raw card-present API's Transaction Search
// (seeds/kushki-transactions-list.txt): page and size (size ≤ 500), dates in
// Unix milliseconds. The local search does not accept transaction_type
// (seeds: "Does not support transaction_type as a filter").
type SearchRequest struct {
	Page    int           `json:"page"`
	Size    int           `json:"size"`
	Filters SearchFilters `json:"filters"`
}

// SearchFilters narrow a search; empty fields do not filter.
type SearchFilters struct {
	ClientTransactionID  string `json:"client_transaction_id,omitempty"`
	TransactionReference string `json:"transaction_reference,omitempty"`
	StartDate            int64  `json:"start_date,omitempty"` // Unix ms, inclusive
	EndDate              int64  `json:"end_date,omitempty"`   // Unix ms, inclusive
	TransactionType      string `json:"transaction_type,omitempty"`
}

// MaxSearchSize is the largest page a search returns.
const MaxSearchSize = 500

// Transaction statuses on the wire (research §1: APPROVAL / DECLINED / ERROR).
// CANCELLED is ours, for search items (see SearchItem); the client also
// reads the American spelling CANCELED.
const (
	StatusApproval  = "APPROVAL"
	StatusDeclined  = "DECLINED"
	StatusError     = "ERROR"
	StatusCancelled = "CANCELLED"
)

// PaymentResponse is the answer of a payment operation. Kushki documents
// only "approved"; third-party clients also read transaction_status,
// transaction_reference and kushki_response, sometimes nested under
// rawResponse (research §1). The remaining fields follow the raw card-present
// API's response (research §7). A payment counts as approved only on
// approved == true or transaction_status == "APPROVAL", at either level.
//
// An HTTP 200 answer may really be an error ({"type":"TERMINAL-SUNMI",
// "code":"-1"} is a customer cancel); Type and Code carry it.
type PaymentResponse struct {
	Approved             *bool            `json:"approved,omitempty"`
	Message              string           `json:"message,omitempty"`
	ClientTransactionID  string           `json:"client_transaction_id,omitempty"`
	TransactionStatus    string           `json:"transaction_status,omitempty"`
	TransactionReference string           `json:"transaction_reference,omitempty"`
	TransactionType      string           `json:"transaction_type,omitempty"`
	TicketNumber         string           `json:"ticket_number,omitempty"`
	Franchise            string           `json:"franchise,omitempty"`   // card brand: VISA, MASTERCARD…
	CardType             string           `json:"card_type,omitempty"`   // credit, debit
	MaskedCard           string           `json:"masked_card,omitempty"` // e.g. 424242******4242
	MessageFields        *MessageFields   `json:"message_fields,omitempty"`
	KushkiResponse       *KushkiResponse  `json:"kushki_response,omitempty"`
	RawResponse          *PaymentResponse `json:"rawResponse,omitempty"`

	// Error fields, for error bodies that arrive with HTTP 200.
	Type string `json:"type,omitempty"`
	Code string `json:"code,omitempty"`
}

// MessageFields carries ISO 8583 fields: F38 is the authorization code, F39
// the ISO response code.
type MessageFields struct {
	F38 string `json:"F38,omitempty"`
	F39 string `json:"F39,omitempty"`
}

// KushkiResponse is Kushki's own response code and message ("000" approved).
type KushkiResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SearchResponse is the answer of both searches (our choice of shape, after
// the raw API's {"items": [...]}), newest first.
type SearchResponse struct {
	Items []SearchItem `json:"items"`
	Page  int          `json:"page"`
	Size  int          `json:"size"`
	Total int          `json:"total"`
}

// SearchItem is one transaction in a search answer.
type SearchItem struct {
	ClientTransactionID  string         `json:"client_transaction_id"`
	TransactionReference string         `json:"transaction_reference,omitempty"`
	TransactionType      string         `json:"transaction_type"`   // charge, preAuth, capture, reAuthorization, posTip, void, refund
	TransactionStatus    string         `json:"transaction_status"` // APPROVAL, DECLINED, CANCELLED
	Amount               payment.Amount `json:"amount"`
	TicketNumber         string         `json:"ticket_number,omitempty"`
	Franchise            string         `json:"franchise,omitempty"`
	MaskedCard           string         `json:"masked_card,omitempty"`
	AuthorizationCode    string         `json:"authorization_code,omitempty"`
	Created              int64          `json:"created"` // Unix ms
}

// LinkFailure is the error envelope of every HTTP error (research §2):
// check Type first, then Code. It sometimes arrives wrapped as
// {"failure": {...}}.
type LinkFailure struct {
	Type    string       `json:"type"`
	Code    string       `json:"code"`
	Param   string       `json:"param,omitempty"`
	Message string       `json:"message"`
	Object  *ErrorObject `json:"object,omitempty"`
}

// ErrorObject is the traceability part of a LinkFailure.
type ErrorObject struct {
	ClientTransactionID string `json:"client_transaction_id,omitempty"`
	TerminalID          string `json:"terminal_id,omitempty"`
	SerialNumber        string `json:"serial_number,omitempty"`
}

// Error types and codes posbridge recognises. TER-003 (busy) comes from a
// third-party client's comment (research §2); the others are the codes the
// simulator uses where the catalog's tables were not visible.
const (
	TypeParameter      = "PARAMETER"
	TypeTerminal       = "TERMINAL"
	TypeTerminalSunmi  = "TERMINAL-SUNMI"
	TypeAuthentication = "AUTHENTICATION"
	TypeNotFound       = "NOT_FOUND"
	TypeAcquirer       = "ACQUIRER"

	CodeBusy          = "TER-003" // 409: another transaction is running
	CodeNothingActive = "TER-004" // 409 on abort: no transaction in progress (our choice)
	CodeUserCancel    = "-1"      // TERMINAL-SUNMI: the customer cancelled
)
