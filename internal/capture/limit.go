package capture

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
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
	burst = max(burst, 1)
	// A key is forgotten only once its bucket would be full again anyway,
	// so forgetting never gives a client more than waiting would.
	idle := time.Minute
	if perSecond > 0 {
		idle = max(idle, time.Duration(float64(burst)/perSecond*float64(time.Second)))
	}
	return &keyedLimiter{every: rate.Limit(perSecond), burst: burst, idle: idle,
		keys: map[string]*keyedEntry{}, now: now, enabled: perSecond > 0}
}

// Allow reports whether key may act now and, if not, how long until it may.
// A refused attempt takes no token.
func (l *keyedLimiter) Allow(key string) (bool, time.Duration) {
	if !l.enabled {
		return true, 0
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
	r := e.limiter.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

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
