package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	poll       = "cats-vs-dogs"
	cookieName = "surge_voter"
)

var choices = [2]string{"cats", "dogs"}

// client talks to HAProxy's published port on loopback.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

type receipt struct {
	Receipt string `json:"receipt"`
	Poll    string `json:"poll"`
	Choice  string `json:"choice"`
	Node    string `json:"node"`
}

// vote sends one vote with the voter's cookie (empty for a new voter) and
// returns the receipt and the cookie to use next. Anything but a 202 with a
// receipt is an error.
func (c *client) vote(ctx context.Context, cookie, choice string) (receipt, string, error) {
	body := fmt.Sprintf(`{"poll":%q,"choice":%q}`, poll, choice)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/vote", strings.NewReader(body))
	if err != nil {
		return receipt{}, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return receipt{}, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return receipt{}, "", fmt.Errorf("vote: %s %s", resp.Status, b)
	}
	var r receipt
	if err := json.Unmarshal(b, &r); err != nil || r.Receipt == "" || r.Choice != choice {
		return receipt{}, "", fmt.Errorf("vote: bad receipt %s (%v)", b, err)
	}
	next := cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			next = ck.Value
		}
	}
	if next == "" {
		return receipt{}, "", fmt.Errorf("vote: no %s cookie in the 202", cookieName)
	}
	return r, next, nil
}

// counts returns the poll's counts from result, through HAProxy.
func (c *client) counts(ctx context.Context) (map[string]int64, int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/results/api/polls/"+poll, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("results: %s %s", resp.Status, b)
	}
	var r struct {
		Counts map[string]int64 `json:"counts"`
		Total  int64            `json:"total"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, 0, fmt.Errorf("results: %s: %w", b, err)
	}
	return r.Counts, r.Total, nil
}

// tally is what was acknowledged: every voter's latest acknowledged choice,
// and which frontend answered each 202.
type tally struct {
	mu       sync.Mutex
	final    map[string]int64 // choice → voters whose latest 202 was for it
	nodes    map[string]int
	ok       atomic.Int64
	failed   atomic.Int64
	failures []string
}

func newTally() *tally {
	return &tally{final: map[string]int64{}, nodes: map[string]int{}}
}

func (t *tally) acked(r receipt, previous string) {
	t.ok.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes[r.Node]++
	if previous != "" {
		t.final[previous]--
	}
	t.final[r.Choice]++
}

func (t *tally) fail(err error) {
	t.failed.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.failures) < 20 {
		t.failures = append(t.failures, err.Error())
	}
}

func (t *tally) snapshot() (final map[string]int64, nodes map[string]int, failures []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	final, nodes = map[string]int64{}, map[string]int{}
	for k, v := range t.final {
		final[k] = v
	}
	for k, v := range t.nodes {
		nodes[k] = v
	}
	return final, nodes, append([]string(nil), t.failures...)
}

// loadOptions bound a load run in count and in time.
type loadOptions struct {
	Voters      int           // at most this many new voters (0: until ctx ends)
	Concurrency int           // voters in flight
	Every       time.Duration // pause between one goroutine's voters (0: none)
	ChangeShare float64       // share of voters who change their vote once, with their cookie
	MaxDuration time.Duration
}

// runLoad votes until opt.Voters voters have voted, ctx ends or
// opt.MaxDuration passes. Each voter votes once and some change their vote
// afterwards, sequentially: the second vote is sent after the first 202.
func runLoad(ctx context.Context, c *client, t *tally, opt loadOptions) {
	ctx, cancel := context.WithTimeout(ctx, opt.MaxDuration)
	defer cancel()
	var issued atomic.Int64
	var wg sync.WaitGroup
	for g := range opt.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				if opt.Voters > 0 && issued.Add(1) > int64(opt.Voters) {
					return
				}
				first := choices[rng.IntN(2)]
				// A request cut short by the end of the run is not a failure,
				// and its outcome is unknown: stop without counting it.
				r, cookie, err := c.vote(context.WithoutCancel(ctx), "", first)
				if err != nil {
					t.fail(err)
				} else {
					t.acked(r, "")
					if rng.Float64() < opt.ChangeShare {
						second := choices[1-indexOf(first)]
						if r2, _, err := c.vote(context.WithoutCancel(ctx), cookie, second); err != nil {
							t.fail(err)
						} else {
							t.acked(r2, first)
						}
					}
				}
				if opt.Every > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(opt.Every):
					}
				}
			}
		})
	}
	wg.Wait()
}

func indexOf(choice string) int {
	if choice == choices[1] {
		return 1
	}
	return 0
}
