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

// errUnreadable is a shard whose Redis has not answered for longer than
// UnhealthyAfter.
var errUnreadable = errors.New("unreadable")

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
			return fmt.Errorf("shard %s: %w for %s", s.opt.Shard, errUnreadable, d.Round(time.Second))
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
//
// A shard that is only unreadable (its node is down) while another shard
// drains is degraded, not down: a restart cannot bring the shard back, and
// it would stop the draining of the others again and again for as long as
// the node stays down. Every worker retries the shard and drains it once it
// answers. With every shard unreadable the worker can do nothing: down.
func healthOf(ping func(context.Context) error, shards []*Shard) func(context.Context) error {
	return func(ctx context.Context) error {
		now := time.Now()
		checks := make([]error, len(shards))
		var pgErr error
		var wg sync.WaitGroup
		wg.Go(func() { pgErr = ping(ctx) })
		for i, s := range shards {
			wg.Go(func() { checks[i] = s.Check(ctx, now) })
		}
		wg.Wait()
		unreadable := 0
		for _, err := range checks {
			if errors.Is(err, errUnreadable) {
				unreadable++
			}
		}
		problems := []error{httpx.Down("postgres", pgErr)}
		for i, err := range checks {
			name := fmt.Sprintf("shard %d", i+1)
			if errors.Is(err, errUnreadable) && unreadable < len(shards) {
				problems = append(problems, httpx.Degraded(name, err))
			} else {
				problems = append(problems, httpx.Down(name, err))
			}
		}
		return errors.Join(problems...)
	}
}
