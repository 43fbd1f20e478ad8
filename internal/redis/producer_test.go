package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/testenv"
)

const stream = "surge:entries"

// A paused Redis cannot write: an Append must not return until it has.
func TestAppendAnswersOnlyAfterRedisWrote(t *testing.T) {
	r := testenv.Redis(t)
	admin := testenv.RedisClient(t, r)
	ctx := context.Background()
	p := redis.NewProducer(redis.NewClient(redis.Config{Addr: r.Addr}, 8), stream, redis.ProducerOptions{Timeout: 10 * time.Second})
	defer p.Close()

	if err := admin.Do(ctx, "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := p.Append(ctx, []any{"kind", "vote", "data", "{}"})
		done <- result{id, err}
	}()
	// What is tested is that nothing happens: the 500 ms give a wrong
	// Append the time to return early (kept on purpose).
	select {
	case res := <-done:
		t.Fatalf("Append returned while Redis could not write: %+v", res)
	case <-time.After(500 * time.Millisecond):
	}
	if n := admin.XLen(ctx, stream).Val(); n != 0 {
		t.Fatalf("stream has %d entries while paused", n)
	}
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	got, err := admin.XRange(ctx, stream, res.id, res.id).Result()
	if err != nil || len(got) != 1 {
		t.Fatalf("acknowledged entry %s not in stream: %v %v", res.id, got, err)
	}
}

// Every acknowledged entry survives SIGKILL of redis-server (appendfsync always).
func TestAcknowledgedEntriesSurviveRedisKill(t *testing.T) {
	r := testenv.Redis(t)
	ctx := context.Background()
	p := redis.NewProducer(redis.NewClient(redis.Config{Addr: r.Addr}, 16), stream, redis.ProducerOptions{})

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := p.Append(ctx, []any{"kind", "vote", "data", fmt.Sprintf("%d-%d", g, i)})
				if err != nil {
					return // Redis is gone: this entry was not acknowledged
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	// A kill before enough appends were acknowledged would prove nothing.
	// A thousand take well under a second at 10k+ appends/s.
	testenv.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 1000 {
			return fmt.Errorf("only %d appends acknowledged", len(acked))
		}
		return nil
	})
	r.Kill() // SIGKILL while appends are in flight
	close(stop)
	wg.Wait()
	p.Close()

	r2 := testenv.RestartRedis(t, r)
	c := testenv.RedisClient(t, r2)
	entries, err := c.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.ID] = true
	}
	for _, id := range acked {
		if !present[id] {
			t.Fatalf("acknowledged entry %s lost by the crash (%d acknowledged, %d present)", id, len(acked), len(entries))
		}
	}
	t.Logf("%d acknowledged, %d present after restart", len(acked), len(entries))
}

func TestAppendFailsWhenRedisIsDown(t *testing.T) {
	r := testenv.Redis(t)
	p := redis.NewProducer(redis.NewClient(redis.Config{Addr: r.Addr}, 4), stream, redis.ProducerOptions{Timeout: time.Second})
	defer p.Close()
	r.Kill()
	if _, err := p.Append(context.Background(), []any{"kind", "vote"}); err == nil {
		t.Fatal("Append succeeded with Redis down")
	}
}

// A refused dial is not tried again: a frontend whose Redis is gone must
// answer 503 at once, so that HAProxy drops it at that first 503 (go-redis's
// default, 5 dials 100 ms apart, let requests pile onto it meanwhile).
func TestClientDialsOnce(t *testing.T) {
	c := redis.NewClient(redis.Config{Addr: "127.0.0.1:1"}, 4)
	defer c.Close()
	if n := c.Options().DialerRetries; n != 1 {
		t.Fatalf("DialerRetries %d, want 1", n)
	}
}

func TestCheckDurable(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	ctx := context.Background()
	if err := redis.CheckDurable(ctx, c); err != nil {
		t.Fatalf("appendfsync always refused: %v", err)
	}
	c.ConfigSet(ctx, "appendfsync", "everysec")
	if err := redis.CheckDurable(ctx, c); err == nil {
		t.Fatal("appendfsync everysec accepted")
	}
	c.ConfigSet(ctx, "appendfsync", "always")
	c.ConfigSet(ctx, "appendonly", "no")
	if err := redis.CheckDurable(ctx, c); err == nil {
		t.Fatal("appendonly no accepted")
	}
}

func addEntries(t *testing.T, c *goredis.Client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.XAdd(context.Background(), &goredis.XAddArgs{Stream: stream, Values: []any{"n", i}}).Val()
	}
	return ids
}

// A collector waits up to its window for more entries: appends that arrive
// within it share one pipeline, and a full pipeline goes without waiting
// out the window.
func TestCollectWindowGathersAppends(t *testing.T) {
	r := testenv.Redis(t)
	tests := []struct {
		name      string
		window    time.Duration
		appends   int
		wantSizes []int
	}{
		// An hour-long window: only a full pipeline can answer these.
		{"full pipelines go at once", time.Hour, 8, []int{4, 4}},
		{"no window, one caller at a time", 0, 3, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var sizes []int
			p := redis.NewProducer(redis.NewClient(redis.Config{Addr: r.Addr}, 4), stream, redis.ProducerOptions{
				Collectors: 1, MaxBatch: 4, Window: tt.window,
				Observe: func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() },
			})
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tt.window == 0 { // one after another: nothing to gather
				for i := range tt.appends {
					if _, err := p.Append(ctx, []any{"n", i}); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				var wg sync.WaitGroup
				errs := make([]error, tt.appends)
				for i := range tt.appends {
					wg.Go(func() { _, errs[i] = p.Append(ctx, []any{"n", i}) })
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("append %d: %v", i, err)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(sizes) != fmt.Sprint(tt.wantSizes) {
				t.Fatalf("pipeline sizes %v, want %v", sizes, tt.wantSizes)
			}
		})
	}
}

// AppendOnce queues an entry only under a free key. A repeat with the same
// value queues nothing (ErrDuplicate); one with another value queues nothing
// either and says so (ErrConflict). A key left by an earlier version holds
// "pending" and counts as the same value.
func TestAppendOnceTellsRepeatsFromConflicts(t *testing.T) {
	r := testenv.Redis(t)
	admin := testenv.RedisClient(t, r)
	ctx := context.Background()
	p := redis.NewProducer(redis.NewClient(redis.Config{Addr: r.Addr}, 8), stream, redis.ProducerOptions{})
	defer p.Close()
	if err := admin.Set(ctx, "old", "pending", 0).Err(); err != nil {
		t.Fatal(err)
	}
	fields := []any{"kind", "order"}
	for _, tt := range []struct {
		name, key, value string
		want             error // nil: queued
		queued           int64 // stream length after
	}{
		{"free key", "k", "10:1", nil, 1},
		{"same value again", "k", "10:1", redis.ErrDuplicate, 1},
		{"another value", "k", "11:1", redis.ErrConflict, 1},
		{"another quantity", "k", "10:2", redis.ErrConflict, 1},
		{"key of an earlier version", "old", "10:1", redis.ErrDuplicate, 1},
		{"another free key", "k2", "11:1", nil, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, err := p.AppendOnce(ctx, tt.key, tt.value, time.Hour, fields)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (id != "") {
				t.Fatalf("AppendOnce = %q, %v; want error %v", id, err, tt.want)
			}
			if n := admin.XLen(ctx, stream).Val(); n != tt.queued {
				t.Fatalf("%d entries queued, want %d", n, tt.queued)
			}
		})
	}
	if v := admin.Get(ctx, "k").Val(); v != "10:1" {
		t.Fatalf("the key holds %q, want the first value", v)
	}
	if ttl := admin.TTL(ctx, "k").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("the key's TTL is %v, want up to 1h", ttl)
	}
}
