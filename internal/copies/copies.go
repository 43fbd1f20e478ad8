// Package copies keeps every captured entry on more than one shard before
// the frontend acknowledges it. It appends the same entry, with the same
// event id, in parallel, to the first shards that are up on a ring of the
// configured shards, and returns only once each of them has written it:
// with appendfsync always, fsynced on that many nodes' disks. A vote starts
// the ring at the frontend's own shard; an order at its id's home shard, so
// the key that refuses a repeat of the id is taken on the same shards
// whichever frontend the repeat reaches.
//
// A shard that fails an append or a ping is marked down and skipped until a
// ping, retried with backoff, finds it again, so a dead shard costs the
// requests in flight on it, not a timeout on every request. An append that
// fails on one shard is sent to the next shard up, within the request's
// time. With fewer shards up than copies, the down ones are pinged once
// more (a mark may be stale); if still too few, nothing is appended: the
// caller answers 503 rather than acknowledge fewer copies.
package copies

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/redis"
)

// Shard is one shard's stream (redis.Producer with its client's ping).
type Shard interface {
	Append(ctx context.Context, fields []any) (string, error)
	AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error)
	Ping(ctx context.Context) error
}

// ErrTooFewShards means fewer shards than copies took the entry: it was not
// acknowledged. Some shard may hold it.
var ErrTooFewShards = errors.New("too few shards up to keep the copies")

// Options tune a Queue.
type Options struct {
	Copies int // shards each entry is written to before Append returns; 1 to len(shards)
	Own    int // this frontend's shard, from 0: where a vote's ring starts
	Logger *slog.Logger
	// BackOff is the schedule of pings to a shard marked down; by default
	// 100 ms growing to 2 s, randomised.
	BackOff func() backoff.BackOff
	// PingTimeout bounds each of those pings; default 1 s.
	PingTimeout time.Duration
	// Metrics, if set, counts the copies written and refused and which
	// shards the frontend sees up (NewMetrics).
	Metrics *Metrics
}

// Metrics are the copies' figures for operators.
type Metrics struct {
	Written *prometheus.CounterVec // copies written, by shard (from 1)
	Refused prometheus.Counter     // entries refused: fewer shards up than copies
	Up      *prometheus.GaugeVec   // 1 while a shard takes copies, by shard
	written []prometheus.Counter   // Written's per shard, looked up once: it counts on every request
}

// NewMetrics registers the copies' metrics on reg, every shard's at zero
// (up at 1) from the start, so rates and alerts work before the first entry.
func NewMetrics(reg prometheus.Registerer, shards int) *Metrics {
	m := &Metrics{
		Written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_capture_copies_written_total", Help: "Copies of acknowledged or repeated entries written, by shard.",
		}, []string{"shard"}),
		Refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_capture_copies_refused_total", Help: "Entries refused (503) because fewer shards were up than copies.",
		}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "surge_capture_shard_up", Help: "1 while this frontend writes copies to the shard, 0 while it skips it.",
		}, []string{"shard"}),
	}
	reg.MustRegister(m.Written, m.Refused, m.Up)
	for i := range shards {
		m.written = append(m.written, m.Written.WithLabelValues(shardLabel(i)))
		m.Up.WithLabelValues(shardLabel(i)).Set(1)
	}
	return m
}

func shardLabel(i int) string { return strconv.Itoa(i + 1) }

// wrote counts a copy written to shard i.
func (m *Metrics) wrote(i int) {
	if m != nil {
		m.written[i].Inc()
	}
}

func (m *Metrics) refused() {
	if m != nil {
		m.Refused.Inc()
	}
}

func (m *Metrics) up(i int, up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.Up.WithLabelValues(shardLabel(i)).Set(v)
	}
}

// Queue writes each entry to Copies shards. It implements the frontend's
// queue (capture.Queue).
type Queue struct {
	shards   []Shard
	names    []string // what health calls each shard
	opt      Options
	log      *slog.Logger
	ctx      context.Context // ends at Close: stops the probes
	cancel   context.CancelFunc
	probes   sync.WaitGroup
	mu       sync.Mutex
	down     []bool
	probing  []bool
	rechecks singleflight.Group
}

// New returns a Queue over shards, all assumed up until one fails.
func New(shards []Shard, opt Options) (*Queue, error) {
	if err := Check(len(shards), opt.Own, opt.Copies); err != nil {
		return nil, err
	}
	if opt.Metrics != nil && len(opt.Metrics.written) != len(shards) {
		return nil, fmt.Errorf("metrics for %d shards, %d shards configured", len(opt.Metrics.written), len(shards))
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.BackOff == nil {
		opt.BackOff = func() backoff.BackOff {
			return &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2,
				MaxInterval: 2 * time.Second, RandomizationFactor: 0.5}
		}
	}
	if opt.PingTimeout <= 0 {
		opt.PingTimeout = time.Second
	}
	names := make([]string, len(shards))
	for i := range shards {
		names[i] = "shard " + strconv.Itoa(i+1)
	}
	if len(shards) == 1 {
		names[0] = "redis" // what a one-shard frontend has always called it
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Queue{shards: shards, names: names, opt: opt, log: opt.Logger, ctx: ctx, cancel: cancel,
		down: make([]bool, len(shards)), probing: make([]bool, len(shards))}, nil
}

// Check reports a ring that cannot keep its copies: no shards, own not
// among them, or copies not from 1 to the number of shards.
func Check(shards, own, copies int) error {
	switch {
	case shards == 0:
		return errors.New("no shards configured")
	case own < 0 || own >= shards:
		return fmt.Errorf("own shard %d is not among the %d shards", own+1, shards)
	case copies < 1 || copies > shards:
		return fmt.Errorf("copies = %d: want 1 to the number of shards (%d)", copies, shards)
	}
	return nil
}

// Close stops the pings to shards marked down. The shards are the caller's.
func (q *Queue) Close() {
	q.cancel()
	q.probes.Wait()
}

// Ring returns the shards that are up, in ring order from start: the first
// copies of them take an entry, the rest stand by in that order.
func Ring(start int, up []bool) []int {
	order := make([]int, 0, len(up))
	for k := range up {
		if i := (start + k) % len(up); up[i] {
			order = append(order, i)
		}
	}
	return order
}

// Home is the shard where a key's ring starts: the same on every frontend.
func Home(key string, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(shards))
}

// Append writes fields to Copies shards from the frontend's own one on, and
// returns the first one's stream id. Stream ids differ between copies.
func (q *Queue) Append(ctx context.Context, fields []any) (string, error) {
	done, err := q.write(ctx, q.opt.Own, func(ctx context.Context, s Shard) (string, error) { return s.Append(ctx, fields) })
	if err != nil {
		return "", err
	}
	return done[0].id, nil
}

// AppendOnce writes fields to Copies shards from key's home shard on, each
// taking key atomically with its append (redis.Producer.AppendOnce). A key
// taken with another value on any of them is redis.ErrConflict; else one
// taken with the same value is redis.ErrDuplicate, a repeat: each of those
// shards holds the entry that took it, and the others have just appended
// it, so the copies are there either way.
func (q *Queue) AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error) {
	done, err := q.write(ctx, Home(key, len(q.shards)), func(ctx context.Context, s Shard) (string, error) {
		return s.AppendOnce(ctx, key, value, ttl, fields)
	})
	if err != nil {
		return "", err
	}
	var dup error
	for _, d := range done {
		switch {
		case errors.Is(d.err, redis.ErrConflict):
			return "", d.err
		case d.err != nil:
			dup = d.err
		}
	}
	if dup != nil {
		return "", dup
	}
	return done[0].id, nil
}

// outcome is one shard's answer.
type outcome struct {
	shard int
	id    string
	err   error
}

// answered: the shard wrote the entry or said why not (the key is taken).
func (o outcome) answered() bool {
	return o.err == nil || errors.Is(o.err, redis.ErrDuplicate) || errors.Is(o.err, redis.ErrConflict)
}

// write runs op on the first Copies shards up on the ring from start, at
// once, and on the next one up for each that fails, until Copies have
// answered. It fails without writing anything if fewer shards are up.
func (q *Queue) write(ctx context.Context, start int, op func(context.Context, Shard) (string, error)) ([]outcome, error) {
	order := Ring(start, q.up())
	if len(order) < q.opt.Copies {
		// A shard marked down may be back before its probe's next ping:
		// ask the down ones now rather than refuse on a stale mark.
		q.recheck(ctx)
		order = Ring(start, q.up())
	}
	if len(order) < q.opt.Copies {
		q.opt.Metrics.refused()
		return nil, fmt.Errorf("%w: %d of %d up, %d copies needed", ErrTooFewShards, len(order), len(q.shards), q.opt.Copies)
	}
	answers := make(chan outcome, len(order))
	launch := func(i int) {
		go func() {
			id, err := op(ctx, q.shards[i])
			answers <- outcome{shard: i, id: id, err: err}
		}()
	}
	next := q.opt.Copies
	for _, i := range order[:next] {
		launch(i)
	}
	done := make([]outcome, 0, q.opt.Copies)
	var errs []error
	for running := q.opt.Copies; running > 0; running-- {
		o := <-answers
		if o.answered() {
			if o.err == nil {
				q.opt.Metrics.wrote(o.shard)
			}
			done = append(done, o)
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", q.names[o.shard], o.err))
		q.failed(ctx, o.shard, o.err)
		if next < len(order) && ctx.Err() == nil {
			launch(order[next])
			next++
			running++
		}
	}
	if len(done) < q.opt.Copies {
		q.opt.Metrics.refused()
		return nil, fmt.Errorf("%w: %d of %d copies written: %w", ErrTooFewShards, len(done), q.opt.Copies, errors.Join(errs...))
	}
	// The first on the ring first: its stream id is the one returned.
	for i := 1; i < len(done); i++ {
		for j := i; j > 0 && pos(order, done[j].shard) < pos(order, done[j-1].shard); j-- {
			done[j], done[j-1] = done[j-1], done[j]
		}
	}
	return done, nil
}

func pos(order []int, shard int) int {
	for i, s := range order {
		if s == shard {
			return i
		}
	}
	return len(order)
}

// failed marks a shard down after a failed append, unless the request
// itself was cancelled (the client went away): that says nothing of the
// shard. A request that ran out of its time on a shard that hangs does.
func (q *Queue) failed(ctx context.Context, i int, err error) {
	if errors.Is(err, redis.ErrClosed) || (errors.Is(ctx.Err(), context.Canceled) && errors.Is(err, context.Canceled)) {
		return
	}
	q.markDown(i, err)
}

// up is a snapshot of which shards are up.
func (q *Queue) up() []bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	up := make([]bool, len(q.down))
	for i, d := range q.down {
		up[i] = !d
	}
	return up
}

// markDown takes shard i out of the ring and pings it, with backoff, until
// it answers.
func (q *Queue) markDown(i int, err error) {
	q.mu.Lock()
	wasUp, probe := !q.down[i], !q.probing[i] && q.ctx.Err() == nil
	q.down[i] = true
	q.opt.Metrics.up(i, false)
	if probe {
		q.probing[i] = true
		q.probes.Add(1)
	}
	q.mu.Unlock()
	if wasUp {
		q.log.Warn("shard down: its copies go to the next shard up until it answers", "shard", i+1, "err", err)
	}
	if probe {
		go q.probe(i)
	}
}

func (q *Queue) probe(i int) {
	defer q.probes.Done()
	_, err := backoff.Retry(q.ctx, func() (struct{}, error) {
		q.mu.Lock()
		back := !q.down[i] // a health check found it first
		q.mu.Unlock()
		if back {
			return struct{}{}, nil
		}
		ctx, cancel := context.WithTimeout(q.ctx, q.opt.PingTimeout)
		defer cancel()
		return struct{}{}, q.shards[i].Ping(ctx)
	}, backoff.WithBackOff(q.opt.BackOff()), backoff.WithMaxElapsedTime(0))
	q.mu.Lock()
	q.probing[i] = false
	q.mu.Unlock()
	if err == nil {
		q.markUp(i)
	}
}

// recheckTimeout bounds recheck's pings: a Redis answers a PING in well
// under a millisecond, and a request that will be refused should not wait.
const recheckTimeout = 250 * time.Millisecond

// recheck pings the shards marked down, at once, and puts back those that
// answer. Concurrent callers share one round (a burst of refusals costs one
// ping per down shard); each waits for it no longer than its own ctx.
func (q *Queue) recheck(ctx context.Context) {
	round := q.rechecks.DoChan("recheck", func() (any, error) {
		pctx, cancel := context.WithTimeout(q.ctx, recheckTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for i, up := range q.up() {
			if !up {
				wg.Go(func() {
					if q.shards[i].Ping(pctx) == nil {
						q.markUp(i)
					}
				})
			}
		}
		wg.Wait()
		return nil, nil
	})
	select {
	case <-round:
	case <-ctx.Done():
	}
}

// markUp puts shard i back in the ring after a ping succeeded.
func (q *Queue) markUp(i int) {
	q.mu.Lock()
	wasDown := q.down[i]
	q.down[i] = false
	q.opt.Metrics.up(i, true)
	q.mu.Unlock()
	if wasDown {
		q.log.Info("shard up again: it takes copies again", "shard", i+1)
	}
}

// Ping pings every shard at once and updates which are up. It fails
// (httpx.Down, naming them) when fewer than Copies answer, so the proxy
// stops sending entries here, and reports the others that are down as
// degraded (httpx.Degraded): the frontend works around them.
func (q *Queue) Ping(ctx context.Context) error {
	errs := make([]error, len(q.shards))
	var wg sync.WaitGroup
	for i, s := range q.shards {
		wg.Go(func() { errs[i] = s.Ping(ctx) })
	}
	wg.Wait()
	up := 0
	for i, err := range errs {
		if err == nil {
			up++
			q.markUp(i)
		} else if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
			q.markDown(i, err)
		}
	}
	mark := httpx.Degraded
	if up < q.opt.Copies {
		mark = httpx.Down
	}
	var problems []error
	for i, err := range errs {
		if err != nil {
			problems = append(problems, mark(q.names[i], err))
		}
	}
	return errors.Join(problems...)
}
