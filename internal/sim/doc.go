// Package sim is a Kushki ONE SmartPOS terminal simulator: a faithful stand-in
// for the terminal's Payment API so that posbridge's tests and POS developers
// need no hardware. It serves the shapes and paths of internal/terminal's
// wire.go, checks signatures with internal/hmac, runs one transaction at a
// time with a blocking charge, keeps a local history for the searches, keeps
// a ledger of the money actually taken per client_transaction_id (the ground
// truth behind "no double charge"), advertises itself by DNS-SD, and injects
// faults on request.
//
// It is not a model of Kushki's backend beyond what a terminal shows, it does
// not simulate the async (/async/…) or printing endpoints, and nothing in it
// is meant for production traffic.
//
// # Routes
//
// One Sim serves, on every listener given to Serve:
//
//	LAN    POST /terminal/v1/sync/{charge,authorization,capture,re_authorization,pos_tip,void,refund,transaction_search_local}
//	       GET  /terminal/v1/sync/abort
//	       POST /terminal/v1/transaction_search_online
//	cloud  POST /terminal/v1/{serial}/sync/{…the same…, abort, transaction_search_online}
//	raw    POST /pos/v1/transaction  (header Private-Credential-Id; Reverse and Void)
//	control     /_sim/{faults,ledger,state,reset}  (no authentication)
//
// A cloud path with another serial is 404 NOT_FOUND/NF-001. Every terminal
// path verifies the request (hmac or encrypted mode, research/kushki-one.md
// §3); a failure is 401 AUTHENTICATION with the hmac package's AUTH- code.
//
// # Outcomes by amount
//
// The acquirer's decision follows Kushki's UAT test amounts (research §7
// "Test data"; the amount is the total of the amount object). Kushki lists
// them under transaction mode "Authorization", which its raw API also uses
// for captures and refunds, so they apply to every operation that carries an
// amount (charge, authorization, capture, re_authorization, pos_tip, refund):
//
//	total  result                                    kushki_response / F39
//	10     declined: "Transaction declined. Please contact your card issuer."   01 / 01
//	40     declined: "The entered card has been reported."                      04 / 04
//	50     declined: "An error occurred while processing the transaction."      05 / 05
//	74     approved after Config.DelayedApproval (default 3 s)                  000 / 00
//	other  approved                                                             000 / 00
//
// A void, raw Void or raw Reverse of an original whose total is 174 is
// approved after Config.DelayedApproval; other voids and reverses are
// approved. A decline is HTTP 200 with approved:false,
// transaction_status DECLINED and a transaction_reference; nothing moves.
//
// # Answers
//
// An approval is HTTP 200 with approved:true, transaction_status APPROVAL,
// a UUID transaction_reference, an 18-digit ticket_number, franchise,
// card_type, masked_card (424242******4242), message_fields{F38 authorization
// code, F39 "00"} and kushki_response{code "000"}, repeated under rawResponse
// as third-party clients saw it (research §1). A customer cancel or an abort
// is HTTP 200 {"type":"TERMINAL-SUNMI","code":"-1","message":…}.
//
// # Errors
//
// Error bodies are the LinkFailure envelope {type, code, param?, message,
// object{client_transaction_id?, terminal_id, serial_number}}:
//
//	400 PARAMETER      PAR-001  not JSON / not an object / wrong type / unknown or duplicate key / trailing data / body over 64 KiB
//	400 PARAMETER      PAR-002  a required field is missing (client_transaction_id, transaction_reference, amount, amount.iva…)
//	400 PARAMETER      PAR-003  the amount's total is not greater than 0 (the catalog's own example)
//	400 PARAMETER      PAR-004  a negative value, more decimals than the currency has (CLP/COP 0, MXN/PEN 2), out of range
//	400 PARAMETER      PAR-005  tip outside /pos_tip, extra_taxes outside charge/authorization/pos_tip
//	400 PARAMETER      PAR-006  client_transaction_id is not a UUID
//	400 PARAMETER      PAR-007  search: page < 1, size not 1–500, bad dates, transaction_type on the local search or unknown
//	400 PARAMETER      PAR-008  client_transaction_id reused (reject mode; replay mode with a different request)
//	401 AUTHENTICATION AUTH-00x signature, timestamp or encryption (internal/hmac)
//	404 NOT_FOUND      NF-001   no such path, or another terminal's serial
//	404 NOT_FOUND      NF-002   no transaction with that transaction_reference
//	405 NOT_FOUND      NF-003   the path exists with another method (LAN abort is GET, cloud abort is POST)
//	409 TERMINAL       TER-003  another transaction is in progress
//	409 TERMINAL       TER-004  abort: nothing in progress, or it already reached the approval phase
//	400 ACQUIRER       E041     the original's state forbids the operation (see the rules below)
//	400 ACQUIRER       E048     the original was already voided or reversed
//	400 ACQUIRER       E016     refund more than 120 days after the original
//	500 TERMINAL       TER-999  the error_500 and approve_then_500 faults
//
// # Lifecycle rules (terminal side)
//
//   - One transaction at a time: a payment operation while another runs is
//     409 TER-003; searches and abort are always served.
//   - Charge and authorization hold the terminal for ThinkTime (default 2 s):
//     first the customer phase, then the last ApprovalPhase (default 0.5 s)
//     in which the terminal has asked the acquirer. Abort cancels only in
//     the customer phase; the cancelled charge answers TERMINAL-SUNMI/-1
//     "Transaction aborted" and stays in the local history as CANCELLED.
//   - Capture cites the authorization's reference (not a re-authorization's;
//     research §1), once per authorization, at most 110 % of the
//     authorization plus re-authorizations (and tips on it), while the
//     authorization is valid (28 days credit, 7 days debit).
//   - Re-authorization adds its total to the authorized amount and renews
//     the validity; a total of 0 only renews it.
//   - pos_tip goes on an approved charge or authorization that is not
//     voided, reversed, refunded or captured.
//   - Void works on a charge, authorization, capture or tip, only the same
//     day in Config.Location and at least VoidMinWait (default 1 min) after
//     the original, and not on something partly refunded or already
//     captured. Voiding a charge voids its tips.
//   - Refund works on a charge (with its tips) or a capture, within 120
//     days, for at most what remains; without an amount it refunds all
//     that remains.
//
// # Idempotency
//
// Config.Idempotency: "replay" (default) answers a repeated
// client_transaction_id with the same request by replaying the first answer
// without taking money, and refuses a different request with PAR-008;
// "reject" refuses every reuse with PAR-008; "charge" processes the duplicate
// as a new payment (a double charge, visible in the ledger). A request for the
// id of the transaction still running is 409 TER-003.
//
// # Searches
//
// transaction_search_local lists everything this terminal ran (approved,
// declined, cancelled); transaction_search_online lists what reached the
// acquirer (approved and declined, plus raw API voids), never a transaction
// cancelled before approval. Filters: client_transaction_id,
// transaction_reference, start_date/end_date (Unix ms, inclusive) and, online
// only, transaction_type. Newest first, page 1-based, size ≤ 500.
//
// # Faults
//
// Armed with ArmFault or POST /_sim/faults for the next Count requests to the
// payment endpoints (or the endpoints named); see FaultMode for the modes:
// hang, drop_after_approve, drop_before, error_500, approve_then_500, slow,
// cancel, leak_pan.
//
// # Ledger
//
// Ledger (GET /_sim/ledger) has one entry per client_transaction_id: the
// operation, status, amount, reference, original reference, the money taken
// (approved charge, capture, tip on a charge), how many times money was taken
// under that id (more than one is a double charge), and what was returned by
// void, reverse or refund; plus totals. State (GET /_sim/state) shows the
// active transaction and request counters by endpoint.
package sim
