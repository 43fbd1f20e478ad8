package drain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
)

// DefaultUnhealthyAfter is how long a shard may stay unreadable, or stalled
// with entries waiting, before the worker's health fails: long enough to
// ride out a Redis restart or a slow batch, short enough for an
// orchestrator to notice a stuck worker.
const DefaultUnhealthyAfter = 15 * time.Second

// read records the outcome of a Redis read.
func (s *Shard) read(err error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.failingSince.IsZero() {
			s.failingSince = now
		}
		return
	}
	s.failingSince = time.Time{}
	s.progress = now
}

// progressed records that the loop moved: it started or committed a batch.
func (s *Shard) progressed() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress = now
}

// Check reports, as of now, whether the shard has been unreadable for
// longer than UnhealthyAfter, or has made no progress (no successful read
// or commit) for that long while entries wait in its stream, or is not
// running yet. The error names the shard and says what is wrong in plain
// words.
func (s *Shard) Check(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	failing, progress := s.failingSince, s.progress
	s.mu.Unlock()
	if progress.IsZero() {
		return fmt.Errorf("shard %s: not draining yet", s.opt.Shard)
	}
	after := s.opt.UnhealthyAfter
	if !failing.IsZero() {
		if d := now.Sub(failing); d > after {
			return fmt.Errorf("shard %s: unreadable for %s", s.opt.Shard, d.Round(time.Second))
		}
		return nil // a passing failure; the loop is retrying
	}
	if now.Sub(progress) <= after {
		return nil
	}
	// Idle is fine: only a stall with entries waiting is a fault.
	stalled := now.Sub(progress).Round(time.Second)
	b, err := s.q.Backlog(ctx)
	if err != nil {
		return fmt.Errorf("shard %s: no progress for %s, and its backlog cannot be read", s.opt.Shard, stalled)
	}
	if waiting := b.Pending + b.Lag; waiting > 0 {
		return fmt.Errorf("shard %s: no progress for %s with entries waiting (%d)", s.opt.Shard, stalled, waiting)
	}
	return nil
}

// healthOf returns the worker's health check: Postgres answers, and every
// shard passes Check. The checks run at once so that one hung dependency
// does not use up the others' time. Every problem found is reported: the
// answer names them ("postgres", "shard 2", numbered as configured), the
// log gets the detail.
func healthOf(ping func(context.Context) error, shards []*Shard) func(context.Context) error {
	return func(ctx context.Context) error {
		now := time.Now()
		problems := make([]error, len(shards)+1)
		var wg sync.WaitGroup
		wg.Go(func() { problems[0] = httpx.Down("postgres", ping(ctx)) })
		for i, s := range shards {
			wg.Go(func() { problems[i+1] = httpx.Down(fmt.Sprintf("shard %d", i+1), s.Check(ctx, now)) })
		}
		wg.Wait()
		return errors.Join(problems...)
	}
}
