package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a stand-in for surge's HTTP contract, in memory: the voter
// cookie with its version clock, latest vote wins, orders first come first
// served. Its faults are switched on per test.
type fake struct {
	mu       sync.Mutex
	n        int
	voters   int
	repeats  int // votes that came with a voter cookie
	changes  int // votes that changed the voter's counted choice
	counted  map[string]AuditVote
	orders   map[string]AuditOrder
	order    []string
	stock    map[int64]int64
	lose     func(voter string) bool // answer 202 but count nothing
	slow     func(n int) bool        // answer after the client gave up, then count
	lateness time.Duration
	leaked   int // requests that reached the server with the tool's own headers
	carts    int // lines past the first of every order
}

func newFake() *fake {
	return &fake{counted: map[string]AuditVote{}, orders: map[string]AuditOrder{}, stock: map[int64]int64{1: 40, 2: 40}}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.n++
	n := f.n
	if r.Header.Get(actionHeader) != "" || r.Header.Get("X-Vegeta-Seq") != "" {
		f.leaked++
	}
	f.mu.Unlock()
	if f.slow != nil && f.slow(n) {
		time.Sleep(f.lateness) // the slow server is what is tested: kept
	}
	switch r.URL.Path {
	case "/vote":
		var req struct{ Poll, Choice string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Choice == "" {
			http.Error(w, `{"error":"bad vote"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		var id string
		var prev int64
		if c, err := r.Cookie(voterCookie); err == nil {
			id, prev, _ = ParseVoterCookie(c.Value)
			f.repeats++
		}
		if id == "" {
			f.voters++
			id = fmt.Sprintf("%032x", f.voters)
		}
		v := AuditVote{Voter: id, Choice: req.Choice, Version: max(time.Now().UnixMicro(), prev+1), EventID: fmt.Sprintf("E%09d", n)}
		if f.lose == nil || !f.lose(id) {
			if cur, ok := f.counted[id]; !ok || v.Version > cur.Version {
				if ok && cur.Choice != v.Choice {
					f.changes++
				}
				f.counted[id] = v
			}
		}
		f.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: voterCookie, Value: cookie(id, v.Version), Path: "/"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"receipt":%q,"poll":%q,"choice":%q,"node":"fake"}`, v.EventID, req.Poll, req.Choice)
	case "/orders":
		var req orderRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad order"}`, http.StatusBadRequest)
			return
		}
		lines := req.Lines
		if lines == nil {
			lines = []OrderLine{{Item: req.Item, Quantity: req.Quantity}}
		}
		f.mu.Lock()
		if _, seen := f.orders[req.OrderID]; !seen {
			// All or nothing, as the worker decides (surge.DecideOrder).
			o := AuditOrder{OrderID: req.OrderID, Lines: lines, Status: "confirmed"}
			for _, l := range lines {
				if f.stock[l.Item] < int64(l.Quantity) {
					o.Status, o.Reason = "rejected", "out_of_stock"
				}
			}
			if o.Status == "confirmed" {
				for _, l := range lines {
					f.stock[l.Item] -= int64(l.Quantity)
				}
			}
			f.carts += len(lines) - 1
			f.orders[req.OrderID] = o
			f.order = append(f.order, req.OrderID)
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"order_id":%q,"status":"pending"}`, req.OrderID)
	default:
		http.NotFound(w, r)
	}
}

type orderRequest struct {
	OrderID  string      `json:"order_id"`
	Item     int64       `json:"item"`
	Quantity int         `json:"quantity"`
	Lines    []OrderLine `json:"lines"`
}

func (f *fake) observed() Observed {
	f.mu.Lock()
	defer f.mu.Unlock()
	obs := Observed{Counts: map[string]int64{"a": 0, "b": 0, "c": 0}, Exclusive: true, Stock: map[int64]int64{}}
	for _, v := range f.counted {
		obs.Votes = append(obs.Votes, v)
		obs.Counts[v.Choice]++
	}
	for _, id := range f.order {
		obs.Orders = append(obs.Orders, f.orders[id])
	}
	for it, q := range f.stock {
		obs.Stock[it] = q
	}
	return obs
}

// drive runs the workload against the fake: 60 voters, half of whom change
// their vote, and 20% orders, as fast as 8 connections go, for 900
// requests (or at most 15 seconds).
func drive(t *testing.T, f *fake, timeout time.Duration) (*Ledger, *Stats, *Workload) {
	return driveCarts(t, f, timeout, 1)
}

func driveCarts(t *testing.T, f *fake, timeout time.Duration, cartLines int) (*Ledger, *Stats, *Workload) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ledger, stats := NewLedger(), NewStats(time.Now())
	ledger.Stock[1], ledger.Stock[2] = 40, 40
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	w := NewWorkload(u, WorkloadConfig{Voters: 60, ChangeRatio: 0.5, Poll: "p", Choices: []string{"a", "b", "c"},
		OrderRatio: 0.2, RepeatRatio: 0.1, Items: []int64{1, 2}, MaxQuantity: 3, CartLines: cartLines, Prefix: "t-", Seed: 7}, ledger, stats, tr)
	r := &runner{cfg: Config{Connections: 8}, work: w, load: &http.Client{Transport: w, Timeout: timeout}}
	sent := r.attack(context.Background(), 0, 15*time.Second, 900)
	w.Close()
	srv.Close() // waits for the handlers still running: late answers land
	if sent != 900 {
		t.Fatalf("sent %d requests, want the bound of 900", sent)
	}
	return ledger, stats, w
}

func TestWorkloadAgainstAnHonestServer(t *testing.T) {
	f := newFake()
	ledger, stats, _ := drive(t, f, 5*time.Second)
	v := Verify(ledger, f.observed())
	if !v.OK() || v.UnknownVotes != 0 {
		t.Fatalf("verdict %+v", v)
	}
	sum := stats.Summary(false)
	if sum.Requests != 900 || sum.ByClass["202"] != 900 {
		t.Errorf("summary %+v", sum)
	}
	c := ledger.Counts()
	// Each voter keeps their cookie: 60 voter ids, however often they vote.
	if f.voters != 60 || c.Voters != 60 {
		t.Errorf("%d voter ids on the server, %d in the ledger; want 60", f.voters, c.Voters)
	}
	if f.repeats != c.VotesAcked-60 {
		t.Errorf("%d votes came with a cookie, want every vote but the first of each voter (%d)", f.repeats, c.VotesAcked-60)
	}
	if f.changes == 0 {
		t.Error("no voter changed their vote")
	}
	if f.leaked != 0 {
		t.Errorf("%d requests carried the tool's own headers to the server", f.leaked)
	}
	if int64(c.VotesAcked+c.OrdersAcked) > sum.Requests || sum.ByKind["order"] < 100 {
		t.Errorf("ledger %+v, by kind %v", c, sum.ByKind)
	}
	if v.Confirmed == 0 || v.Rejected == 0 {
		t.Errorf("orders: %d confirmed, %d rejected; want both (stock runs out)", v.Confirmed, v.Rejected)
	}
}

// --cart-lines 2: every order is a cart of both items, sent with lines;
// an all-or-nothing server passes the verification.
func TestWorkloadSendsCarts(t *testing.T) {
	f := newFake()
	ledger, _, _ := driveCarts(t, f, 5*time.Second, 2)
	v := Verify(ledger, f.observed())
	if !v.OK() || v.Confirmed == 0 || v.Rejected == 0 {
		t.Fatalf("verdict %+v", v)
	}
	if f.carts != len(f.orders) {
		t.Fatalf("%d orders with %d lines past the first; want carts of 2 lines", len(f.orders), f.carts)
	}
}

// A server that answers 202 and drops the votes of some voters is caught:
// voters 7, 23, 39 and 55 (ids ending in 7) are lost.
func TestWorkloadCatchesALosingServer(t *testing.T) {
	f := newFake()
	f.lose = func(voter string) bool { return strings.HasSuffix(voter, "7") }
	ledger, _, _ := drive(t, f, 5*time.Second)
	v := Verify(ledger, f.observed())
	if v.Lost != 4 || v.Duplicated != 0 || v.Unexpected != 0 {
		t.Fatalf("verdict %+v: want the 4 voters' acknowledged votes lost", v)
	}
}

// Requests the client gave up on are unknown: counted or not, they are no
// anomaly, even when one handled late wins over a later acknowledged vote.
func TestWorkloadTimeoutsAreUnknown(t *testing.T) {
	f := newFake()
	f.slow = func(n int) bool { return n%29 == 0 }
	f.lateness = 150 * time.Millisecond
	ledger, stats, _ := drive(t, f, 50*time.Millisecond)
	v := Verify(ledger, f.observed())
	if !v.OK() {
		t.Fatalf("verdict %+v", v)
	}
	if v.UnknownVotes == 0 || stats.Summary(false).ByClass["timeout"] == 0 {
		t.Fatalf("no timeouts: %+v", v)
	}
	if v.UnknownVotesCounted == 0 {
		t.Errorf("no unknown vote was counted, though the server counts them all: %+v", v)
	}
}

// Config.Stop ends a paced load long before its duration, and the requests
// in flight are answered, not cut short: nothing is left unknown.
func TestStopEndsTheLoadEarly(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ledger, stats := NewLedger(), NewStats(time.Now())
	w := NewWorkload(u, WorkloadConfig{Voters: 60, ChangeRatio: 0.5, Poll: "p", Choices: []string{"a", "b", "c"}, Seed: 7},
		ledger, stats, &http.Transport{})
	stop := make(chan struct{})
	r := &runner{cfg: Config{Connections: 8, Stop: stop}, work: w, load: &http.Client{Transport: w, Timeout: 5 * time.Second}}
	time.AfterFunc(500*time.Millisecond, func() { close(stop) })
	began := time.Now()
	sent := r.attack(context.Background(), 200, time.Minute, 1_000_000)
	w.Close()
	if took := time.Since(began); took > 3*time.Second || sent < 20 || sent > 200 {
		t.Fatalf("a 1-minute load at 200/s stopped after 0.5 s: took %s and sent %d requests", took, sent)
	}
	v := Verify(ledger, f.observed())
	if !v.OK() || v.UnknownVotes != 0 || stats.Summary(false).ByClass["202"] != sent {
		t.Fatalf("verdict %+v, answers %v, sent %d: want every request answered 202", v, stats.Summary(false).ByClass, sent)
	}
}
