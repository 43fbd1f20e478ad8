package drain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

// Three frontends on three shards, two copies of every entry: votes (some
// voters changing theirs on another frontend) and orders (repeated on every
// frontend) are all on two shards before the drain, and once drained they
// count exactly once. Shard 1 is drained first, so the worker skips the
// copies of its events on the others without applying them again.
func TestTwoCopiesCountOnce(t *testing.T) {
	ctx := context.Background()
	var rs []*launcher.Redis
	var addrs []string
	var clients []*goredis.Client
	for range 3 {
		r := testenv.Redis(t)
		rs, addrs, clients = append(rs, r), append(addrs, r.Addr), append(clients, testenv.RedisClient(t, r))
	}
	db := testenv.Postgres(t)
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	ten := surge.Cents(1000)
	item, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Poster", Quantity: 10, Price: &ten})
	if err != nil {
		t.Fatal(err)
	}
	var webs []string
	for own := 1; own <= 3; own++ {
		cfg := capture.DefaultConfig()
		cfg.Shards, cfg.Shard, cfg.CookieKeys, cfg.Node = addrs, own, []string{"key-0123456789abcdef"}, fmt.Sprintf("web-%d", own)
		cfg.VoterRate, cfg.NewVotersPerIP, cfg.OrdersPerIP = 0, 0, 0
		s, err := capture.New(ctx, cfg, capture.Options{})
		s = testenv.Started(t, s, err)
		ts := httptest.NewServer(s.Handler())
		t.Cleanup(ts.Close)
		webs = append(webs, ts.URL)
	}
	post := func(url, body string, ck *http.Cookie) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if ck != nil {
			req.AddCookie(ck)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s %s: %d %v", url, body, resp.StatusCode, got)
		}
		return resp, got
	}

	// 60 voters on the three frontends; every third changes their vote to
	// dogs on the next frontend.
	want := map[string]int64{"cats": 0, "dogs": 0}
	var receipts []string
	for i := range 60 {
		choice := []string{"cats", "dogs"}[i%2]
		resp, got := post(webs[i%3]+"/vote", `{"choice":"`+choice+`"}`, nil)
		receipts = append(receipts, got["receipt"].(string))
		if i%3 == 0 {
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == voter.CookieName {
					ck = c
				}
			}
			_, got := post(webs[(i+1)%3]+"/vote", `{"choice":"dogs"}`, ck)
			receipts = append(receipts, got["receipt"].(string))
			choice = "dogs"
		}
		want[choice]++
	}
	// 5 orders of 3 against a stock of 10, each sent to every frontend.
	var orders []string
	for i := range 5 {
		id := fmt.Sprintf("poster-%d", i)
		orders = append(orders, id)
		for _, w := range webs {
			post(w+"/orders", fmt.Sprintf(`{"order_id":%q,"item":%d,"quantity":3}`, id, item.ID), nil)
		}
	}
	held := make([]map[string]int, 3)
	for i, c := range clients {
		if held[i], err = testenv.StreamEvents(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range append(receipts, orders...) {
		if n := held[0][id] + held[1][id] + held[2][id]; n != 2 {
			t.Fatalf("event %s: %d copies queued, want 2", id, n)
		}
	}

	applied, metrics := drain.NewApplied(drain.DefaultApplied), drain.NewMetrics(nil)
	queues := make([]*redis.Consumer, 3)
	for i, r := range rs {
		queues[i] = newConsumer(t, r.Addr, "w")
	}
	run := func(i int) {
		runShard(t, queues[i], db, drain.Options{Shard: strconv.Itoa(i + 1), ClaimIdle: time.Hour, Applied: applied, Metrics: metrics})
	}
	run(0)
	waitDrained(t, queues[0])
	run(1)
	run(2)
	waitCounts(t, db, queues[1], want)
	waitDrained(t, queues[2])

	var n, stock, confirmed int64
	db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'confirmed') FROM orders`).Scan(&n, &confirmed)
	db.Pool.QueryRow(ctx, `SELECT quantity FROM items WHERE id = $1`, item.ID).Scan(&stock)
	if n != 5 || confirmed != 3 || stock != 1 {
		t.Fatalf("orders %d (want 5), confirmed %d (want 3), stock %d (want 1)", n, confirmed, stock)
	}
	// Every copy on shards 2 and 3 of an event shard 1 held was skipped.
	overlap := 0
	for id := range held[0] {
		overlap += held[1][id] + held[2][id]
	}
	skipped := int(testutil.ToFloat64(metrics.CopiesSkipped.WithLabelValues("2")) + testutil.ToFloat64(metrics.CopiesSkipped.WithLabelValues("3")))
	if skipped < overlap || overlap == 0 {
		t.Fatalf("%d copies skipped on shards 2 and 3, want at least the %d copies of shard 1's events", skipped, overlap)
	}
}

// BenchmarkDrainCopies drains the same votes written once (one shard each)
// and twice (two shards each, as with copies = 2) by one worker draining
// two shards, with and without remembering what it applied. Compare ns/op
// (each op is the whole drain of -votes votes): the ratio is what the
// second copy costs. Run it alone:
//
//	go test -run '^$' -bench DrainCopies -benchtime 3x ./internal/drain/
func BenchmarkDrainCopies(b *testing.B) {
	const votes = 20000
	for _, tt := range []struct {
		name     string
		copies   int
		remember bool
	}{{"copies=1", 1, true}, {"copies=2", 2, true}, {"copies=2,no-skip", 2, false}} {
		b.Run(tt.name, func(b *testing.B) {
			ctx := context.Background()
			var skipped, entries float64
			for range b.N {
				b.StopTimer()
				rs := []*launcher.Redis{testenv.Redis(b), testenv.Redis(b)}
				db := testenv.Postgres(b)
				if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
					b.Fatal(err)
				}
				var queues []*redis.Consumer
				for i, r := range rs {
					queues = append(queues, newConsumer(b, r.Addr, "w"))
					fill(b, queues[i].Client, votes, i, tt.copies)
				}
				var applied *drain.Applied
				if tt.remember {
					applied = drain.NewApplied(drain.DefaultApplied)
				}
				metrics := drain.NewMetrics(nil)
				b.StartTimer()
				dctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{}, len(queues))
				for i, q := range queues {
					s := drain.NewShard(q, db, drain.Options{Shard: strconv.Itoa(i + 1), ClaimIdle: time.Hour, Block: 10 * time.Millisecond,
						Applied: applied, Metrics: metrics})
					go func() { s.Run(dctx); done <- struct{}{} }()
				}
				for _, q := range queues {
					err := testenv.WaitFor(ctx, testenv.AnswersBound(votes), func() error {
						bl, err := q.Backlog(ctx)
						if err == nil && !bl.Drained() {
							err = fmt.Errorf("backlog %+v", bl)
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cancel()
				for range queues {
					<-done
				}
				res, err := db.Results(ctx, surge.DefaultPollID)
				if err != nil || res.Total != votes {
					b.Fatalf("total %d (%v), want %d", res.Total, err, votes)
				}
				for i := range queues {
					skipped += testutil.ToFloat64(metrics.CopiesSkipped.WithLabelValues(strconv.Itoa(i + 1)))
					entries += testutil.ToFloat64(metrics.Applied.WithLabelValues(strconv.Itoa(i + 1)))
				}
				for _, r := range rs {
					r.Kill()
				}
			}
			b.ReportMetric(skipped/float64(b.N), "skipped/op")
			b.ReportMetric(entries/float64(b.N), "applied/op")
		})
	}
}

// fill queues shard i's part of votes distinct votes: with one copy every
// other vote, with two every vote (each is on both shards, as copies puts
// it on its own shard and the next).
func fill(b *testing.B, c *goredis.Client, votes, shard, copies int) {
	ctx := context.Background()
	pipe := c.Pipeline()
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for i := range votes {
		if copies == 1 && i%2 != shard {
			continue
		}
		v := surge.Vote{ID: fmt.Sprintf("bench-%08d", i), Poll: surge.DefaultPollID, Choice: []string{"cats", "dogs"}[i%2],
			Voter: fmt.Sprintf("%032x", i), Version: int64(i + 1), Node: "bench", At: at}
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: surge.EncodeVote(v)})
		if pipe.Len() == 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
