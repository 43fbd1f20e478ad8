package loadgen

import (
	"fmt"
	"maps"
	"slices"
)

// AuditVote is the vote that counts for one voter, as the admin audit
// endpoint reports it.
type AuditVote struct {
	Voter   string `json:"voter"`
	Choice  string `json:"choice"`
	Version int64  `json:"version"`
	EventID string `json:"event_id"`
}

// AuditOrder is one applied order, as the admin audit endpoint reports it:
// its lines, and for a one-line order its item and quantity (all that a
// server from before carts reports).
type AuditOrder struct {
	OrderID  string      `json:"order_id"`
	Item     int64       `json:"item"`
	Quantity int         `json:"quantity"`
	Status   string      `json:"status"`
	Reason   string      `json:"reason"`
	Lines    []OrderLine `json:"lines"`
}

// OrderLines returns the order's lines.
func (ao AuditOrder) OrderLines() []OrderLine {
	if len(ao.Lines) == 0 {
		return []OrderLine{{Item: ao.Item, Quantity: ao.Quantity}}
	}
	return ao.Lines
}

// Observed is what the system shows once its queues are drained.
type Observed struct {
	// Counts are the poll's counts from /results/api.
	Counts map[string]int64
	// Votes are the poll's counted votes, one per voter.
	Votes []AuditVote
	// Exclusive says the poll was created by this run, so every counted
	// vote must be one of the run's.
	Exclusive bool
	// Orders are the applied orders whose id belongs to this run, and any
	// other order against this run's items.
	Orders []AuditOrder
	// Stock is the current quantity of each of this run's items.
	Stock map[int64]int64
}

// Verdict is the comparison of what was acknowledged with what was counted.
// Lost, Duplicated, Oversold and Unexpected must all be 0.
type Verdict struct {
	// Lost: an acknowledged vote that is not the one counted for its voter
	// (no vote counted, or an older one); an acknowledged order with no
	// final status; a counted vote missing from the results' counts.
	Lost int64 `json:"lost"`
	// Duplicated: a vote counted more than once in the results, a voter or
	// an order id that appears twice, stock taken beyond the confirmed orders.
	Duplicated int64 `json:"duplicated"`
	// Oversold: units confirmed beyond an item's stock.
	Oversold int64 `json:"oversold"`
	// Unexpected: a counted vote or an applied order that the tool never
	// sent, or that was refused (4xx), or that differs from what was sent;
	// an order rejected as out of stock while stock remained.
	Unexpected int64 `json:"unexpected"`

	// Outcomes that were unknown (timeouts, 5xx), reported apart: they may or
	// may not have been counted, but never twice.
	UnknownVotes         int64 `json:"unknown_votes"`
	UnknownVotesCounted  int64 `json:"unknown_votes_counted"`
	UnknownOrders        int64 `json:"unknown_orders"`
	UnknownOrdersApplied int64 `json:"unknown_orders_applied"`

	VotersChecked   int64 `json:"voters_checked"`
	OrdersChecked   int64 `json:"orders_checked"`
	Confirmed       int64 `json:"orders_confirmed"`
	Rejected        int64 `json:"orders_rejected"`
	UnitsConfirmed  int64 `json:"units_confirmed"`
	ForeignVotes    int64 `json:"foreign_votes"` // counted votes of other clients (shared poll)
	CountsTotal     int64 `json:"counts_total"`
	AuditVotesTotal int64 `json:"audit_votes_total"`

	// Problems lists the first anomalies found, for the report.
	Problems []string `json:"problems,omitempty"`
}

// OK reports a clean verdict.
func (v Verdict) OK() bool {
	return v.Lost == 0 && v.Duplicated == 0 && v.Oversold == 0 && v.Unexpected == 0
}

const maxProblems = 20

func (v *Verdict) problem(format string, args ...any) {
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify classifies every difference between the ledger and what the
// system shows. It reads the ledger only; call it after the run.
func Verify(l *Ledger, obs Observed) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v Verdict
	verifyVotes(&v, l, obs)
	verifyOrders(&v, l, obs)
	return v
}

func newer(av AuditVote, a *Ack) int {
	switch {
	case av.Version != a.Version:
		if av.Version > a.Version {
			return 1
		}
		return -1
	case av.EventID > a.EventID:
		return 1
	case av.EventID < a.EventID:
		return -1
	}
	return 0
}

// takeChoice removes one occurrence of choice from list.
func takeChoice(list []string, choice string) ([]string, bool) {
	for i, c := range list {
		if c == choice {
			return append(list[:i:i], list[i+1:]...), true
		}
	}
	return list, false
}

func verifyVotes(v *Verdict, l *Ledger, obs Observed) {
	counted := make(map[string]AuditVote, len(obs.Votes))
	perChoice := map[string]int64{}
	for _, av := range obs.Votes {
		perChoice[av.Choice]++
		v.AuditVotesTotal++
		if _, dup := counted[av.Voter]; dup {
			v.Duplicated++
			v.problem("voter %s is counted twice", av.Voter)
			continue
		}
		counted[av.Voter] = av
	}
	for _, il := range l.Identities {
		v.UnknownVotes += int64(len(il.Unknown))
	}
	anonymous := map[string]int{}
	for c, n := range l.Anonymous {
		anonymous[c] = n
		v.UnknownVotes += int64(n)
	}

	for _, id := range slices.Sorted(maps.Keys(l.Identities)) {
		il := l.Identities[id]
		v.VotersChecked++
		av, ok := counted[id]
		delete(counted, id)
		unknown := append([]string(nil), il.Unknown...)
		switch {
		case !ok && il.Last != nil:
			v.Lost++
			v.problem("voter %s: acknowledged vote %s (%s) is not counted", id, il.Last.EventID, il.Last.Choice)
		case !ok:
			// Only unknown or refused votes: not counted is fine.
		case il.Last != nil && av.EventID == il.Last.EventID:
			if av.Choice != il.Last.Choice {
				v.Unexpected++
				v.problem("voter %s: vote %s counted as %s, acknowledged as %s", id, av.EventID, av.Choice, il.Last.Choice)
			}
		case il.Last != nil && newer(av, il.Last) < 0:
			v.Lost++
			v.problem("voter %s: an older vote %s (%s, version %d) is counted instead of the acknowledged %s (%s, version %d)",
				id, av.EventID, av.Choice, av.Version, il.Last.EventID, il.Last.Choice, il.Last.Version)
		default:
			// Newer than every acknowledged vote: only a vote whose outcome
			// is unknown can explain it.
			var found bool
			if unknown, found = takeChoice(unknown, av.Choice); found {
				v.UnknownVotesCounted++
			} else {
				v.Unexpected++
				v.problem("voter %s: counted vote %s (%s, version %d) was never acknowledged nor left unknown",
					id, av.EventID, av.Choice, av.Version)
			}
		}
	}
	// Votes counted under voter ids the tool never saw: a vote sent without
	// a cookie whose answer never came, or someone else's.
	for _, id := range slices.Sorted(maps.Keys(counted)) {
		av := counted[id]
		switch {
		case anonymous[av.Choice] > 0:
			anonymous[av.Choice]--
			v.UnknownVotesCounted++
		case obs.Exclusive:
			v.Unexpected++
			v.problem("voter %s: counted vote %s (%s) was not sent by this run", id, av.EventID, av.Choice)
		default:
			v.ForeignVotes++
		}
	}
	// The results' counts must be exactly the counted votes.
	options := map[string]bool{}
	for c := range obs.Counts {
		options[c] = true
	}
	for c := range perChoice {
		options[c] = true
	}
	for _, c := range slices.Sorted(maps.Keys(options)) {
		v.CountsTotal += obs.Counts[c]
		switch d := obs.Counts[c] - perChoice[c]; {
		case d > 0:
			v.Duplicated += d
			v.problem("results count %d for %q, but %d voters have it as their vote", obs.Counts[c], c, perChoice[c])
		case d < 0:
			v.Lost += -d
			v.problem("results count %d for %q, but %d voters have it as their vote", obs.Counts[c], c, perChoice[c])
		}
	}
}

func verifyOrders(v *Verdict, l *Ledger, obs Observed) {
	applied := make(map[string]AuditOrder, len(obs.Orders))
	confirmed := map[int64]int64{}
	for _, ao := range obs.Orders {
		if _, dup := applied[ao.OrderID]; dup {
			v.Duplicated++
			v.problem("order %s appears twice", ao.OrderID)
			continue
		}
		applied[ao.OrderID] = ao
		switch ao.Status {
		case "confirmed":
			v.Confirmed++
			for _, l := range ao.OrderLines() {
				v.UnitsConfirmed += int64(l.Quantity)
				confirmed[l.Item] += int64(l.Quantity)
			}
		case "rejected":
			v.Rejected++
		}
	}
	for _, ol := range l.Orders {
		if ol.Acks == 0 && ol.Unknown > 0 {
			v.UnknownOrders++
		}
	}
	for _, id := range slices.Sorted(maps.Keys(l.Orders)) {
		ol := l.Orders[id]
		v.OrdersChecked++
		ao, ok := applied[id]
		delete(applied, id)
		final := ok && (ao.Status == "confirmed" || ao.Status == "rejected")
		switch {
		case ol.Acks > 0 && !final:
			v.Lost++
			if ok {
				v.problem("order %s: acknowledged, still %q after the queues drained", id, ao.Status)
			} else {
				v.problem("order %s: acknowledged, never applied", id)
			}
			continue
		case !ok:
			continue // unknown or refused, not applied: fine
		case ol.Acks == 0 && ol.Unknown == 0:
			v.Unexpected++
			v.problem("order %s: applied (%s) although every request for it was refused", id, ao.Status)
			continue
		case !final:
			v.Unexpected++
			v.problem("order %s: still %q after the queues drained", id, ao.Status)
			continue
		case ol.Acks == 0:
			v.UnknownOrdersApplied++
		}
		if got, sent := linesString(ao.OrderLines()), linesString(ol.Lines); got != sent {
			v.Unexpected++
			v.problem("order %s: applied as %s, sent as %s", id, got, sent)
		}
	}
	// Orders applied against this run's items or under its ids that it never sent.
	for _, id := range slices.Sorted(maps.Keys(applied)) {
		v.Unexpected++
		v.problem("order %s (%s, %s) was not sent by this run", id, linesString(applied[id].OrderLines()), applied[id].Status)
	}
	// Stock: never oversold, and taken exactly by the confirmed orders.
	for _, it := range slices.Sorted(maps.Keys(l.Stock)) {
		initial := l.Stock[it]
		if c := confirmed[it]; c > initial {
			v.Oversold += c - initial
			v.problem("item %d: %d units confirmed, stock was %d", it, c, initial)
		}
		now, known := obs.Stock[it]
		if !known {
			v.Unexpected++
			v.problem("item %d: missing from the catalogue", it)
			continue
		}
		// Every order is all or nothing: the stock is exactly the initial
		// stock less the lines of the confirmed orders. Less: an order taken
		// twice, or a rejected cart that took a line; more: a confirmed
		// order (or one of its lines) not taken.
		switch want := initial - confirmed[it]; {
		case now < want:
			v.Duplicated += want - now
			v.problem("item %d: stock %d, but %d - %d confirmed = %d (taken twice, or by a rejected cart)", it, now, initial, confirmed[it], want)
		case now > want:
			v.Unexpected++
			v.problem("item %d: stock %d, but %d - %d confirmed = %d (a confirmed line not taken)", it, now, initial, confirmed[it], want)
		}
	}
	// Stock only goes down during a run, so an order refused for lack of
	// stock has a line that asks for more than what is left now; one refused
	// as unknown names only items the run did not create.
	for _, ao := range obs.Orders {
		if ao.Status != "rejected" {
			continue
		}
		short, ours := false, true
		for _, line := range ao.OrderLines() {
			_, mine := l.Stock[line.Item]
			now, known := obs.Stock[line.Item]
			ours = ours && mine
			short = short || !mine || !known || int64(line.Quantity) > now
		}
		switch {
		case ao.Reason == "unknown_item" && ours:
			v.Unexpected++
			v.problem("order %s: rejected as unknown_item, but every item of %s is the run's", ao.OrderID, linesString(ao.OrderLines()))
		case ao.Reason == "out_of_stock" && !short:
			v.Unexpected++
			v.problem("order %s: rejected as out_of_stock for %s while every line had stock left", ao.OrderID, linesString(ao.OrderLines()))
		}
	}
}
