package sim

import (
	"github.com/posbridge/posbridge/internal/terminal"
)

// search answers transaction_search_local and _online (shapes in wire.go,
// modelled on the raw API's Transaction Search, research §4):
//   - local: everything this terminal ran — approved, declined and cancelled
//     (customer cancel, abort); not the raw API's operations, which never
//     touched the terminal;
//   - online: what reached the acquirer — approved and declined, including
//     raw API voids; never a transaction cancelled before approval.
//
// A raw API Reverse is not listed (it has no id of its own); a voided or
// reversed original keeps its APPROVAL item. Items are newest first; page is
// 1-based; total counts every match.
func (s *Sim) search(req *terminal.SearchRequest, local bool) []byte {
	f := req.Filters
	s.mu.Lock()
	var match []*txn
	for i := len(s.txns) - 1; i >= 0; i-- {
		t := s.txns[i]
		switch {
		case local && t.raw, !local && !t.online():
			continue
		case f.ClientTransactionID != "" && t.id != f.ClientTransactionID:
			continue
		case f.TransactionReference != "" && t.ref != f.TransactionReference:
			continue
		case f.StartDate != 0 && t.created.UnixMilli() < f.StartDate:
			continue
		case f.EndDate != 0 && t.created.UnixMilli() > f.EndDate:
			continue
		case f.TransactionType != "" && !typeMatches(f.TransactionType, t.ep):
			continue
		}
		match = append(match, t)
	}
	resp := terminal.SearchResponse{Items: []terminal.SearchItem{}, Page: req.Page, Size: req.Size, Total: len(match)}
	if req.Page-1 <= len(match)/req.Size { // guards the product below against overflow
		from := (req.Page - 1) * req.Size
		for i := from; i < len(match) && i < from+req.Size; i++ {
			resp.Items = append(resp.Items, s.searchItem(match[i]))
		}
	}
	s.mu.Unlock()
	return mustJSON(resp)
}

func typeMatches(filter string, ep terminal.Endpoint) bool {
	if filter == "tip" {
		filter = "posTip"
	}
	return filter == txnType(ep)
}

func (s *Sim) searchItem(t *txn) terminal.SearchItem {
	it := terminal.SearchItem{
		ClientTransactionID:  t.id,
		TransactionReference: t.ref,
		TransactionType:      txnType(t.ep),
		TransactionStatus:    t.status,
		Amount:               t.amount,
		TicketNumber:         t.ticket,
		AuthorizationCode:    t.authCode,
		Created:              t.created.UnixMilli(),
	}
	if t.status != statusCancelled {
		it.Franchise, it.MaskedCard = s.cfg.Card.Franchise, s.cfg.Card.Masked
	}
	return it
}
