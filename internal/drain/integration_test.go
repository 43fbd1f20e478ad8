package drain_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const stream = redis.DefaultStream

func setup(t *testing.T) (*launcher.Redis, *goredis.Client, *postgres.DB) {
	t.Helper()
	r := testenv.Redis(t)
	db := testenv.Postgres(t)
	if err := db.EnsurePolls(context.Background(), surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	return r, testenv.RedisClient(t, r), db
}

func newConsumer(t testing.TB, addr, name string) *redis.Consumer {
	c := &redis.Consumer{Client: redis.NewClient(redis.Config{Addr: addr}, 4), Stream: stream, Group: "workers", Name: name}
	t.Cleanup(func() { c.Client.Close() })
	if err := c.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// addVotes queues n votes from distinct voters, alternating cats and dogs.
func addVotes(t *testing.T, c *goredis.Client, n int, prefix string) map[string]int64 {
	t.Helper()
	want := map[string]int64{"cats": 0, "dogs": 0}
	for i := range n {
		choice := []string{"cats", "dogs"}[i%2]
		fields := surge.EncodeVote(surge.Vote{ID: fmt.Sprintf("%s-%06d", prefix, i), Poll: surge.DefaultPollID,
			Choice: choice, Voter: fmt.Sprintf("%s-voter-%d", prefix, i), Version: 1})
		if err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: stream, Values: fields}).Err(); err != nil {
			t.Fatal(err)
		}
		want[choice]++
	}
	return want
}

// runShard drains in the background until the returned stop is called.
func runShard(t *testing.T, q drain.Queue, db drain.Store, opt drain.Options) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if opt.Block == 0 {
		opt.Block = 100 * time.Millisecond
	}
	go func() {
		defer close(done)
		defer func() { recover() }() // a crash hook panics
		drain.NewShard(q, db, opt).Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitCounts waits until the poll's counts are want and the group is
// drained: a few hundred votes in a few batches, after a claim_idle
// (300 ms) where a dead worker left them.
func waitCounts(t *testing.T, db *postgres.DB, q *redis.Consumer, want map[string]int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		res, err := db.Results(context.Background(), surge.DefaultPollID)
		b, berr := q.Backlog(context.Background())
		if err == nil && berr == nil && b.Drained() && res.Counts["cats"] == want["cats"] && res.Counts["dogs"] == want["dogs"] {
			return nil
		}
		return fmt.Errorf("counts %+v (err %v), backlog %+v (err %v); want %v", res.Counts, err, b, berr, want)
	})
}

// A worker that read entries and died: another worker claims them once idle.
func TestEntriesOfADeadWorkerAreClaimed(t *testing.T) {
	r, c, db := setup(t)
	want := addVotes(t, c, 300, "a")
	dead := newConsumer(t, r.Addr, "dead")
	if msgs, err := dead.ReadNew(context.Background(), 1000, 0); err != nil || len(msgs) != 300 {
		t.Fatalf("dead worker read %d, %v", len(msgs), err)
	}
	alive := newConsumer(t, r.Addr, "alive")
	runShard(t, alive, db, drain.Options{ClaimIdle: 300 * time.Millisecond, ClaimEvery: 100 * time.Millisecond, BatchSize: 64})
	waitCounts(t, db, alive, want)
}

// A restarted worker replays its own pending entries, without waiting for
// them to become idle.
func TestRestartedWorkerReplaysItsOwnPending(t *testing.T) {
	r, c, db := setup(t)
	want := addVotes(t, c, 200, "b")
	before := newConsumer(t, r.Addr, "worker-1")
	if msgs, _ := before.ReadNew(context.Background(), 1000, 0); len(msgs) != 200 {
		t.Fatalf("read %d", len(msgs))
	}
	after := newConsumer(t, r.Addr, "worker-1")
	runShard(t, after, db, drain.Options{ClaimIdle: time.Hour, BatchSize: 50})
	waitCounts(t, db, after, want)
}

type crash struct{}

// A crash between the commit and the XACK: the entries are delivered again
// and applying them again changes nothing.
func TestCrashBetweenCommitAndAckCountsOnce(t *testing.T) {
	r, c, db := setup(t)
	want := addVotes(t, c, 100, "c")
	q := newConsumer(t, r.Addr, "worker-1")
	var once sync.Once
	crashed := make(chan struct{})
	stop := runShard(t, q, db, drain.Options{BatchSize: 1000, ClaimIdle: time.Hour, AfterCommit: func([]string) {
		once.Do(func() { close(crashed); panic(crash{}) })
	}})
	<-crashed
	stop()
	res, _ := db.Results(context.Background(), surge.DefaultPollID)
	b, _ := q.Backlog(context.Background())
	if res.Total != 100 || b.Pending != 100 {
		t.Fatalf("after the crash: total %d (want 100 committed), pending %d (want 100 unacked)", res.Total, b.Pending)
	}
	runShard(t, newConsumer(t, r.Addr, "worker-1"), db, drain.Options{ClaimIdle: time.Hour})
	waitCounts(t, db, q, want) // exactly 50/50 again, not doubled
}

// Poison entries go to the dead-letter stream and do not block the shard.
func TestPoisonEntriesAreDeadLettered(t *testing.T) {
	r, c, db := setup(t)
	ctx := context.Background()
	c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"kind", "vote", "data", "{not json"}})
	c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"kind", "teleport", "data", "{}"}})
	fields := surge.EncodeVote(surge.Vote{ID: "x1", Poll: "no-such-poll", Choice: "cats", Voter: "v", Version: 1})
	c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: fields})
	want := addVotes(t, c, 10, "d")
	q := newConsumer(t, r.Addr, "worker-1")
	metrics := drain.NewMetrics(nil)
	runShard(t, q, db, drain.Options{Shard: "s1", Metrics: metrics, ClaimIdle: time.Hour})
	waitCounts(t, db, q, want)
	dead := c.XRange(ctx, redis.DeadLetterStream, "-", "+").Val()
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dead), dead)
	}
	var reasons []string
	for _, d := range dead {
		reasons = append(reasons, d.Values["reason"].(string))
	}
	joined := strings.Join(reasons, "|")
	if strings.Count(joined, "undecodable") != 2 || !strings.Contains(joined, "unknown poll or option") {
		t.Fatalf("reasons %q", reasons)
	}
}

// Latest vote wins across queues: a voter votes cats on frontend A, then,
// with the cookie from that 202, dogs on frontend B, whose clock is an hour
// behind. Whichever shard is drained first, dogs is counted.
func TestLatestVoteWinsAcrossQueues(t *testing.T) {
	for _, order := range []string{"B first", "A first"} {
		t.Run(order, func(t *testing.T) {
			ra, rb := testenv.Redis(t), testenv.Redis(t)
			db := testenv.Postgres(t)
			db.EnsurePolls(context.Background(), surge.DefaultPolls())
			now := time.Now()
			front := func(r *launcher.Redis, node string, clock time.Time) string {
				cfg := capture.DefaultConfig()
				cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, node, []string{"shared-key-0123456789abcdef"}
				s, err := capture.New(context.Background(), cfg, capture.Options{Now: func() time.Time { return clock }})
				if err != nil {
					t.Fatal(err)
				}
				ts := httptest.NewServer(s.Handler())
				t.Cleanup(func() { ts.Close(); s.Close() })
				return ts.URL
			}
			a := front(ra, "a", now)
			b := front(rb, "b", now.Add(-time.Hour))

			vote := func(url, choice string, ck *http.Cookie) *http.Cookie {
				req, _ := http.NewRequest("POST", url+"/vote", strings.NewReader(`{"choice":"`+choice+`"}`))
				req.Header.Set("Content-Type", "application/json")
				if ck != nil {
					req.AddCookie(ck)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 202 {
					t.Fatalf("vote %s: %v %v", choice, resp.StatusCode, err)
				}
				resp.Body.Close()
				for _, c := range resp.Cookies() {
					if c.Name == voter.CookieName {
						return c
					}
				}
				t.Fatal("no cookie")
				return nil
			}
			ck := vote(a, "cats", nil)
			vote(b, "dogs", ck)

			qa, qb := newConsumer(t, ra.Addr, "w"), newConsumer(t, rb.Addr, "w")
			first, second := qb, qa
			if order == "A first" {
				first, second = qa, qb
			}
			stop := runShard(t, first, db, drain.Options{ClaimIdle: time.Hour})
			waitDrained(t, first)
			stop()
			runShard(t, second, db, drain.Options{ClaimIdle: time.Hour})
			waitCounts(t, db, second, map[string]int64{"cats": 0, "dogs": 1})
		})
	}
}

// waitDrained waits until q's group has acknowledged everything: a few
// votes, one batch.
func waitDrained(t *testing.T, q *redis.Consumer) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		b, err := q.Backlog(context.Background())
		if err == nil && !b.Drained() {
			err = fmt.Errorf("queue not drained: %+v", b)
		}
		return err
	})
}

// A shard whose Redis comes back without its data (a new disk) has no
// consumer group: the worker creates it again and drains what is queued
// there next, without a restart.
func TestShardThatLostItsDataIsDrainedAgain(t *testing.T) {
	r, rc, db := setup(t)
	q := newConsumer(t, r.Addr, "w1")
	runShard(t, q, db, drain.Options{Shard: r.Addr, BatchSize: 50, ClaimIdle: time.Hour})
	want := addVotes(t, rc, 20, "before")
	waitCounts(t, db, q, want)

	if err := rc.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for k, v := range addVotes(t, rc, 30, "after") {
		want[k] += v
	}
	waitCounts(t, db, q, want)
}
