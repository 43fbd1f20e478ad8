package results

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
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
	Title   string   `json:"title"`
	Options []string `json:"options"` // in display order

	// read orders snapshots by when their read began: a read that began
	// later sees every commit an earlier one saw.
	read uint64
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
	metaGen   uint64       // bumped by every poll NOTIFY
	metaOf    uint64       // the metaGen meta was loaded in
	metaLoads singleflight.Group
	snapshots map[string]Snapshot
	// dirty holds the polls whose changes are not read yet, each with when
	// the first such change was heard; inflight those being read and pushed.
	dirty     map[string]time.Time
	inflight  map[string]time.Time
	subs      map[*Subscription]struct{}
	listening atomic.Bool
	deafSince time.Time // under mu: when the hub stopped hearing of commits; zero while it hears
	wake      chan struct{}
	done      chan struct{}
	reads     singleflight.Group // concurrent reads of one poll share a query
	readSeq   atomic.Uint64      // numbers reads as they begin

	// Reads counts results queries to Postgres.
	Reads prometheus.Counter
	// PushLag observes, for each push, how long after the change was heard
	// (a commit's NOTIFY) it reached the streams.
	PushLag prometheus.Histogram
	now     func() time.Time
	// MaxSubscribers caps connected subscribers (0: no cap); set it before
	// serving. Each one costs memory and a goroutine, so one client cannot be
	// allowed to open them without bound.
	MaxSubscribers int
}

// NewLive returns a hub; call Run to keep it in step with Postgres.
func NewLive(store Store, log *slog.Logger, interval time.Duration) *Live {
	return &Live{store: store, log: log, interval: interval,
		metaGen: 1, snapshots: map[string]Snapshot{}, dirty: map[string]time.Time{}, inflight: map[string]time.Time{},
		subs: map[*Subscription]struct{}{}, wake: make(chan struct{}, 1), done: make(chan struct{}), now: time.Now,
		Reads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_results_db_reads_total", Help: "Poll results read from Postgres.",
		}),
		PushLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "surge_results_push_lag_seconds", Help: "Time from a commit's NOTIFY to the push of its poll's results to the live streams.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
}

// Lag is how long the oldest change heard and not yet pushed to the streams
// has waited, or, while the hub hears of no commits (no LISTEN), how long
// that has lasted: 0 when the streams show every change heard of.
func (l *Live) Lag() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := l.deafSince
	for _, m := range []map[string]time.Time{l.dirty, l.inflight} {
		for _, t := range m {
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return l.now().Sub(oldest)
}

// Done is closed when Run has returned: streams end then.
func (l *Live) Done() <-chan struct{} { return l.done }

// Run listens for commits on n and refreshes changed polls until ctx ends.
func (l *Live) Run(ctx context.Context, n Notifications) {
	defer close(l.done)
	l.setListening(false)
	go n.Listen(ctx, l.log, []string{postgres.NotifyChannel, postgres.PollsChannel},
		func(channel, poll string) {
			if channel == postgres.PollsChannel {
				l.staleMeta()
			}
			l.markDirty(poll)
		},
		func(listening bool) {
			l.setListening(listening)
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

// setListening records whether the hub hears of commits, and since when it
// does not.
func (l *Live) setListening(listening bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening.Store(listening)
	switch {
	case listening:
		l.deafSince = time.Time{}
	case l.deafSince.IsZero():
		l.deafSince = l.now()
	}
}

func (l *Live) markDirty(poll string) { l.markDirtySince(poll, time.Time{}) }

// markDirtySince marks poll dirty, its first unpushed change heard at since
// (zero: now). An earlier time already recorded stands.
func (l *Live) markDirtySince(poll string, since time.Time) {
	l.mu.Lock()
	if since.IsZero() {
		since = l.now()
	}
	if t, ok := l.dirty[poll]; !ok || since.Before(t) {
		l.dirty[poll] = since
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Live) markAllDirty(ctx context.Context) {
	l.staleMeta()
	polls, err := l.Polls(ctx)
	if err != nil {
		l.log.Warn("list polls failed", "err", err)
		return
	}
	for _, p := range polls {
		l.markDirty(p.ID)
	}
}

// staleMeta marks the poll list out of date: a poll was created.
func (l *Live) staleMeta() {
	l.mu.Lock()
	l.metaGen++
	l.mu.Unlock()
}

// Polls returns every poll's title and options, cached while listening.
// Concurrent reloads share one query.
func (l *Live) Polls(ctx context.Context) ([]surge.Poll, error) {
	l.mu.Lock()
	meta, gen := l.meta, l.metaGen
	stale := l.metaOf != gen || !l.listening.Load()
	l.mu.Unlock()
	if !stale {
		return meta, nil
	}
	// Keyed by generation: a caller who heard of a newer poll never shares
	// an older load.
	v, err, _ := l.metaLoads.Do(strconv.FormatUint(gen, 10), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		meta, err := l.store.Polls(lctx)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		// A poll NOTIFY during the load may not be in it: then stay stale.
		if gen > l.metaOf {
			l.meta, l.metaOf = meta, gen
		}
		l.mu.Unlock()
		return meta, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]surge.Poll), nil
}

// refresh reads every dirty poll once and publishes it.
func (l *Live) refresh(ctx context.Context) {
	l.mu.Lock()
	dirty := l.dirty
	l.dirty, l.inflight = map[string]time.Time{}, dirty
	l.mu.Unlock()
	for poll, since := range dirty {
		snap, err := l.read(ctx, poll)
		if err != nil {
			l.log.Warn("refresh results failed; will retry", "poll", poll, "err", err)
			l.markDirtySince(poll, since)
		} else {
			l.publish(snap)
			l.PushLag.Observe(l.now().Sub(since).Seconds())
		}
		l.mu.Lock()
		delete(l.inflight, poll)
		l.mu.Unlock()
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
	read := l.readSeq.Add(1)
	res, err := l.store.Results(rctx, poll)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Results: res, read: read}
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

// keep caches snap unless the cache holds a read that began later, and
// returns the newer of the two. Reads finish out of order (a shared read may
// have begun before a commit that a later one includes): the cache never
// goes back. Called with l.mu held.
func (l *Live) keep(snap Snapshot) Snapshot {
	if cur, ok := l.snapshots[snap.Poll]; ok && cur.read > snap.read {
		return cur
	}
	l.snapshots[snap.Poll] = snap
	return snap
}

// publish caches snap and pushes the newest snapshot of its poll to every
// subscriber, under l.mu so that subscribers get them in order.
func (l *Live) publish(snap Snapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	snap = l.keep(snap)
	for s := range l.subs {
		s.offer(snap)
	}
}

// Snapshot returns a poll's results from the cache when it is trustworthy
// (the hub is listening), and from Postgres otherwise. While listening, a
// poll missing from the poll list is unknown without a query: the list is
// reloaded when a poll is created (NOTIFY), so a flood of made-up ids costs
// Postgres nothing.
func (l *Live) Snapshot(ctx context.Context, poll string) (Snapshot, error) {
	l.mu.Lock()
	snap, ok := l.snapshots[poll]
	l.mu.Unlock()
	if ok && l.listening.Load() {
		return snap, nil
	}
	if l.listening.Load() {
		polls, err := l.Polls(ctx)
		if err != nil {
			return Snapshot{}, err
		}
		if !slices.ContainsFunc(polls, func(p surge.Poll) bool { return p.ID == poll }) {
			return Snapshot{}, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", poll)
		}
	}
	snap, err := l.read(ctx, poll)
	if err != nil {
		return Snapshot{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keep(snap), nil
}

// CatchUp brings the cache to at least seqs, each poll's commit sequence read
// after the shards drained: what Snapshot returns next includes every vote
// committed before. A poll behind is read at once, past the coalescing and
// past any read in flight, which may have begun before those commits.
func (l *Live) CatchUp(ctx context.Context, seqs map[string]int64) error {
	for poll, want := range seqs {
		l.mu.Lock()
		snap, ok := l.snapshots[poll]
		l.mu.Unlock()
		// Uncached and never changed: any later read has it all.
		if ok && snap.Seq >= want || !ok && want == 0 {
			continue
		}
		snap, err := l.readOnce(ctx, poll)
		if err != nil {
			return err
		}
		l.publish(snap)
	}
	return nil
}

// Subscription receives the latest snapshot of every poll that changes. A
// slow reader skips intermediate states but always gets the latest one.
type Subscription struct {
	mu     sync.Mutex
	latest map[string]Snapshot
	ready  chan struct{}
}

// Subscribe registers a subscriber; call the returned function to leave.
// Past MaxSubscribers it refuses with an unavailable error.
func (l *Live) Subscribe() (*Subscription, func(), error) {
	s := &Subscription{latest: map[string]Snapshot{}, ready: make(chan struct{}, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxSubscribers > 0 && len(l.subs) >= l.MaxSubscribers {
		return nil, nil, surge.Errorf(surge.EUNAVAILABLE, "too many live result streams; retry later")
	}
	l.subs[s] = struct{}{}
	return s, func() {
		l.mu.Lock()
		delete(l.subs, s)
		l.mu.Unlock()
	}, nil
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
