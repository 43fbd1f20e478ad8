package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/testenv"
)

// A listening connection that is lost is re-established, its loss reported
// in between, and notifications flow again; cancelling ctx ends Listen.
func TestListenReconnectsAfterLoss(t *testing.T) {
	db := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var states []bool
	got := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, slog.New(slog.DiscardHandler), []string{"test_listen"},
			func(_, payload string) { mu.Lock(); got[payload] = true; mu.Unlock() },
			func(listening bool) { mu.Lock(); states = append(states, listening); mu.Unlock() })
	}()
	// notified sends payload until Listen has delivered it.
	notified := func(payload string) func() error {
		return func() error {
			mu.Lock()
			ok := got[payload]
			mu.Unlock()
			if ok {
				return nil
			}
			if _, err := db.Pool.Exec(ctx, "SELECT pg_notify('test_listen', $1)", payload); err != nil {
				return err
			}
			return errors.New("not delivered yet")
		}
	}
	// Bounds: a connection and a notification on a loaded machine.
	testenv.Eventually(t, 10*time.Second, notified("before"))

	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, notified("after"))
	mu.Lock()
	if want := fmt.Sprint([]bool{true, false, true}); fmt.Sprint(states) != want {
		t.Errorf("states %v, want %s (listening, lost, listening again)", states, want)
	}
	mu.Unlock()

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // failsafe against a hang, not a timing assertion
		t.Fatal("Listen did not return after its context was cancelled")
	}
}
