package drain

import (
	"testing"
	"time"
)

// Every worker retries a shard whose Redis comes back at the same moment.
// Their waits must differ (jitter), and stay within the schedule: 50 ms
// ±50 % at first and after a success, at most 2 s ±50 %.
func TestBackOffJitter(t *testing.T) {
	const workers = 20
	within := func(d, around time.Duration) bool { return d >= around/2 && d <= around*3/2 }
	firsts := map[time.Duration]bool{}
	for range workers {
		b := newBackOff()
		first := b.NextBackOff()
		if !within(first, 50*time.Millisecond) {
			t.Fatalf("first wait %s, want 25–75 ms", first)
		}
		firsts[first] = true
		var last time.Duration
		for range 20 {
			last = b.NextBackOff()
		}
		if !within(last, 2*time.Second) {
			t.Fatalf("capped wait %s, want 1–3 s", last)
		}
		b.Reset()
		if d := b.NextBackOff(); !within(d, 50*time.Millisecond) {
			t.Fatalf("wait after a success %s, want 25–75 ms", d)
		}
	}
	if len(firsts) < workers/2 {
		t.Fatalf("%d workers drew only %d different first waits: they retry in lockstep", workers, len(firsts))
	}
}
