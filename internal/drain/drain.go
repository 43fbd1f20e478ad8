// Package drain is the worker: it drains one shard's stream through a
// consumer group into the store, acknowledging entries only after the
// transaction that applied them committed.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
)

// Store applies entries. Apply commits votes and orders in one transaction
// and returns the votes it refused for good (unknown poll or option). An
// order for an unknown item is an outcome (rejected), not a refusal; so is
// an order that reuses the id of an order with other lines
// (surge.OrderConflict), which is never applied.
type Store interface {
	Apply(ctx context.Context, votes []surge.Vote, orders []surge.Order) (rejected []surge.Vote, outcomes []surge.OrderOutcome, err error)
}

// Queue is one shard's stream seen through a consumer group.
type Queue interface {
	EnsureGroup(ctx context.Context) error
	ReadOwnPending(ctx context.Context, after string, count int64) ([]redis.Message, error)
	ReadNew(ctx context.Context, count int64, block time.Duration) ([]redis.Message, error)
	Claim(ctx context.Context, start string, minIdle time.Duration, count int64) ([]redis.Message, string, error)
	Ack(ctx context.Context, ids ...string) error
	DeadLetter(ctx context.Context, m redis.Message, reason string) error
	Trim(ctx context.Context) (int64, error)
	Backlog(ctx context.Context) (redis.Backlog, error)
}

// Options tune a Shard.
type Options struct {
	Shard         string        // label for logs and metrics
	BatchSize     int64         // entries per read and per transaction
	Block         time.Duration // how long a read waits for new entries
	ClaimIdle     time.Duration // an entry pending this long is taken from its consumer; longer than any batch
	ClaimEvery    time.Duration // how often to look for such entries
	TrimEvery     time.Duration // how often to trim acknowledged entries
	MaxDeliveries int64         // past this, an entry is applied alone and dead-lettered if it fails for good
	FinishTimeout time.Duration // how long a batch may still take after shutdown begins
	// UnhealthyAfter bounds how long the shard may stay unreadable, or
	// make no progress while entries wait, before Check fails.
	UnhealthyAfter time.Duration
	Logger         *slog.Logger
	Metrics        *Metrics
	// Applied, if set, remembers the events committed by every shard of
	// this worker, so the other copy of an entry is acknowledged without
	// applying it again. Share one between a worker's shards.
	Applied *Applied
	// AfterCommit, if set, runs between the commit and the XACK. Tests use
	// it to crash a worker at that point.
	AfterCommit func(ids []string)
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.ClaimEvery <= 0 {
		o.ClaimEvery = o.ClaimIdle / 3
	}
	if o.TrimEvery <= 0 {
		o.TrimEvery = 10 * time.Second
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.FinishTimeout <= 0 {
		o.FinishTimeout = 10 * time.Second
	}
	if o.UnhealthyAfter <= 0 {
		o.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Shard drains one stream.
type Shard struct {
	q     Queue
	store Store
	opt   Options
	log   *slog.Logger
	// replay is set when entries may be pending on this consumer with
	// nobody working on them: an ack failed, or a read failed after Redis
	// may have delivered. They are replayed before the next new read
	// rather than waiting ClaimIdle for a claim.
	replay bool
	// deferred are entries whose event another shard of this worker was
	// applying: acknowledged once that commit lands, applied if it fails.
	deferred []waiting

	mu           sync.Mutex
	failingSince time.Time // first of the Redis reads failing now; zero once one succeeds
	progress     time.Time // last successful read or commit; zero before Run
}

// NewShard returns a drainer for one shard.
func NewShard(q Queue, store Store, opt Options) *Shard {
	opt.defaults()
	opt.Metrics.initShard(opt.Shard)
	return &Shard{q: q, store: store, opt: opt, log: opt.Logger.With("shard", opt.Shard)}
}

// errStopped means shutdown began while a batch could not be committed; its
// entries stay pending for this or another worker.
var errStopped = errors.New("stopped before commit")

// Run drains until ctx ends. Its own pending entries (left by an earlier
// run of the same consumer) are replayed first.
func (s *Shard) Run(ctx context.Context) error {
	s.progressed()
	if err := s.retry(ctx, "create group", func() error { return s.q.EnsureGroup(ctx) }); err != nil {
		return nil // ctx ended
	}
	if err := s.replayOwn(ctx); err != nil {
		return nil
	}
	var lastClaim, lastTrim time.Time
	claimCursor := "0-0"
	b := newBackOff()
	for ctx.Err() == nil {
		if s.replay {
			s.replay = false
			if err := s.replayOwn(ctx); err != nil {
				return nil
			}
		}
		if time.Since(lastClaim) >= s.opt.ClaimEvery {
			msgs, next, err := s.q.Claim(ctx, claimCursor, s.opt.ClaimIdle, s.opt.BatchSize)
			if err != nil {
				s.redisTrouble(ctx, err, b)
				continue
			}
			s.read(nil)
			if len(msgs) > 0 {
				s.opt.Metrics.Claimed.WithLabelValues(s.opt.Shard).Add(float64(len(msgs)))
				s.log.Info("claimed entries of an idle consumer", "count", len(msgs))
				if s.process(ctx, msgs) != nil {
					return nil
				}
			}
			claimCursor = next
			if next == "0-0" {
				lastClaim = time.Now()
			}
			continue
		}
		msgs, err := s.q.ReadNew(ctx, s.opt.BatchSize, s.opt.Block)
		if err != nil {
			s.redisTrouble(ctx, err, b)
			continue
		}
		s.read(nil)
		b.Reset()
		if s.process(ctx, msgs) != nil {
			return nil
		}
		if time.Since(lastTrim) >= s.opt.TrimEvery {
			if n, err := s.q.Trim(ctx); err != nil {
				s.log.Warn("trim failed", "err", err)
			} else if n > 0 {
				s.log.Debug("trimmed", "entries", n)
			}
			lastTrim = time.Now()
		}
	}
	return nil
}

func (s *Shard) replayOwn(ctx context.Context) error {
	after := "0"
	for {
		var msgs []redis.Message
		err := s.retry(ctx, "read own pending", func() (err error) {
			msgs, err = s.q.ReadOwnPending(ctx, after, s.opt.BatchSize)
			return err
		})
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		s.log.Info("replaying own pending entries", "count", len(msgs))
		if err := s.process(ctx, msgs); err != nil {
			return err
		}
		after = msgs[len(msgs)-1].ID
	}
}

func (s *Shard) redisTrouble(ctx context.Context, err error, b backoff.BackOff) {
	if ctx.Err() != nil {
		return
	}
	s.read(err)
	s.opt.Metrics.RedisErrors.WithLabelValues(s.opt.Shard).Inc()
	s.log.Warn("redis unavailable", "err", err)
	s.regroup(ctx, err)
	s.replay = true
	wait(ctx, b)
}

// regroup creates the consumer group again when err says it is gone (the
// shard's Redis came back without its data): nothing else would, and every
// read would fail until the worker restarts.
func (s *Shard) regroup(ctx context.Context, err error) {
	if !redis.LostGroup(err) {
		return
	}
	if gerr := s.q.EnsureGroup(ctx); gerr != nil {
		s.log.Warn("the shard's consumer group is gone; creating it again failed", "err", gerr)
		return
	}
	s.log.Warn("the shard's consumer group was gone (its Redis lost its data); created it again")
}

// retry runs f, a Redis read, until it succeeds or ctx ends, backing off
// between tries.
func (s *Shard) retry(ctx context.Context, what string, f func() error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := f()
		if ctx.Err() == nil {
			s.read(err)
			s.regroup(ctx, err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(newBackOff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) {
		s.log.Warn(what+" failed; retrying", "err", err)
	}))
	return err
}

// process applies a batch and acknowledges it. It returns errStopped if
// shutdown began before the batch could be committed.
func (s *Shard) process(ctx context.Context, msgs []redis.Message) error {
	var batch, suspects []pending
	var copies []string // entries whose event this worker committed from another copy
	for _, m := range msgs {
		if m.Values == nil { // deleted from the stream; nothing left to apply
			s.log.Warn("pending entry no longer in stream", "id", m.ID)
			s.finish(ctx, nil, []string{m.ID})
			continue
		}
		e, err := surge.DecodeEntry(m.ID, m.Values)
		if err != nil {
			s.deadLetter(ctx, m, reasonUndecodable, err)
			continue
		}
		p := pending{m, e}
		if s.opt.Applied.has(e) {
			copies = append(copies, m.ID)
			continue
		}
		if m.Deliveries > s.opt.MaxDeliveries {
			suspects = append(suspects, p)
		} else {
			batch = append(batch, p)
		}
	}
	// Entries whose event another shard of this worker was applying when
	// they came wait, unacknowledged, for that commit to land (for it,
	// when there is nothing new to read): then they are copies to skip,
	// or, if it failed, entries to apply here.
	var redo []pending
	s.deferred, redo, copies = s.opt.Applied.settle(s.deferred, len(msgs) == 0, copies)
	batch = append(redo, batch...)
	if len(batch) > 0 {
		mine, waits, f := s.opt.Applied.claim(batch)
		s.deferred = append(s.deferred, waits...)
		if len(mine) > 0 {
			rejected, err := s.apply(ctx, mine)
			switch {
			case errors.Is(err, errStopped):
				s.opt.Applied.release(f)
				return err
			case err != nil:
				// A permanent failure: find the entries that cause it.
				s.log.Warn("batch failed; applying entries one by one", "entries", len(mine), "err", err)
				suspects = append(suspects, mine...)
			default:
				// The copies are acknowledged with the batch: one XACK.
				s.finishApplied(ctx, mine, rejected, copies...)
				copies = nil
			}
		}
		s.opt.Applied.release(f)
	}
	s.skip(ctx, copies)
	for _, p := range suspects {
		one := []pending{p}
		rejected, err := s.apply(ctx, one)
		switch {
		case errors.Is(err, errStopped):
			return err
		case err != nil:
			s.deadLetter(ctx, p.msg, reasonFailed, err)
		default:
			s.finishApplied(ctx, one, rejected)
		}
	}
	return nil
}

// skip acknowledges entries whose event this worker has committed from
// another copy, without applying them again.
func (s *Shard) skip(ctx context.Context, ids []string) {
	if len(ids) > 0 {
		s.opt.Metrics.CopiesSkipped.WithLabelValues(s.opt.Shard).Add(float64(len(ids)))
		s.finish(ctx, nil, ids)
	}
}

// pending is a decoded entry awaiting its commit.
type pending struct {
	msg   redis.Message
	entry surge.Entry
}

// finishApplied dead-letters the refused votes and acknowledges the rest,
// and the copies skipped with them.
func (s *Shard) finishApplied(ctx context.Context, batch []pending, rejected []surge.Vote, copies ...string) {
	refused := make(map[string]bool, len(rejected))
	for _, v := range rejected {
		refused[v.ID] = true
	}
	ids := make([]string, 0, len(batch))
	for _, p := range batch {
		if p.entry.Vote != nil && refused[p.entry.Vote.ID] {
			s.deadLetter(ctx, p.msg, reasonRefused, nil)
			continue
		}
		s.opt.Applied.add(p.entry)
		ids = append(ids, p.msg.ID)
	}
	s.opt.Metrics.Applied.WithLabelValues(s.opt.Shard).Add(float64(len(ids)))
	if len(copies) > 0 {
		s.opt.Metrics.CopiesSkipped.WithLabelValues(s.opt.Shard).Add(float64(len(copies)))
	}
	s.finish(ctx, ids, append(ids, copies...))
}

// finish runs the after-commit hook and acknowledges ids.
func (s *Shard) finish(ctx context.Context, committed, ids []string) {
	if s.opt.AfterCommit != nil && len(committed) > 0 {
		s.opt.AfterCommit(committed)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.FinishTimeout)
	defer cancel()
	if err := s.q.Ack(actx, ids...); err != nil {
		// Committed but not acknowledged: the entries will be delivered
		// again, and applying them again changes nothing.
		s.log.Warn("ack failed; entries will be redelivered", "entries", len(ids), "err", err)
		s.replay = true
	}
}

// apply commits a batch, retrying transient failures until shutdown. Once
// shutdown has begun, an attempt already running may finish.
func (s *Shard) apply(ctx context.Context, batch []pending) ([]surge.Vote, error) {
	var votes []surge.Vote
	var orders []surge.Order
	for _, p := range batch {
		switch {
		case p.entry.Vote != nil:
			votes = append(votes, *p.entry.Vote)
		case p.entry.Order != nil:
			orders = append(orders, *p.entry.Order)
		}
	}
	b := newBackOff()
	for {
		start := time.Now()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.FinishTimeout)
		rejected, outcomes, err := s.store.Apply(actx, votes, orders)
		cancel()
		if err == nil {
			s.opt.Metrics.BatchSeconds.WithLabelValues(s.opt.Shard).Observe(time.Since(start).Seconds())
			s.progressed()
			s.countOutcomes(outcomes)
			return rejected, nil
		}
		if !isTransient(err) {
			return nil, err
		}
		s.opt.Metrics.StoreErrors.WithLabelValues(s.opt.Shard).Inc()
		if ctx.Err() != nil {
			s.log.Info("shutting down with an uncommitted batch; it stays pending", "entries", len(batch))
			return nil, errStopped
		}
		s.log.Warn("store unavailable; retrying batch", "entries", len(batch), "err", err)
		wait(ctx, b)
	}
}

// countOutcomes counts the orders decided by a commit, and counts and logs
// those refused because their id was taken by an order with another item or
// quantity.
func (s *Shard) countOutcomes(outcomes []surge.OrderOutcome) {
	for _, o := range outcomes {
		switch o.Status {
		case surge.OrderConflict:
			s.opt.Metrics.OrderConflicts.WithLabelValues(s.opt.Shard).Inc()
			s.log.Warn("order not applied: its order_id belongs to an order with other lines", "order_id", o.ID)
		case surge.OrderConfirmed, surge.OrderRejected:
			s.opt.Metrics.Orders.WithLabelValues(s.opt.Shard, o.Status).Inc()
		}
	}
}

func (s *Shard) deadLetter(ctx context.Context, m redis.Message, reason string, cause error) {
	s.log.Error("dead-lettering entry", "id", m.ID, "reason", reason, "err", cause)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.FinishTimeout)
	defer cancel()
	detail := reason
	if cause != nil {
		detail = fmt.Sprintf("%s: %v", reason, cause)
	}
	if err := s.q.DeadLetter(dctx, m, detail); err != nil {
		s.log.Warn("dead-letter failed; entry stays pending", "id", m.ID, "err", err)
		return
	}
	s.opt.Metrics.DeadLettered.WithLabelValues(s.opt.Shard, reason).Inc()
}
