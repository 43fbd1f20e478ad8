package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Eventually waits until cond returns nil and fails the test with cond's
// last error if timeout passes first. A cond that returns
// backoff.Permanent(err) fails at once: waiting cannot fix it.
//
// The timeout is a bound on what is awaited, never a synchronisation: pick
// it from what the condition waits for (a restart, a drain, a health
// check's interval × retries), with room for a loaded 2-core machine.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := WaitFor(context.Background(), timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// WaitFor is Eventually for callers that report the failure themselves (a
// step that cleans up first, a helper that returns an error). It polls
// cond with a short, growing, jittered interval (10 ms up to 500 ms), and
// returns nil, cond's last error after timeout, or ctx's error.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 10 * time.Millisecond
	b.MaxInterval = 500 * time.Millisecond
	start := time.Now()
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, cond() },
		backoff.WithBackOff(b), backoff.WithMaxElapsedTime(timeout))
	if err != nil {
		return fmt.Errorf("after %s: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}
