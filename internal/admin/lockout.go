package admin

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// lockoutClients bounds the failure table: past it, the least recently
// seen client is forgotten. A few MB at most, whatever a flood of distinct
// addresses sends.
const lockoutClients = 10_000

// lockout refuses a key after too many failures within a window, for that
// window: a brake on guessing admin passwords. Each key's record expires a
// window after its last failure, and the table holds at most
// lockoutClients keys.
type lockout struct {
	mu       sync.Mutex // a failure is read, then written
	max      int
	window   time.Duration
	failures *expirable.LRU[string, []time.Time]
	now      func() time.Time
}

func newLockout(maxFailures int, window time.Duration, now func() time.Time) *lockout {
	return &lockout{max: maxFailures, window: window, now: now,
		failures: expirable.NewLRU[string, []time.Time](lockoutClients, nil, window)}
}

// Locked reports how much longer key stays locked out for failing too often
// lately: 0 if it is not. The lock ends when enough of its failures have
// left the window for fewer than max to remain.
func (l *lockout) Locked(key string) time.Duration {
	if l.max <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	recent := l.recent(key, now)
	if len(recent) < l.max {
		return 0
	}
	return recent[len(recent)-l.max].Add(l.window).Sub(now)
}

// Fail records a failure of key.
func (l *lockout) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	recent := l.recent(key, now)
	l.failures.Add(key, append(recent[:len(recent):len(recent)], now))
}

// Len is how many keys the table holds.
func (l *lockout) Len() int { return l.failures.Len() }

// recent returns key's failures within the window, oldest first.
func (l *lockout) recent(key string, now time.Time) []time.Time {
	all, _ := l.failures.Get(key)
	cutoff := now.Add(-l.window)
	for i, t := range all {
		if t.After(cutoff) {
			return all[i:]
		}
	}
	return nil
}
