package drain

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
)

// Check judges a shard by what its loop has done, as of a given moment. The
// tests bring the loop to a state, then ask about now (within the bound)
// and about a moment far past the bound, rather than waiting for it.
func TestShardCheck(t *testing.T) {
	storeDown := func(int, []surge.Vote) ([]surge.Vote, error) {
		return nil, surge.Unavailable("database", errors.New("connection refused"))
	}
	readsAtLeast := func(n int) func(*harness) bool {
		return func(h *harness) bool {
			h.q.mu.Lock()
			defer h.q.mu.Unlock()
			return h.q.readNews >= n
		}
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T, h *harness)
		reached    func(h *harness) bool // the loop is in the state to judge
		backlog    redis.Backlog
		backlogErr error
		want       string // in the error past the bound; "" for healthy
	}{
		{
			name:    "idle with nothing waiting",
			reached: readsAtLeast(1),
			want:    "",
		},
		{
			name:    "read stuck while entries wait",
			reached: readsAtLeast(1),
			backlog: redis.Backlog{Lag: 5},
			want:    "with entries waiting (5)",
		},
		{
			name: "batch held while the store is down",
			setup: func(t *testing.T, h *harness) {
				h.store.behave = storeDown
				h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}}
			},
			reached: func(h *harness) bool { return h.store.callCount() >= 2 },
			backlog: redis.Backlog{Pending: 2},
			want:    "with entries waiting (2)",
		},
		{
			name:       "stalled and the backlog cannot be read",
			reached:    readsAtLeast(1),
			backlogErr: errors.New("connection refused"),
			want:       "backlog cannot be read",
		},
		{
			name:    "redis failing",
			setup:   func(t *testing.T, h *harness) { h.q.newFails = 1 << 30 },
			reached: readsAtLeast(2), // the first failure is recorded
			want:    "unreadable for",
		},
		{
			name: "redis back after a failure",
			setup: func(t *testing.T, h *harness) {
				h.q.newFails = 1
				h.q.news = [][]redis.Message{{voteMsg(t, 1, 1)}}
			},
			reached: func(h *harness) bool { return len(h.q.ackedIDs()) == 1 },
			backlog: redis.Backlog{Lag: 1},
			want:    "with entries waiting (1)", // not "unreadable": the read that worked cleared it
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.opt.UnhealthyAfter = time.Hour
			h.q.backlog, h.q.backlogErr = tt.backlog, tt.backlogErr
			if tt.setup != nil {
				tt.setup(t, h)
			}
			h.start(t)
			h.waitUntil(t, "the state to judge", func() bool { return tt.reached(h) })
			ctx := context.Background()

			if err := h.shard.Check(ctx, time.Now()); err != nil {
				t.Fatalf("within the bound: Check = %v, want nil", err)
			}
			err := h.shard.Check(ctx, time.Now().Add(2*time.Hour))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("past the bound: Check = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("past the bound: Check = %v, want an error containing %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "shard shard-a: "):
				t.Fatalf("Check = %q, want it to name the shard", err)
			}
		})
	}
}

// A shard that has not started is not healthy yet: the worker may still be
// waiting for Postgres or migrating.
func TestShardCheckBeforeRun(t *testing.T) {
	h := newHarness(nil)
	s := NewShard(h.q, h.store, h.opt)
	if err := s.Check(context.Background(), time.Now()); err == nil || err.Error() != "shard shard-a: not draining yet" {
		t.Fatalf("Check = %v, want \"shard shard-a: not draining yet\"", err)
	}
}

func TestHealthReportsEveryProblem(t *testing.T) {
	stalled := func(name string, b redis.Backlog) *Shard {
		h := newHarness(nil)
		h.opt.Shard, h.opt.UnhealthyAfter = name, time.Hour
		h.q.backlog = b
		s := NewShard(h.q, h.store, h.opt)
		s.progressed() // as Run does when it starts
		return s
	}
	shards := []*Shard{stalled("a:1", redis.Backlog{Lag: 4}), stalled("b:2", redis.Backlog{})}
	pgDown := func(context.Context) error {
		return errors.New("dial tcp 10.0.0.7:5432: connect: connection refused")
	}
	pgUp := func(context.Context) error { return nil }
	ctx := context.Background()

	if err := healthOf(pgUp, shards)(ctx); err != nil {
		t.Fatalf("health = %v, want nil (nothing stalled yet)", err)
	}
	for _, s := range shards {
		s.mu.Lock()
		s.progress = s.progress.Add(-2 * time.Hour) // as if two hours passed without progress
		s.mu.Unlock()
	}
	err := healthOf(pgDown, shards)(ctx)
	if err == nil {
		t.Fatal("health = nil, want Postgres and shard a:1 reported")
	}
	if failing := httpx.Failing(err); failing != "postgres, shard 1" {
		t.Errorf("failing = %q, want %q", failing, "postgres, shard 1")
	}
	msg := err.Error() // the log's detail
	for _, want := range []string{"10.0.0.7", "shard a:1: no progress for 2h", "with entries waiting (4)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("health = %q, want it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "b:2") {
		t.Errorf("health = %q blames shard b:2, which has nothing waiting", msg)
	}
}

// A shard that cannot be read while another drains is degraded: the worker
// stays healthy (a restart would only stop the other's draining) and names
// it. With every shard unreadable the worker can do nothing: down.
func TestHealthUnreadableShard(t *testing.T) {
	shard := func(name string, unreadable bool) *Shard {
		h := newHarness(nil)
		h.opt.Shard, h.opt.UnhealthyAfter = name, time.Minute
		s := NewShard(h.q, h.store, h.opt)
		s.read(nil) // as a first successful read does
		if unreadable {
			s.read(errors.New("dial tcp 10.0.0.9:6379: i/o timeout"))
			s.mu.Lock()
			s.failingSince = s.failingSince.Add(-2 * time.Minute)
			s.mu.Unlock()
		}
		return s
	}
	pgUp := func(context.Context) error { return nil }
	tests := []struct {
		name              string
		unreadable        []bool
		failing, degraded string
	}{
		{"all readable", []bool{false, false}, "", ""},
		{"one of two unreadable", []bool{false, true}, "", "shard 2"},
		{"every shard unreadable", []bool{true, true}, "shard 1, shard 2", ""},
		{"the only shard unreadable", []bool{true}, "shard 1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var shards []*Shard
			for i, u := range tt.unreadable {
				shards = append(shards, shard(string(rune('a'+i))+":1", u))
			}
			failing, degraded := httpx.Problems(healthOf(pgUp, shards)(context.Background()))
			if got := strings.Join(failing, ", "); got != tt.failing {
				t.Errorf("failing = %q, want %q", got, tt.failing)
			}
			if got := strings.Join(degraded, ", "); got != tt.degraded {
				t.Errorf("degraded = %q, want %q", got, tt.degraded)
			}
		})
	}
}
