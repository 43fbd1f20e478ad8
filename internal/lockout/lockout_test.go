package lockout

import (
	"fmt"
	"testing"
	"time"
)

// A flood of distinct addresses cannot grow the failure table past its cap,
// and a key is still locked out while it lasts.
func TestLockoutTableIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(5, time.Minute, func() time.Time { return now })
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
	if n := l.Len(); n > MaxKeys {
		t.Fatalf("%d keys after a flood of 100,000 distinct ones; the cap is %d", n, MaxKeys)
	}
	if l.Locked("203.0.113.1") == 0 {
		t.Fatal("a client that kept trying was forgotten during the flood")
	}
}

// Failures older than the window stop counting.
func TestLockoutWindow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(3, time.Minute, func() time.Time { return now })
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
