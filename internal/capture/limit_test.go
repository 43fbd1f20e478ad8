package capture

import (
	"fmt"
	"testing"
	"time"
)

// A flood of distinct addresses cannot grow the failure table past its cap,
// and a key is still locked out while it lasts.
func TestLockoutTableIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLockout(5, time.Minute, func() time.Time { return now })
	for range 5 {
		l.Fail("203.0.113.1")
	}
	if l.Locked("203.0.113.1") == 0 {
		t.Fatal("5 failures did not lock the key out")
	}
	for i := range 100_000 {
		l.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
		if i%1000 == 0 {
			l.Locked("203.0.113.1") // the locked-out client keeps trying
		}
	}
	if n := l.Len(); n > lockoutClients {
		t.Fatalf("%d keys after a flood of 100,000 distinct ones; the cap is %d", n, lockoutClients)
	}
	if l.Locked("203.0.113.1") == 0 {
		t.Fatal("a client that kept trying was forgotten during the flood")
	}
}

// Failures older than the window stop counting.
func TestLockoutWindow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLockout(3, time.Minute, func() time.Time { return now })
	tests := []struct {
		advance time.Duration
		fail    bool
		locked  bool
	}{
		{0, true, false},
		{10 * time.Second, true, false},
		{10 * time.Second, true, true},   // 3 within the minute
		{45 * time.Second, false, false}, // the first is 65 s old
		{0, true, true},                  // 3 again
		{2 * time.Minute, false, false},  // all old
		{0, false, false},                // and nothing was kept
	}
	for i, tt := range tests {
		now = now.Add(tt.advance)
		if tt.fail {
			l.Fail("k")
		}
		if got := l.Locked("k") > 0; got != tt.locked {
			t.Fatalf("step %d: locked %v, want %v", i, got, tt.locked)
		}
	}
}

// A limiter forgets a key only once its bucket would be full again anyway:
// a client that waits out the idle sweep gets no more than one that keeps
// asking. And a refusal says how long until the next token.
func TestKeyedLimiterForgetsOnlyFullBuckets(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		perSecond float64
		burst     int
		wait      time.Duration // after the burst is spent
		wantAfter int           // allowed after the wait
		wantRetry time.Duration // Retry-After of the first refusal
	}{
		{"new voters: 1/s, burst 120, back after 61 s", 1, 120, 61 * time.Second, 61, time.Second},
		{"new voters: back after the bucket filled", 1, 120, 3 * time.Minute, 120, time.Second},
		{"votes: 5/s, burst 20", 5, 20, 2 * time.Minute, 20, 200 * time.Millisecond},
		{"slow: 1/min, burst 2", 1.0 / 60, 2, 90 * time.Second, 1, time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := start
			l := newKeyedLimiter(tt.perSecond, tt.burst, func() time.Time { return now })
			for i := range tt.burst {
				if ok, _ := l.Allow("k"); !ok {
					t.Fatalf("refused within the burst, at %d", i)
				}
			}
			ok, retry := l.Allow("k")
			if ok || retry != tt.wantRetry {
				t.Fatalf("past the burst: allowed %v, retry in %v; want refused, retry in %v", ok, retry, tt.wantRetry)
			}
			now = now.Add(tt.wait)
			l.Allow("other") // the sweep runs on any call
			got := 0
			for {
				if ok, _ := l.Allow("k"); !ok {
					break
				}
				got++
			}
			if got != tt.wantAfter {
				t.Fatalf("after %v: %d allowed, want %d", tt.wait, got, tt.wantAfter)
			}
		})
	}
}
