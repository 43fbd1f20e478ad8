package copies_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/copies"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestRing(t *testing.T) {
	const U, D = true, false
	tests := []struct {
		name   string
		start  int
		up     []bool
		copies int
		want   []int // the shards that take the entry; nil: refused
	}{
		{"one shard, one copy", 0, []bool{U}, 1, []int{0}},
		{"one shard down", 0, []bool{D}, 1, nil},
		{"two shards, own and next", 0, []bool{U, U}, 2, []int{0, 1}},
		{"two shards, the last wraps to the first", 1, []bool{U, U}, 2, []int{1, 0}},
		{"two shards, one down: refused", 0, []bool{U, D}, 2, nil},
		{"two shards, own down: refused", 0, []bool{D, U}, 2, nil},
		{"two shards, one down, one copy: own", 0, []bool{U, D}, 1, []int{0}},
		{"two shards, own down, one copy: the next", 0, []bool{D, U}, 1, []int{1}},
		{"three shards, all up", 1, []bool{U, U, U}, 2, []int{1, 2}},
		{"three shards, own down: the two others", 1, []bool{U, D, U}, 2, []int{2, 0}},
		{"three shards, next down: own and the one after", 1, []bool{U, U, D}, 2, []int{1, 0}},
		{"three shards, another down: own and next", 0, []bool{U, U, D}, 2, []int{0, 1}},
		{"three shards, two down: refused", 0, []bool{U, D, D}, 2, nil},
		{"three shards, two down, one copy", 2, []bool{U, D, D}, 1, []int{0}},
		{"three shards, one copy: own", 2, []bool{U, U, U}, 1, []int{2}},
		{"four shards, three copies past a dead one", 3, []bool{U, D, U, U}, 3, []int{3, 0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := copies.Ring(tt.start, tt.up)
			var got []int
			if len(ring) >= tt.copies {
				got = ring[:tt.copies]
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Ring(%d, %v)[:%d] = %v, want %v", tt.start, tt.up, tt.copies, got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		shards, own, copies int
		ok                  bool
	}{
		{1, 0, 1, true}, {2, 1, 2, true}, {3, 2, 2, true}, {3, 0, 3, true},
		{0, 0, 1, false}, {1, 0, 2, false}, {2, 2, 2, false}, {2, -1, 1, false}, {2, 0, 0, false}, {3, 0, 4, false},
	}
	for _, tt := range tests {
		if err := copies.Check(tt.shards, tt.own, tt.copies); (err == nil) != tt.ok {
			t.Errorf("Check(%d shards, own %d, %d copies) = %v, want ok %v", tt.shards, tt.own, tt.copies, err, tt.ok)
		}
	}
}

// Home spreads keys over the shards, the same on every frontend.
func TestHome(t *testing.T) {
	seen := map[int]int{}
	for i := range 300 {
		h := copies.Home(fmt.Sprintf("surge:order:%d", i), 3)
		if h != copies.Home(fmt.Sprintf("surge:order:%d", i), 3) || h < 0 || h >= 3 {
			t.Fatalf("Home = %d", h)
		}
		seen[h]++
	}
	for s := range 3 {
		if seen[s] < 50 {
			t.Fatalf("keys per home shard %v: uneven", seen)
		}
	}
}

// fakeShard appends to a slice; it fails while down, and keeps the keys
// AppendOnce took.
type fakeShard struct {
	mu      sync.Mutex
	down    bool
	entries []string
	keys    map[string]string
	pings   int
}

var errDown = errors.New("connection refused")

func (s *fakeShard) Append(ctx context.Context, fields []any) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", errDown
	}
	s.entries = append(s.entries, fmt.Sprint(fields...))
	return fmt.Sprintf("%d-0", len(s.entries)), nil
}

func (s *fakeShard) AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return "", errDown
	}
	switch held, ok := s.keys[key]; {
	case ok && held == value:
		s.mu.Unlock()
		return "", redis.ErrDuplicate
	case ok:
		s.mu.Unlock()
		return "", redis.ErrConflict
	}
	s.keys[key] = value
	s.mu.Unlock()
	return s.Append(ctx, fields)
}

func (s *fakeShard) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pings++
	if s.down {
		return errDown
	}
	return nil
}

func (s *fakeShard) set(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *fakeShard) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func fakes(n int) ([]*fakeShard, []copies.Shard) {
	fs, ss := make([]*fakeShard, n), make([]copies.Shard, n)
	for i := range fs {
		fs[i] = &fakeShard{keys: map[string]string{}}
		ss[i] = fs[i]
	}
	return fs, ss
}

// A probe that never gets back on its own during a test: only a health
// check (Ping) brings a shard back.
func slowProbe() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }

func newQueue(t *testing.T, shards []copies.Shard, own, n int) *copies.Queue {
	q, err := copies.New(shards, copies.Options{Copies: n, Own: own, BackOff: slowProbe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

// Each append goes to the copies shards the ring picks, including when a
// shard fails under it: the entry then goes to the next one up, and the
// failed one is skipped from then on.
func TestAppendWritesEveryCopy(t *testing.T) {
	tests := []struct {
		name    string
		shards  int
		own     int
		copies  int
		down    []int // before the first append
		want    []int // entries per shard after two appends
		refused bool
	}{
		{"three up", 3, 0, 2, nil, []int{2, 2, 0}, false},
		{"own down", 3, 0, 2, []int{0}, []int{0, 2, 2}, false},
		{"next down", 3, 0, 2, []int{1}, []int{2, 0, 2}, false},
		{"two down", 3, 0, 2, []int{1, 2}, []int{0, 0, 0}, true},
		{"two shards, one down", 2, 1, 2, []int{0}, []int{0, 0}, true},
		{"two shards, one down, one copy", 2, 0, 1, []int{0}, []int{0, 2}, false},
		{"one shard", 1, 0, 1, nil, []int{2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, ss := fakes(tt.shards)
			q := newQueue(t, ss, tt.own, tt.copies)
			for _, i := range tt.down {
				fs[i].set(true)
			}
			for range 2 {
				_, err := q.Append(context.Background(), []any{"kind", "vote"})
				if tt.refused != errors.Is(err, copies.ErrTooFewShards) {
					t.Fatalf("append: %v, want refused %v", err, tt.refused)
				}
			}
			var got []int
			for _, f := range fs {
				got = append(got, f.count())
			}
			// A refused append may leave a copy on a shard that answered
			// before the ring knew the other was down; never a second.
			if tt.refused {
				for i, n := range got {
					if n > 1 {
						t.Fatalf("entries per shard %v after refused appends: shard %d holds %d", got, i+1, n)
					}
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("entries per shard %v, want %v", got, tt.want)
			}
		})
	}
}

// Once a shard is known down, a refused append writes nothing anywhere.
func TestTooFewShardsWritesNothing(t *testing.T) {
	fs, ss := fakes(2)
	q := newQueue(t, ss, 0, 2)
	fs[1].set(true)
	if err := q.Ping(context.Background()); err == nil {
		t.Fatal("ping passed with one of two shards down, two copies")
	}
	if _, err := q.Append(context.Background(), []any{"kind", "vote"}); !errors.Is(err, copies.ErrTooFewShards) {
		t.Fatalf("append: %v, want ErrTooFewShards", err)
	}
	if n := fs[0].count(); n != 0 {
		t.Fatalf("shard 1 holds %d entries after a refused append", n)
	}
}

// A shard marked down that is back before its probe's next ping (an hour
// here) is asked again before an append is refused: a stale mark costs no
// 503 when enough shards answer.
func TestStaleDownMarkIsRecheckedBeforeRefusing(t *testing.T) {
	fs, ss := fakes(2)
	q := newQueue(t, ss, 0, 2)
	fs[1].set(true)
	if _, err := q.Append(context.Background(), []any{"a"}); !errors.Is(err, copies.ErrTooFewShards) {
		t.Fatalf("append with shard 2 down: %v, want ErrTooFewShards", err)
	}
	fs[1].set(false)
	if _, err := q.Append(context.Background(), []any{"b"}); err != nil {
		t.Fatalf("append with shard 2 back, still marked down: %v", err)
	}
	// The refused append left its copy on shard 1 (written in parallel
	// with the failing one); the second is on both.
	if got := []int{fs[0].count(), fs[1].count()}; !slices.Equal(got, []int{2, 1}) {
		t.Fatalf("entries per shard %v, want [2 1]", got)
	}
}

// A down shard is pinged with backoff until it answers; then it takes
// copies again.
func TestDownShardIsProbedBackIn(t *testing.T) {
	fs, ss := fakes(3)
	q, err := copies.New(ss, copies.Options{Copies: 2, Own: 0,
		BackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	fs[0].set(true)
	if _, err := q.Append(context.Background(), []any{"a"}); err != nil {
		t.Fatal(err)
	}
	fs[0].set(false)
	testenv.Eventually(t, 5*time.Second, func() error {
		before := fs[0].count()
		if _, err := q.Append(context.Background(), []any{"b"}); err != nil {
			return err
		}
		if fs[0].count() == before {
			return errors.New("shard 1 takes no copies since it came back")
		}
		return nil
	})
}

func TestAppendOnceRefusesARepeatOnEveryFrontend(t *testing.T) {
	fs, ss := fakes(3)
	// Three frontends, one per shard, on the same three shards.
	var qs []*copies.Queue
	for own := range 3 {
		qs = append(qs, newQueue(t, ss, own, 2))
	}
	ctx := context.Background()
	if _, err := qs[0].AppendOnce(ctx, "surge:order:o1", "1x1", time.Hour, []any{"o1"}); err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, f := range fs {
		if _, ok := f.keys["surge:order:o1"]; ok {
			held++
		}
	}
	if held != 2 {
		t.Fatalf("the order's key is held on %d shards, want 2", held)
	}
	for i, q := range qs {
		if _, err := q.AppendOnce(ctx, "surge:order:o1", "1x1", time.Hour, []any{"o1"}); !errors.Is(err, redis.ErrDuplicate) {
			t.Errorf("frontend %d: repeat: %v, want ErrDuplicate", i+1, err)
		}
		if _, err := q.AppendOnce(ctx, "surge:order:o1", "2x1", time.Hour, []any{"o1"}); !errors.Is(err, redis.ErrConflict) {
			t.Errorf("frontend %d: another payload: %v, want ErrConflict", i+1, err)
		}
	}
	// With any one shard down, the repeat's shards still include one that
	// holds the key.
	for down := range fs {
		fs[down].set(true)
		if err := qs[0].Ping(ctx); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("shard %d", down+1)) {
			t.Fatalf("ping with shard %d down: %v", down+1, err)
		}
		if _, err := qs[0].AppendOnce(ctx, "surge:order:o1", "2x1", time.Hour, []any{"o1"}); !errors.Is(err, redis.ErrConflict) {
			t.Errorf("shard %d down: another payload: %v, want ErrConflict", down+1, err)
		}
		fs[down].set(false)
		if err := qs[0].Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Health: degraded while enough shards are up, down when not, naming the
// shards and never their addresses.
func TestPing(t *testing.T) {
	fs, ss := fakes(3)
	q := newQueue(t, ss, 0, 2)
	if err := q.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs[2].set(true)
	failing, degraded := httpx.Problems(q.Ping(context.Background()))
	if len(failing) != 0 || !slices.Equal(degraded, []string{"shard 3"}) {
		t.Fatalf("one of three down: failing %v, degraded %v; want degraded shard 3", failing, degraded)
	}
	fs[1].set(true)
	failing, degraded = httpx.Problems(q.Ping(context.Background()))
	if !slices.Equal(failing, []string{"shard 2", "shard 3"}) || len(degraded) != 0 {
		t.Fatalf("two of three down: failing %v, degraded %v; want failing shards 2 and 3", failing, degraded)
	}
}

// The metrics count each copy on the shard that took it, say which shards
// are skipped, and count the entries refused.
func TestMetricsCountCopies(t *testing.T) {
	fs, ss := fakes(3)
	reg := prometheus.NewRegistry()
	m := copies.NewMetrics(reg, 3)
	q, err := copies.New(ss, copies.Options{Copies: 2, Own: 0, BackOff: slowProbe, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	fs[1].set(true)
	for range 2 {
		if _, err := q.Append(context.Background(), []any{"kind", "vote"}); err != nil {
			t.Fatal(err)
		}
	}
	fs[2].set(true)
	if _, err := q.Append(context.Background(), []any{"kind", "vote"}); !errors.Is(err, copies.ErrTooFewShards) {
		t.Fatalf("append with two of three shards down: %v, want ErrTooFewShards", err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"written shard 1", testutil.ToFloat64(m.Written.WithLabelValues("1")), 3}, // the third append's copy on shard 1 was written before shard 3 failed
		{"written shard 2", testutil.ToFloat64(m.Written.WithLabelValues("2")), 0},
		{"written shard 3", testutil.ToFloat64(m.Written.WithLabelValues("3")), 2},
		{"up shard 1", testutil.ToFloat64(m.Up.WithLabelValues("1")), 1},
		{"up shard 2", testutil.ToFloat64(m.Up.WithLabelValues("2")), 0},
		{"up shard 3", testutil.ToFloat64(m.Up.WithLabelValues("3")), 0},
		{"refused", testutil.ToFloat64(m.Refused), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
