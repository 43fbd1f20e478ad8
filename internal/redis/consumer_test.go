package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/testenv"
)

func consumer(t *testing.T, addr, name string) *redis.Consumer {
	c := &redis.Consumer{Client: redis.NewClient(redis.Config{Addr: addr}, 4), Stream: stream, Group: "workers", Name: name}
	t.Cleanup(func() { c.Client.Close() })
	if err := c.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// Trimming must never delete an entry that is still pending.
func TestTrimKeepsPendingEntries(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	ctx := context.Background()
	a := consumer(t, r.Addr, "a")
	ids := addEntries(t, c, 10)
	msgs, err := a.ReadNew(ctx, 10, 0)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("read %d, %v", len(msgs), err)
	}
	// Acknowledge 0-2 and 5; 3 is the oldest pending.
	if err := a.Ack(ctx, ids[0], ids[1], ids[2], ids[5]); err != nil {
		t.Fatal(err)
	}
	n, err := a.Trim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("trimmed %d entries, want 3 (those below the oldest pending)", n)
	}
	pending, err := a.ReadOwnPending(ctx, "0", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 6 {
		t.Fatalf("%d pending entries readable, want 6", len(pending))
	}
	for _, m := range pending {
		if m.Values == nil {
			t.Fatalf("pending entry %s was deleted by the trim", m.ID)
		}
	}
	// Once everything is acknowledged, all but the last delivered entry go.
	a.Ack(ctx, ids...)
	if _, err := a.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if l := c.XLen(ctx, stream).Val(); l != 1 {
		t.Fatalf("stream length %d after trimming a drained stream, want 1", l)
	}
	// Entries never delivered are never trimmed.
	more := addEntries(t, c, 5)
	a.Trim(ctx)
	if got := c.XRange(ctx, stream, more[0], "+").Val(); len(got) != 5 {
		t.Fatalf("undelivered entries trimmed: %d left of 5", len(got))
	}
}

// Entries a dead consumer left pending are claimed by another, with their
// delivery counts.
func TestClaimTakesIdleEntries(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	ctx := context.Background()
	dead, alive := consumer(t, r.Addr, "dead"), consumer(t, r.Addr, "alive")
	addEntries(t, c, 5)
	if msgs, _ := dead.ReadNew(ctx, 5, 0); len(msgs) != 5 {
		t.Fatalf("read %d", len(msgs))
	}
	got, _, err := alive.Claim(ctx, "0-0", time.Hour, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("claimed %d entries that were not idle long enough (%v)", len(got), err)
	}
	// Idle time is what Claim judges, so the entries must age: kept.
	time.Sleep(150 * time.Millisecond)
	got, next, err := alive.Claim(ctx, "0-0", 100*time.Millisecond, 10)
	if err != nil || len(got) != 5 || next != "0-0" {
		t.Fatalf("claimed %d, next %s, err %v", len(got), next, err)
	}
	for _, m := range got {
		if m.Deliveries != 2 || m.Values == nil {
			t.Fatalf("claimed %+v, want 2 deliveries and values", m)
		}
	}
	b, err := alive.Backlog(ctx)
	if err != nil || b.Pending != 5 || b.Lag != 0 {
		t.Fatalf("backlog %+v %v", b, err)
	}
	alive.Ack(ctx, got[0].ID, got[1].ID, got[2].ID, got[3].ID, got[4].ID)
	if b, _ := alive.Backlog(ctx); !b.Drained() {
		t.Fatalf("backlog %+v after acking all", b)
	}
}

func TestDeadLetterMovesAndAcks(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	ctx := context.Background()
	a := consumer(t, r.Addr, "a")
	addEntries(t, c, 1)
	msgs, _ := a.ReadNew(ctx, 1, 0)
	if err := a.DeadLetter(ctx, msgs[0], "test"); err != nil {
		t.Fatal(err)
	}
	dl := c.XRange(ctx, redis.DeadLetterStream, "-", "+").Val()
	if len(dl) != 1 || dl[0].Values["id"] != msgs[0].ID || dl[0].Values["reason"] != "test" || dl[0].Values["field:n"] != "0" {
		t.Fatalf("dead-letter stream: %+v", dl)
	}
	if b, _ := a.Backlog(ctx); !b.Drained() {
		t.Fatalf("dead-lettered entry still pending: %+v", b)
	}
}

// Oldest is the age of the oldest entry not yet acknowledged, pending or
// never delivered, by the Redis clock; 0 once every entry is acknowledged.
func TestOldestIsTheAgeOfTheOldestUnacknowledgedEntry(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	ctx := context.Background()
	a := consumer(t, r.Addr, "a")
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Ids are times: entries written 90 s and 30 s ago by the Redis clock.
	ids := make([]string, 2)
	for i, ago := range []time.Duration{90 * time.Second, 30 * time.Second} {
		id := fmt.Sprintf("%d-0", now.Add(-ago).UnixMilli())
		if ids[i], err = c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: id, Values: []any{"n", i}}).Result(); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
		want time.Duration // within a few seconds
	}{
		{"nothing delivered yet", func() {}, 90 * time.Second},
		{"both pending", func() { a.ReadNew(ctx, 2, 0) }, 90 * time.Second},
		{"the older one acknowledged", func() { a.Ack(ctx, ids[0]) }, 30 * time.Second},
		{"all acknowledged", func() { a.Ack(ctx, ids[1]) }, 0},
	}
	for _, s := range steps {
		s.do()
		got, err := a.Oldest(ctx)
		if err != nil {
			t.Fatalf("%s: Oldest: %v", s.name, err)
		}
		if got < s.want || got > s.want+5*time.Second {
			t.Errorf("%s: Oldest = %s, want about %s", s.name, got, s.want)
		}
	}
}
