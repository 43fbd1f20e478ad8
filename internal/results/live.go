package results

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// Snapshot is one poll's results at a moment.
type Snapshot struct {
	surge.Results
	Title     string    `json:"title"`
	Options   []string  `json:"options"` // in display order
	UpdatedAt time.Time `json:"updated_at"`
}

// Live keeps the latest results of every poll and pushes changes to
// subscribers. It reads a poll's counts once per change, not once per
// viewer, and coalesces bursts: at most one read per poll per Interval.
type Live struct {
	store    Store
	log      *slog.Logger
	interval time.Duration

	mu        sync.Mutex
	meta      []surge.Poll // poll titles and options, in order
	metaStale bool
	snapshots map[string]Snapshot
	dirty     map[string]bool
	subs      map[*Subscription]struct{}
	listening atomic.Bool
	wake      chan struct{}
	done      chan struct{}
	reads     singleflight.Group // concurrent reads of one poll share a query

	// Reads counts results queries to Postgres.
	Reads prometheus.Counter
}

// NewLive returns a hub; call Run to keep it in step with Postgres.
func NewLive(store Store, log *slog.Logger, interval time.Duration) *Live {
	return &Live{store: store, log: log, interval: interval,
		metaStale: true, snapshots: map[string]Snapshot{}, dirty: map[string]bool{}, subs: map[*Subscription]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		Reads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_results_db_reads_total", Help: "Poll results read from Postgres.",
		})}
}

// Done is closed when Run has returned: streams end then.
func (l *Live) Done() <-chan struct{} { return l.done }

// Run listens for commits and refreshes changed polls until ctx ends.
func (l *Live) Run(ctx context.Context, db *postgres.DB) {
	defer close(l.done)
	go db.Listen(ctx, l.log, []string{postgres.NotifyChannel, postgres.PollsChannel},
		func(channel, poll string) {
			if channel == postgres.PollsChannel {
				l.mu.Lock()
				l.metaStale = true
				l.mu.Unlock()
			}
			l.markDirty(poll)
		},
		func(listening bool) {
			l.listening.Store(listening)
			if listening { // changes may have been missed: refresh everything
				l.markAllDirty(ctx)
			}
		})
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		l.refresh(ctx)
		// Coalesce: whatever arrives during the interval is read once, after it.
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (l *Live) markDirty(poll string) {
	l.mu.Lock()
	l.dirty[poll] = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Live) markAllDirty(ctx context.Context) {
	l.mu.Lock()
	l.metaStale = true
	l.mu.Unlock()
	polls, err := l.Polls(ctx)
	if err != nil {
		l.log.Warn("list polls failed", "err", err)
		return
	}
	for _, p := range polls {
		l.markDirty(p.ID)
	}
}

// Polls returns every poll's title and options, cached while listening.
func (l *Live) Polls(ctx context.Context) ([]surge.Poll, error) {
	l.mu.Lock()
	meta, stale := l.meta, l.metaStale || !l.listening.Load()
	l.mu.Unlock()
	if !stale {
		return meta, nil
	}
	meta, err := l.store.Polls(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.meta, l.metaStale = meta, false
	l.mu.Unlock()
	return meta, nil
}

// refresh reads every dirty poll once and publishes it.
func (l *Live) refresh(ctx context.Context) {
	l.mu.Lock()
	dirty := l.dirty
	l.dirty = map[string]bool{}
	l.mu.Unlock()
	for poll := range dirty {
		snap, err := l.read(ctx, poll)
		if err != nil {
			l.log.Warn("refresh results failed; will retry", "poll", poll, "err", err)
			l.markDirty(poll)
			continue
		}
		l.publish(snap)
	}
}

// Listening reports whether the hub hears of commits; until then its
// snapshots are read from Postgres on demand.
func (l *Live) Listening() bool { return l.listening.Load() }

func (l *Live) read(ctx context.Context, poll string) (Snapshot, error) {
	v, err, _ := l.reads.Do(poll, func() (any, error) {
		return l.readOnce(context.WithoutCancel(ctx), poll)
	})
	if err != nil {
		return Snapshot{}, err
	}
	return v.(Snapshot), nil
}

func (l *Live) readOnce(ctx context.Context, poll string) (Snapshot, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l.Reads.Inc()
	res, err := l.store.Results(rctx, poll)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Results: res, UpdatedAt: time.Now().UTC()}
	polls, err := l.Polls(rctx)
	if err != nil {
		return Snapshot{}, err
	}
	for _, p := range polls {
		if p.ID == poll {
			snap.Title, snap.Options = p.Title, p.Options
		}
	}
	return snap, nil
}

func (l *Live) publish(snap Snapshot) {
	l.mu.Lock()
	l.snapshots[snap.Poll] = snap
	subs := make([]*Subscription, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	l.mu.Unlock()
	for _, s := range subs {
		s.offer(snap)
	}
}

// Snapshot returns a poll's results from the cache when it is trustworthy
// (the hub is listening), and from Postgres otherwise.
func (l *Live) Snapshot(ctx context.Context, poll string) (Snapshot, error) {
	l.mu.Lock()
	snap, ok := l.snapshots[poll]
	l.mu.Unlock()
	if ok && l.listening.Load() {
		return snap, nil
	}
	snap, err := l.read(ctx, poll)
	if err != nil {
		return Snapshot{}, err
	}
	if l.listening.Load() {
		l.mu.Lock()
		if _, newer := l.snapshots[poll]; !newer {
			l.snapshots[poll] = snap
		}
		l.mu.Unlock()
	}
	return snap, nil
}

// Subscription receives the latest snapshot of every poll that changes. A
// slow reader skips intermediate states but always gets the latest one.
type Subscription struct {
	mu     sync.Mutex
	latest map[string]Snapshot
	ready  chan struct{}
}

// Subscribe registers a subscriber; call the returned function to leave.
func (l *Live) Subscribe() (*Subscription, func()) {
	s := &Subscription{latest: map[string]Snapshot{}, ready: make(chan struct{}, 1)}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	return s, func() {
		l.mu.Lock()
		delete(l.subs, s)
		l.mu.Unlock()
	}
}

// Subscribers is the number of connected subscribers.
func (l *Live) Subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

func (s *Subscription) offer(snap Snapshot) {
	s.mu.Lock()
	s.latest[snap.Poll] = snap
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when Take has something.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns and clears the pending snapshots.
func (s *Subscription) Take() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Snapshot, 0, len(s.latest))
	for _, snap := range s.latest {
		out = append(out, snap)
	}
	clear(s.latest)
	return out
}
