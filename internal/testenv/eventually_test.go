package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

func TestWaitFor(t *testing.T) {
	notYet := errors.New("not yet")
	tests := []struct {
		name    string
		cond    func(calls int) error
		timeout time.Duration
		want    string // "" for success, else a substring of the error
		maxCall int    // the most calls allowed; 0 for no bound
	}{
		{"true at once", func(int) error { return nil }, time.Second, "", 1},
		{"true on the third call", func(n int) error {
			if n < 3 {
				return notYet
			}
			return nil
		}, 5 * time.Second, "", 3},
		{"never true: the last error after the timeout", func(int) error { return notYet }, 200 * time.Millisecond, "not yet", 0},
		{"permanent: stops at once", func(int) error { return backoff.Permanent(errors.New("broken")) }, time.Minute, "broken", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := WaitFor(context.Background(), tt.timeout, func() error { calls++; return tt.cond(calls) })
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one with %q", err, tt.want)
			}
			if tt.maxCall > 0 && calls > tt.maxCall {
				t.Fatalf("cond called %d times, want at most %d", calls, tt.maxCall)
			}
		})
	}
}

func TestWaitForStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WaitFor(ctx, time.Minute, func() error { return errors.New("not yet") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
