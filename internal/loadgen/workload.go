package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// actionHeader carries the workload's action from the targeter to the
// transport, which strips it before the request leaves.
const actionHeader = "X-Surge-Load-Action"

const voterCookie = "surge_voter"

// voter is one simulated person with their own cookie jar. Only one of a
// voter's votes is in flight at a time, so each vote carries the cookie of
// the one before it, as a browser would.
type voter struct {
	jar     *cookiejar.Jar
	changer bool   // changes their vote
	votes   int    // votes sent so far
	last    string // choice of the last vote sent
	first   string // choice of the first vote
}

// Workload turns pacing ticks into requests: votes from a set of voters,
// some of whom change their vote, and orders against the run's items. It
// records what each request ended in, in the ledger and in the stats.
type Workload struct {
	base     *url.URL
	poll     string
	choices  []string
	items    []int64
	maxQty   int
	cart     int // lines per order: 1 sends today's single-item form
	orderMix float64
	repeat   float64
	prefix   string
	ledger   *Ledger
	stats    *Stats
	step     atomic.Pointer[Stats] // the current step's, in max mode
	next     http.RoundTripper

	mu      sync.Mutex
	cond    *sync.Cond
	rng     *rand.Rand
	voters  []voter
	fresh   int   // voters who have not voted yet: fresh..len(voters)-1
	changes []int // voters whose first vote is answered, due to change it
	idle    []int // voters ready to vote again once every voter has voted
	orderN  int64
	recent  []order // acknowledged orders, for repeats
	closed  bool
	starved int64 // ticks that found no voter ready
}

type order struct {
	id    string
	lines []OrderLine
}

// WorkloadConfig is the shape of the traffic.
type WorkloadConfig struct {
	Voters      int     // distinct voters, each with a cookie jar
	ChangeRatio float64 // fraction of voters who change their vote
	Poll        string
	Choices     []string
	OrderRatio  float64 // fraction of requests that are orders
	RepeatRatio float64 // fraction of orders that repeat an acknowledged order id
	Items       []int64 // items to order
	MaxQuantity int     // each order line takes 1..MaxQuantity units
	CartLines   int     // lines per order (distinct items); 1 or less: one item, in the single-item form
	Prefix      string  // order ids start with it
	Seed        uint64
}

// NewWorkload builds the voters. next is the transport requests go out on.
func NewWorkload(base *url.URL, cfg WorkloadConfig, ledger *Ledger, stats *Stats, next http.RoundTripper) *Workload {
	w := &Workload{base: base, poll: cfg.Poll, choices: cfg.Choices, items: cfg.Items, maxQty: max(cfg.MaxQuantity, 1),
		cart:     min(max(cfg.CartLines, 1), max(len(cfg.Items), 1)),
		orderMix: cfg.OrderRatio, repeat: cfg.RepeatRatio, prefix: cfg.Prefix, ledger: ledger, stats: stats, next: next,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	if len(w.items) == 0 {
		w.orderMix = 0
	}
	w.cond = sync.NewCond(&w.mu)
	w.voters = make([]voter, cfg.Voters)
	for i := range w.voters {
		jar, _ := cookiejar.New(nil)
		w.voters[i] = voter{jar: jar, changer: w.rng.Float64() < cfg.ChangeRatio}
	}
	return w
}

// Close wakes any tick waiting for a voter; it then gets an error.
func (w *Workload) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// Starved returns how many ticks had to wait for a voter to be free.
func (w *Workload) Starved() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starved
}

var errClosed = errors.New("workload closed")

// Targeter returns the vegeta targeter: each call picks the next request.
func (w *Workload) Targeter() vegeta.Targeter {
	voteURL := w.base.JoinPath("vote").String()
	orderURL := w.base.JoinPath("orders").String()
	return func(t *vegeta.Target) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Header = http.Header{"Content-Type": {"application/json"}}
		if w.orderMix > 0 && w.rng.Float64() < w.orderMix {
			o := w.nextOrder()
			t.Method, t.URL = http.MethodPost, orderURL
			if len(o.lines) == 1 {
				t.Body = fmt.Appendf(nil, `{"order_id":%q,"item":%d,"quantity":%d}`, o.id, o.lines[0].Item, o.lines[0].Quantity)
			} else {
				t.Body, _ = json.Marshal(struct {
					OrderID string      `json:"order_id"`
					Lines   []OrderLine `json:"lines"`
				}{o.id, o.lines})
			}
			t.Header.Set(actionHeader, "o "+o.id+" "+formatLines(o.lines))
			return nil
		}
		i, err := w.nextVoter()
		if err != nil {
			return err
		}
		v := &w.voters[i]
		choice := w.choices[w.rng.IntN(len(w.choices))]
		switch {
		case v.votes == 0:
			v.first = choice
		case v.changer:
			choice = w.other(v.last)
		default:
			choice = v.first
		}
		v.votes++
		v.last = choice
		t.Method, t.URL = http.MethodPost, voteURL
		t.Body = fmt.Appendf(nil, `{"poll":%q,"choice":%q}`, w.poll, choice)
		t.Header.Set(actionHeader, "v "+strconv.Itoa(i)+"/"+choice)
		return nil
	}
}

// nextVoter picks whose vote goes next: a voter due to change their vote,
// else one who has not voted yet, else (every voter has voted) the longest
// idle one. It waits if every voter has a vote in flight.
func (w *Workload) nextVoter() (int, error) {
	for {
		if w.closed {
			return 0, errClosed
		}
		switch {
		case len(w.changes) > 0:
			i := w.changes[0]
			w.changes = w.changes[1:]
			return i, nil
		case w.fresh < len(w.voters):
			w.fresh++
			return w.fresh - 1, nil
		case len(w.idle) > 0:
			i := w.idle[0]
			w.idle = w.idle[1:]
			return i, nil
		}
		w.starved++
		w.cond.Wait()
	}
}

// other returns a choice different from c.
func (w *Workload) other(c string) string {
	for i, x := range w.choices {
		if x == c {
			return w.choices[(i+1+w.rng.IntN(len(w.choices)-1))%len(w.choices)]
		}
	}
	return w.choices[0]
}

func (w *Workload) nextOrder() order {
	if len(w.recent) > 0 && w.rng.Float64() < w.repeat {
		return w.recent[w.rng.IntN(len(w.recent))]
	}
	w.orderN++
	o := order{id: w.prefix + strconv.FormatInt(w.orderN, 10)}
	for _, i := range w.rng.Perm(len(w.items))[:w.cart] {
		o.lines = append(o.lines, OrderLine{Item: w.items[i], Quantity: 1 + w.rng.IntN(w.maxQty)})
	}
	return o
}

// formatLines writes lines as "item:quantity,…" for the action header;
// parseLines reads them back.
func formatLines(lines []OrderLine) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strconv.FormatInt(l.Item, 10) + ":" + strconv.Itoa(l.Quantity)
	}
	return strings.Join(parts, ",")
}

func parseLines(s string) ([]OrderLine, error) {
	var lines []OrderLine
	for p := range strings.SplitSeq(s, ",") {
		item, qty, _ := strings.Cut(p, ":")
		i, err1 := strconv.ParseInt(item, 10, 64)
		q, err2 := strconv.Atoi(qty)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("loadgen: bad order lines %q", s)
		}
		lines = append(lines, OrderLine{Item: i, Quantity: q})
	}
	return lines, nil
}

// done puts a voter back once their vote is answered.
func (w *Workload) done(i int) {
	w.mu.Lock()
	v := &w.voters[i]
	if v.votes == 1 && v.changer {
		w.changes = append(w.changes, i)
	} else {
		w.idle = append(w.idle, i)
	}
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *Workload) remember(o order) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.recent) < 1024 {
		w.recent = append(w.recent, o)
	} else {
		w.recent[w.rng.IntN(len(w.recent))] = o
	}
}

// RoundTrip sends one request of the workload: it adds the voter's cookies,
// reads the answer whole, stores the cookies it sets, and records the
// outcome in the ledger and the stats. A request without the action header
// (the tool's own setup requests) goes out unchanged.
func (w *Workload) RoundTrip(req *http.Request) (*http.Response, error) {
	action := req.Header.Get(actionHeader)
	if action == "" {
		return w.next.RoundTrip(req)
	}
	r := *req
	r.Header = req.Header.Clone()
	r.Header.Del(actionHeader)
	r.Header.Del("X-Vegeta-Seq") // vegeta's own bookkeeping stays here
	r.Header.Del("X-Vegeta-Attack")
	var (
		v      *voter
		index  string // the tool's number for the voter
		choice string
		sentAs string
		ord    order
	)
	f := strings.Fields(action)
	switch {
	case len(f) == 2 && f[0] == "v":
		index, choice, _ = strings.Cut(f[1], "/")
		i, _ := strconv.Atoi(index)
		v = &w.voters[i]
		defer w.done(i)
		for _, c := range v.jar.Cookies(req.URL) {
			r.AddCookie(c)
			if c.Name == voterCookie {
				sentAs, _, _ = ParseVoterCookie(c.Value)
			}
		}
	case len(f) == 3 && f[0] == "o":
		ord.id = f[1]
		var err error
		if ord.lines, err = parseLines(f[2]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("loadgen: bad action %q", action)
	}

	step := w.step.Load()
	start := time.Now()
	resp, err := w.next.RoundTrip(&r)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		if err != nil {
			resp = nil
		}
	}
	out := Outcome{At: start, Latency: time.Since(start), Kind: "vote"}
	if v == nil {
		out.Kind = "order"
	}
	if err != nil {
		out.Err = err.Error()
	} else {
		out.Code = resp.StatusCode
	}

	if v != nil {
		switch {
		case out.OK():
			cookies := resp.Cookies()
			v.jar.SetCookies(req.URL, cookies)
			var receipt struct {
				Receipt string `json:"receipt"`
				Choice  string `json:"choice"`
			}
			json.Unmarshal(answer, &receipt)
			if receipt.Choice != "" {
				choice = receipt.Choice
			}
			cookie := ""
			for _, c := range cookies {
				if c.Name == voterCookie {
					cookie = c.Value
				}
			}
			w.ledger.VoteAcked(sentAs, "#"+index, choice, receipt.Receipt, cookie)
		case out.Unknown():
			w.ledger.VoteUnknown(sentAs, choice)
		default:
			w.ledger.VoteRejected(sentAs)
		}
	} else {
		w.ledger.OrderSent(ord.id, ord.lines, out)
		if out.OK() {
			w.remember(ord)
		}
	}
	w.stats.Record(out)
	if step != nil {
		step.Record(out)
	}
	return resp, err
}
