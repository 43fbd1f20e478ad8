package redis_test

import (
	"context"
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
	time.Sleep(300 * time.Millisecond)
	r.Kill() // SIGKILL while appends are in flight
	close(stop)
	wg.Wait()
	p.Close()
	if len(acked) < 100 {
		t.Fatalf("only %d appends acknowledged before the kill; the test proves nothing", len(acked))
	}

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
