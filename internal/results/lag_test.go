package results_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// gatedStore serves the default poll; a read of its results waits for the
// gate while it is closed, and fails while failing is set.
type gatedStore struct {
	results.Store
	mu      sync.Mutex
	gate    chan struct{}
	failing atomic.Bool
	waiting atomic.Int64 // reads that reached the gate
	failed  atomic.Int64
}

func (s *gatedStore) Polls(context.Context) ([]surge.Poll, error) { return surge.DefaultPolls(), nil }

func (s *gatedStore) Results(ctx context.Context, poll string) (surge.Results, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	s.waiting.Add(1)
	<-gate
	if s.failing.Load() {
		s.failed.Add(1)
		return surge.Results{}, errors.New("postgres is away")
	}
	return surge.Results{Poll: poll, Counts: map[string]int64{}}, nil
}

// manualNotify is LISTEN that delivers what the test sends: payloads on
// notify, and its state (listening or not) on state.
type manualNotify struct {
	notify chan string
	state  chan bool
}

func (n manualNotify) Listen(ctx context.Context, _ *slog.Logger, _ []string, onNotify func(string, string), onState func(bool)) {
	onState(true)
	for {
		select {
		case <-ctx.Done():
			return
		case poll := <-n.notify:
			onNotify("surge_results", poll)
		case listening := <-n.state:
			onState(listening)
		}
	}
}

func histogram(t *testing.T, h prometheus.Histogram) (count uint64, sum float64) {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// The stream lag is how long the oldest change heard of has waited for its
// push: it grows while a read is slow or failing, keeps the time of the
// first change through failed reads, and is 0 once pushed; each push
// records its own lag. While LISTEN is lost, it is how long that has lasted.
func TestStreamLag(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	store := &gatedStore{gate: make(chan struct{})}
	live := results.NewLive(store, slog.New(slog.DiscardHandler), time.Millisecond)
	results.SetClock(live, clock.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-live.Done() }()
	notify := manualNotify{notify: make(chan string), state: make(chan bool)}
	go live.Run(ctx, notify)

	// Listening marks every poll changed; its read waits at the gate.
	testenv.Eventually(t, 10*time.Second, func() error {
		if store.waiting.Load() == 0 {
			return errors.New("no read yet")
		}
		return nil
	})
	clock.Advance(5 * time.Second)
	if got := live.Lag(); got != 5*time.Second {
		t.Fatalf("lag with a read in flight for 5 s: %v", got)
	}
	store.mu.Lock()
	close(store.gate)
	store.mu.Unlock()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n, sum := histogram(t, live.PushLag); n != 1 || sum != 5 {
			return fmt.Errorf("push lag: %d pushes, %v s in all; want 1 of 5 s", n, sum)
		}
		return nil
	})
	if got := live.Lag(); got != 0 {
		t.Fatalf("lag once pushed: %v", got)
	}

	// A commit heard while Postgres fails reads: the lag counts from it.
	store.failing.Store(true)
	notify.notify <- surge.DefaultPollID
	testenv.Eventually(t, 10*time.Second, func() error {
		if store.failed.Load() < 2 {
			return errors.New("fewer than 2 failed reads")
		}
		return nil
	})
	clock.Advance(7 * time.Second)
	failed := store.failed.Load()
	testenv.Eventually(t, 10*time.Second, func() error {
		if store.failed.Load() < failed+2 {
			return errors.New("fewer than 2 reads failed since the clock moved")
		}
		return nil
	})
	if got := live.Lag(); got != 7*time.Second {
		t.Fatalf("lag 7 s after a commit whose reads fail: %v", got)
	}
	store.failing.Store(false)
	testenv.Eventually(t, 10*time.Second, func() error {
		if n, sum := histogram(t, live.PushLag); n != 2 || sum != 12 {
			return fmt.Errorf("push lag: %d pushes, %v s in all; want 2 of 12 s", n, sum)
		}
		if got := live.Lag(); got != 0 {
			return fmt.Errorf("lag once pushed: %v", got)
		}
		return nil
	})

	// LISTEN lost: the streams hear of nothing, for as long as it lasts.
	notify.state <- false
	testenv.Eventually(t, 10*time.Second, func() error {
		if live.Listening() {
			return errors.New("still listening")
		}
		return nil
	})
	clock.Advance(4 * time.Second)
	if got := live.Lag(); got != 4*time.Second {
		t.Fatalf("lag 4 s after LISTEN was lost: %v", got)
	}
	notify.state <- true
	testenv.Eventually(t, 10*time.Second, func() error {
		if n, _ := histogram(t, live.PushLag); n != 3 {
			return fmt.Errorf("%d pushes, want 3: LISTEN back, every poll is read again", n)
		}
		if got := live.Lag(); got != 0 {
			return fmt.Errorf("lag once LISTEN is back and the polls pushed: %v", got)
		}
		return nil
	})
}
