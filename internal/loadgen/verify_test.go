package loadgen

import (
	"fmt"
	"slices"
	"testing"
)

func cookie(id string, version int64) string { return fmt.Sprintf("v1.%s.%d.c2ln", id, version) }

// scenario is a crafted history: a ledger built through the same calls the
// workload makes, and what the system shows. The base scenario is clean.
type scenario struct {
	ledger *Ledger
	obs    Observed
}

func base() *scenario {
	l := NewLedger()
	// Voter A votes red, then changes to blue with the first vote's cookie.
	l.VoteAcked("", "#0", "red", "E01", cookie("A", 10))
	l.VoteAcked("A", "#0", "blue", "E02", cookie("A", 20))
	// Voter B votes red once.
	l.VoteAcked("", "#1", "red", "E03", cookie("B", 15))
	// Item 7 has 5 units: o1 takes 2 (confirmed), o2 asks for 5 (rejected, 3 left).
	l.Stock[7] = 5
	l.OrderSent("o1", one(7, 2), Outcome{Code: 202})
	l.OrderSent("o1", one(7, 2), Outcome{Code: 202}) // a repeat of the same id
	l.OrderSent("o2", one(7, 5), Outcome{Code: 202})
	return &scenario{ledger: l, obs: Observed{
		Counts:    map[string]int64{"red": 1, "blue": 1, "green": 0},
		Votes:     []AuditVote{{"A", "blue", 20, "E02"}, {"B", "red", 15, "E03"}},
		Exclusive: true,
		Orders: []AuditOrder{
			{OrderID: "o1", Item: 7, Quantity: 2, Status: "confirmed"},
			{OrderID: "o2", Item: 7, Quantity: 5, Status: "rejected", Reason: "out_of_stock"},
		},
		Stock: map[int64]int64{7: 3},
	}}
}

func (s *scenario) vote(voter string) *AuditVote {
	for i := range s.obs.Votes {
		if s.obs.Votes[i].Voter == voter {
			return &s.obs.Votes[i]
		}
	}
	panic("no vote of " + voter)
}

func (s *scenario) order(id string) *AuditOrder {
	for i := range s.obs.Orders {
		if s.obs.Orders[i].OrderID == id {
			return &s.obs.Orders[i]
		}
	}
	panic("no order " + id)
}

func (s *scenario) dropVote(voter string) {
	s.obs.Votes = slices.DeleteFunc(s.obs.Votes, func(v AuditVote) bool { return v.Voter == voter })
}

// figures is what a test expects of a verdict; every figure not named is 0.
type figures struct {
	lost, duplicated, oversold, unexpected int64
	unknownVotes, unknownCounted           int64
	unknownOrders, unknownApplied, foreign int64
}

func TestVerify(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(s *scenario)
		want   figures
	}{
		{"clean", func(s *scenario) {}, figures{}},

		// lost
		{"acknowledged vote not counted", func(s *scenario) {
			s.dropVote("B")
			s.obs.Counts["red"] = 0
		}, figures{lost: 1}},
		{"an older vote counted instead of the acknowledged one", func(s *scenario) {
			*s.vote("A") = AuditVote{"A", "red", 10, "E01"}
			s.obs.Counts["red"], s.obs.Counts["blue"] = 2, 0
		}, figures{lost: 1}},
		{"same version, smaller event id counted", func(s *scenario) {
			*s.vote("A") = AuditVote{"A", "red", 20, "E00"}
			s.obs.Counts["red"], s.obs.Counts["blue"] = 2, 0
		}, figures{lost: 1}},
		{"results count below the counted votes", func(s *scenario) {
			s.obs.Counts["blue"] = 0
		}, figures{lost: 1}},
		{"acknowledged order never applied", func(s *scenario) {
			s.obs.Orders = s.obs.Orders[:1]
		}, figures{lost: 1}},
		{"acknowledged order still pending after the drain", func(s *scenario) {
			s.order("o2").Status, s.order("o2").Reason = "pending", ""
		}, figures{lost: 1}},

		// duplicated
		{"results count above the counted votes", func(s *scenario) {
			s.obs.Counts["red"] = 2
		}, figures{duplicated: 1}},
		{"a voter counted twice", func(s *scenario) {
			s.obs.Votes = append(s.obs.Votes, AuditVote{"B", "red", 15, "E03"})
			s.obs.Counts["red"] = 2
		}, figures{duplicated: 1}},
		{"an order id applied twice", func(s *scenario) {
			s.obs.Orders = append(s.obs.Orders, AuditOrder{OrderID: "o1", Item: 7, Quantity: 2, Status: "confirmed"})
		}, figures{duplicated: 1}},
		{"stock taken twice for one order", func(s *scenario) {
			s.obs.Stock[7] = 1
		}, figures{duplicated: 2}},

		// oversold
		{"more units confirmed than the stock", func(s *scenario) {
			s.order("o2").Status, s.order("o2").Reason = "confirmed", ""
			s.obs.Stock[7] = -2 // what the counts say, were the CHECK constraint gone
		}, figures{oversold: 2}},

		// unexpected
		{"a counted vote this run never sent", func(s *scenario) {
			s.obs.Votes = append(s.obs.Votes, AuditVote{"Z", "green", 5, "E99"})
			s.obs.Counts["green"] = 1
		}, figures{unexpected: 1}},
		{"a newer vote than any acknowledged, with none unknown", func(s *scenario) {
			*s.vote("B") = AuditVote{"B", "blue", 99, "E98"}
			s.obs.Counts["red"], s.obs.Counts["blue"] = 0, 2
		}, figures{unexpected: 1}},
		{"a refused vote counted", func(s *scenario) {
			s.ledger.VoteRejected("C")
			s.obs.Votes = append(s.obs.Votes, AuditVote{"C", "green", 50, "E50"})
			s.obs.Counts["green"] = 1
		}, figures{unexpected: 1}},
		{"the acknowledged event counted with another choice", func(s *scenario) {
			s.vote("B").Choice = "green"
			s.obs.Counts["red"], s.obs.Counts["green"] = 0, 1
		}, figures{unexpected: 1}},
		{"a refused order applied", func(s *scenario) {
			s.ledger.OrderSent("o3", one(7, 4), Outcome{Code: 400})
			s.obs.Orders = append(s.obs.Orders, AuditOrder{OrderID: "o3", Item: 7, Quantity: 4, Status: "rejected", Reason: "out_of_stock"})
		}, figures{unexpected: 1}},
		{"an order applied with another quantity", func(s *scenario) {
			s.order("o1").Quantity = 3
			s.obs.Stock[7] = 2
		}, figures{unexpected: 1}},
		{"an order against the run's item that it never sent", func(s *scenario) {
			s.obs.Orders = append(s.obs.Orders, AuditOrder{OrderID: "x9", Item: 7, Quantity: 1, Status: "confirmed"})
			s.obs.Stock[7] = 2
		}, figures{unexpected: 1}},
		{"an order refused for stock that was there", func(s *scenario) {
			s.ledger.OrderSent("o4", one(7, 1), Outcome{Code: 202})
			s.obs.Orders = append(s.obs.Orders, AuditOrder{OrderID: "o4", Item: 7, Quantity: 1, Status: "rejected", Reason: "out_of_stock"})
		}, figures{unexpected: 1}},
		{"stock higher than the confirmed orders leave", func(s *scenario) {
			s.obs.Stock[7] = 4
		}, figures{unexpected: 1}},

		// unknown outcomes: reported apart, never an anomaly when they
		// explain what is counted
		{"an unknown vote after the last acknowledged one, counted", func(s *scenario) {
			s.ledger.VoteUnknown("B", "green")
			*s.vote("B") = AuditVote{"B", "green", 40, "E40"}
			s.obs.Counts["red"], s.obs.Counts["green"] = 0, 1
		}, figures{unknownVotes: 1, unknownCounted: 1}},
		{"an unknown vote, not counted", func(s *scenario) {
			s.ledger.VoteUnknown("B", "green")
		}, figures{unknownVotes: 1}},
		{"an unknown vote counted only once", func(s *scenario) {
			// One unknown green vote cannot explain two voters counting green.
			s.ledger.VoteUnknown("", "green")
			s.obs.Votes = append(s.obs.Votes, AuditVote{"Y", "green", 5, "E91"}, AuditVote{"Z", "green", 6, "E92"})
			s.obs.Counts["green"] = 2
		}, figures{unknownVotes: 1, unknownCounted: 1, unexpected: 1}},
		{"a vote sent without a cookie, unknown, counted under a new voter id", func(s *scenario) {
			s.ledger.VoteUnknown("", "green")
			s.obs.Votes = append(s.obs.Votes, AuditVote{"Y", "green", 5, "E91"})
			s.obs.Counts["green"] = 1
		}, figures{unknownVotes: 1, unknownCounted: 1}},
		{"an unknown order applied", func(s *scenario) {
			s.ledger.OrderSent("o5", one(7, 1), Outcome{Code: 503})
			s.obs.Orders = append(s.obs.Orders, AuditOrder{OrderID: "o5", Item: 7, Quantity: 1, Status: "confirmed"})
			s.obs.Stock[7] = 2
		}, figures{unknownOrders: 1, unknownApplied: 1}},
		{"an unknown order not applied", func(s *scenario) {
			s.ledger.OrderSent("o5", one(7, 1), Outcome{Err: "timeout"})
		}, figures{unknownOrders: 1}},
		{"another client's vote in a shared poll", func(s *scenario) {
			s.obs.Exclusive = false
			s.obs.Votes = append(s.obs.Votes, AuditVote{"Z", "green", 5, "E99"})
			s.obs.Counts["green"] = 1
		}, figures{foreign: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			c.change(s)
			v := Verify(s.ledger, s.obs)
			got := figures{v.Lost, v.Duplicated, v.Oversold, v.Unexpected, v.UnknownVotes, v.UnknownVotesCounted,
				v.UnknownOrders, v.UnknownOrdersApplied, v.ForeignVotes}
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v\nproblems: %q", got, c.want, v.Problems)
			}
			anomalies := c.want.lost+c.want.duplicated+c.want.oversold+c.want.unexpected > 0
			if v.OK() == anomalies {
				t.Errorf("OK() = %v with %+v", v.OK(), got)
			}
			if anomalies && len(v.Problems) == 0 {
				t.Error("an anomaly without a problem line to explain it")
			}
		})
	}
}

func TestVerifyChecksEveryone(t *testing.T) {
	s := base()
	v := Verify(s.ledger, s.obs)
	if v.VotersChecked != 2 || v.OrdersChecked != 2 || v.Confirmed != 1 || v.Rejected != 1 || v.UnitsConfirmed != 2 ||
		v.CountsTotal != 2 || v.AuditVotesTotal != 2 {
		t.Errorf("%+v", v)
	}
	c := s.ledger.Counts()
	if c != (Counts{Voters: 2, VotesAcked: 3, Orders: 2, OrdersAcked: 2}) {
		t.Errorf("counts %+v", c)
	}
}

func one(item int64, quantity int) []OrderLine { return []OrderLine{{Item: item, Quantity: quantity}} }

// Carts are all or nothing: a confirmed cart takes every line, a rejected
// one none; a cart rejected while every line had stock, one applied with
// other lines, or stock that disagrees with the confirmed lines is caught.
func TestVerifyCarts(t *testing.T) {
	base := func() (*Ledger, Observed) {
		l := NewLedger()
		l.Stock[1], l.Stock[2] = 5, 3
		// c1 takes 2 of item 1 and 3 of item 2; c2 asks for 1 of each: item 2 is out.
		l.OrderSent("c1", []OrderLine{{1, 2}, {2, 3}}, Outcome{Code: 202})
		l.OrderSent("c2", []OrderLine{{2, 1}, {1, 1}}, Outcome{Code: 202})
		return l, Observed{Exclusive: true, Stock: map[int64]int64{1: 3, 2: 0}, Orders: []AuditOrder{
			{OrderID: "c1", Status: "confirmed", Lines: []OrderLine{{1, 2}, {2, 3}}},
			{OrderID: "c2", Status: "rejected", Reason: "out_of_stock", Lines: []OrderLine{{2, 1}, {1, 1}}},
		}}
	}
	for _, tt := range []struct {
		name   string
		damage func(*Ledger, *Observed)
		check  func(Verdict) bool
	}{
		{"honest", func(*Ledger, *Observed) {}, func(v Verdict) bool { return v.OK() && v.Confirmed == 1 && v.Rejected == 1 && v.UnitsConfirmed == 5 }},
		{"a rejected cart took a line", func(_ *Ledger, o *Observed) { o.Stock[1] = 2 }, func(v Verdict) bool { return v.Duplicated == 1 && !v.OK() }},
		{"a confirmed cart missed a line", func(_ *Ledger, o *Observed) { o.Stock[2] = 3 }, func(v Verdict) bool { return v.Unexpected >= 1 && !v.OK() }},
		{"rejected while every line had stock", func(_ *Ledger, o *Observed) { o.Orders[1].Lines = []OrderLine{{1, 1}} }, func(v Verdict) bool { return v.Unexpected >= 1 }},
		{"applied with other lines", func(_ *Ledger, o *Observed) { o.Orders[0].Lines = []OrderLine{{1, 2}, {2, 2}} }, func(v Verdict) bool { return v.Unexpected >= 1 }},
		{"oversold", func(l *Ledger, o *Observed) {
			l.OrderSent("c3", []OrderLine{{2, 1}}, Outcome{Code: 202})
			o.Orders = append(o.Orders, AuditOrder{OrderID: "c3", Status: "confirmed", Lines: []OrderLine{{2, 1}}})
			o.Stock[2] = -1
		}, func(v Verdict) bool { return v.Oversold == 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, obs := base()
			tt.damage(l, &obs)
			if v := Verify(l, obs); !tt.check(v) {
				t.Fatalf("verdict %+v", v)
			}
		})
	}
}
