package capture

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter rate-limits by key (a voter, a client address). Keys unused
// for a while are forgotten, so memory follows the active clients.
type keyedLimiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	idle    time.Duration
	keys    map[string]*keyedEntry
	swept   time.Time
	now     func() time.Time
	enabled bool
}

type keyedEntry struct {
	limiter *rate.Limiter
	seen    time.Time
}

// newKeyedLimiter allows perSecond events per key with the given burst; a
// zero rate disables it.
func newKeyedLimiter(perSecond float64, burst int, now func() time.Time) *keyedLimiter {
	return &keyedLimiter{every: rate.Limit(perSecond), burst: max(burst, 1), idle: time.Minute,
		keys: map[string]*keyedEntry{}, now: now, enabled: perSecond > 0}
}

// Allow reports whether key may act now.
func (l *keyedLimiter) Allow(key string) bool {
	if !l.enabled {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.idle {
		for k, e := range l.keys {
			if now.Sub(e.seen) > l.idle {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	e, ok := l.keys[key]
	if !ok {
		e = &keyedEntry{limiter: rate.NewLimiter(l.every, l.burst)}
		l.keys[key] = e
	}
	e.seen = now
	return e.limiter.AllowN(now, 1)
}

// lockout refuses a key after too many failures within a window, for that
// window: a brake on guessing admin passwords.
type lockout struct {
	mu       sync.Mutex
	max      int
	window   time.Duration
	failures map[string][]time.Time
	now      func() time.Time
}

func newLockout(maxFailures int, window time.Duration, now func() time.Time) *lockout {
	return &lockout{max: maxFailures, window: window, failures: map[string][]time.Time{}, now: now}
}

// Locked reports whether key has failed too often lately.
func (l *lockout) Locked(key string) bool {
	if l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(key)) >= l.max
}

// Fail records a failure of key.
func (l *lockout) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[key] = append(l.recent(key), l.now())
}

func (l *lockout) recent(key string) []time.Time {
	cutoff := l.now().Add(-l.window)
	kept := l.failures[key][:0]
	for _, t := range l.failures[key] {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(l.failures, key)
		return nil
	}
	l.failures[key] = kept
	return kept
}
