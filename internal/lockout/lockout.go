// Package lockout refuses a client after too many failed logins within a
// window, for that window: the brake on password guessing that admin and
// accounts share.
package lockout

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// MaxKeys bounds the failure table: past it, the least recently
// seen client is forgotten. A few MB at most, whatever a flood of distinct
// addresses sends.
const MaxKeys = 10_000

// Lockout refuses a key after too many failures within a window, for that
// window: a brake on guessing passwords. Each key's record expires a
// window after its last failure, and the table holds at most
// MaxKeys keys.
type Lockout struct {
	mu       sync.Mutex // a failure is read, then written
	max      int
	window   time.Duration
	failures *expirable.LRU[string, []time.Time]
	now      func() time.Time
}

// New returns a Lockout that refuses a key after maxFailures failures
// within window (0 failures: never).
func New(maxFailures int, window time.Duration, now func() time.Time) *Lockout {
	return &Lockout{max: maxFailures, window: window, now: now,
		failures: expirable.NewLRU[string, []time.Time](MaxKeys, nil, window)}
}

// Locked reports how much longer key stays locked out for failing too often
// lately: 0 if it is not. The lock ends when enough of its failures have
// left the window for fewer than max to remain.
func (l *Lockout) Locked(key string) time.Duration {
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
func (l *Lockout) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	recent := l.recent(key, now)
	l.failures.Add(key, append(recent[:len(recent):len(recent)], now))
}

// Len is how many keys the table holds.
func (l *Lockout) Len() int { return l.failures.Len() }

// recent returns key's failures within the window, oldest first.
func (l *Lockout) recent(key string, now time.Time) []time.Time {
	all, _ := l.failures.Get(key)
	cutoff := now.Add(-l.window)
	for i, t := range all {
		if t.After(cutoff) {
			return all[i:]
		}
	}
	return nil
}
