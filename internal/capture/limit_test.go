package capture

import (
	"testing"
	"time"
)

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
