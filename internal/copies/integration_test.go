package copies_test

// The frontend over real redis-server processes, one per shard: what a 202
// means when entries have two copies.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// shards starts n Redis processes (appendfsync always).
func shards(t *testing.T, n int) ([]*launcher.Redis, []string) {
	var rs []*launcher.Redis
	var addrs []string
	for range n {
		r := testenv.Redis(t)
		rs, addrs = append(rs, r), append(addrs, r.Addr)
	}
	return rs, addrs
}

// frontend serves capture for shard own (from 1) of addrs.
func frontend(t *testing.T, addrs []string, own int, mutate ...func(*capture.Config)) *httptest.Server {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Shards, cfg.Shard = addrs, own
	cfg.Node = fmt.Sprintf("web-%d", own)
	cfg.CookieKeys = []string{"test-cookie-key-0123456789"}
	cfg.AppendTimeout = time.Second
	cfg.VoterRate, cfg.NewVotersPerIP, cfg.OrdersPerIP = 0, 0, 0
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := capture.New(context.Background(), cfg, capture.Options{})
	s = testenv.Started(t, s, err)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	json.NewDecoder(resp.Body).Decode(&got)
	return resp.StatusCode, got
}

// held returns the event ids in the stream of the shard at addr (nil if it
// is down).
func held(t *testing.T, addr string) map[string]int {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ids, _ := testenv.StreamEvents(context.Background(), c)
	return ids
}

func health(url string) int {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// where lists the shards (from 1) whose stream holds event id.
func where(t *testing.T, addrs []string, id string) []int {
	var on []int
	for i, a := range addrs {
		if held(t, a)[id] > 0 {
			on = append(on, i+1)
		}
	}
	return on
}

func TestA202MeansTwoShardsHoldTheEntry(t *testing.T) {
	rs, addrs := shards(t, 3)
	web := frontend(t, addrs, 1)
	vote := func() (int, string) {
		status, body := post(t, web.URL+"/vote", `{"choice":"cats"}`)
		id, _ := body["receipt"].(string)
		return status, id
	}

	status, id := vote()
	if on := where(t, addrs, id); status != http.StatusAccepted || fmt.Sprint(on) != "[1 2]" {
		t.Fatalf("vote: %d, held on shards %v; want 202 on shards 1 and 2", status, on)
	}

	// Shard 2 stops: the first vote may find out (and goes to shard 3
	// within its request); every 202 still means two copies, on 1 and 3.
	rs[1].Kill()
	<-rs[1].Done()
	for range 5 {
		status, id := vote()
		if on := where(t, addrs, id); status != http.StatusAccepted || fmt.Sprint(on) != "[1 3]" {
			t.Fatalf("shard 2 down: vote %d, held on shards %v; want 202 on shards 1 and 3", status, on)
		}
	}
	if h := health(web.URL); h != http.StatusOK {
		t.Fatalf("healthz %d with two of three shards up, want 200 (degraded)", h)
	}

	// Its own shard stops too: one shard up, two copies wanted. Nothing is
	// acknowledged, and once health has seen it nothing is even written.
	rs[0].Kill()
	<-rs[0].Done()
	for range 5 {
		if status, _ := vote(); status != http.StatusServiceUnavailable {
			t.Fatalf("one shard up: vote %d, want 503", status)
		}
	}
	if h := health(web.URL); h != http.StatusServiceUnavailable {
		t.Fatalf("healthz %d with one of three shards up, want 503", h)
	}
	before := len(held(t, addrs[2]))
	for range 5 {
		if status, _ := vote(); status != http.StatusServiceUnavailable {
			t.Fatalf("one shard up: vote %d, want 503", status)
		}
	}
	if after := len(held(t, addrs[2])); after != before {
		t.Fatalf("shard 3 went from %d to %d entries from refused votes", before, after)
	}

	// Both come back on their AOFs: the frontend finds them by itself.
	testenv.RestartRedis(t, rs[0])
	testenv.RestartRedis(t, rs[1])
	testenv.Eventually(t, 10*time.Second, func() error {
		status, id := vote()
		if on := where(t, addrs, id); status != http.StatusAccepted || fmt.Sprint(on) != "[1 2]" {
			return fmt.Errorf("vote %d, held on shards %v; want 202 on shards 1 and 2", status, on)
		}
		return nil
	})
}

// With one shard up, copies 1 (a one-node install's setting) still takes
// votes; two copies refuse them.
func TestOneShardUp(t *testing.T) {
	rs, addrs := shards(t, 2)
	two, one := frontend(t, addrs, 1), frontend(t, addrs, 1, func(c *capture.Config) { c.Copies = 1 })
	rs[0].Kill()
	<-rs[0].Done()
	if status, _ := post(t, two.URL+"/vote", `{"choice":"cats"}`); status != http.StatusServiceUnavailable {
		t.Fatalf("two copies, one shard up: %d, want 503", status)
	}
	status, body := post(t, one.URL+"/vote", `{"choice":"cats"}`)
	if id, _ := body["receipt"].(string); status != http.StatusAccepted || fmt.Sprint(where(t, addrs, id)) != "[2]" {
		t.Fatalf("one copy, own shard down: %d %v, want 202 on shard 2", status, body)
	}
}

// An order id is taken on the shards its id hashes to, whichever frontend
// took it: a repeat on another frontend queues nothing, and a reuse with
// another payload is a 409, with any one shard down too.
func TestOrderRepeatRefusedOnEveryFrontend(t *testing.T) {
	rs, addrs := shards(t, 3)
	webs := []*httptest.Server{frontend(t, addrs, 1), frontend(t, addrs, 2), frontend(t, addrs, 3)}
	total := func(id string) int {
		n := 0
		for _, a := range addrs {
			n += held(t, a)[id]
		}
		return n
	}
	for i := range 6 {
		id := fmt.Sprintf("order-%d", i)
		order := fmt.Sprintf(`{"order_id":%q,"item":1,"quantity":2}`, id)
		if status, _ := post(t, webs[0].URL+"/orders", order); status != http.StatusAccepted || total(id) != 2 {
			t.Fatalf("%s: %d, %d copies queued; want 202 and 2", id, status, total(id))
		}
		for _, w := range webs {
			if status, _ := post(t, w.URL+"/orders", order); status != http.StatusAccepted {
				t.Fatalf("%s repeated: %d, want 202", id, status)
			}
			if status, _ := post(t, w.URL+"/orders", fmt.Sprintf(`{"order_id":%q,"item":1,"quantity":3}`, id)); status != http.StatusConflict {
				t.Fatalf("%s with another quantity: %d, want 409", id, status)
			}
		}
		if n := total(id); n != 2 {
			t.Fatalf("%s: %d copies queued after repeats, want 2", id, n)
		}
	}
	rs[0].Kill()
	<-rs[0].Done()
	for i := range 6 {
		id := fmt.Sprintf("order-%d", i)
		for _, w := range webs {
			if status, _ := post(t, w.URL+"/orders", fmt.Sprintf(`{"order_id":%q,"item":1,"quantity":3}`, id)); status != http.StatusConflict {
				t.Fatalf("shard 1 down: %s with another quantity: %d, want 409", id, status)
			}
		}
	}
}
