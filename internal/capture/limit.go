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
