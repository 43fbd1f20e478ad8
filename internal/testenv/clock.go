package testenv

import (
	"sync/atomic"
	"time"
)

// Clock is a clock for code that takes a now func. It moves only when told,
// so what a test expects to expire or refill happens exactly then.
type Clock struct{ t atomic.Pointer[time.Time] }

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.Set(start)
	return c
}

// Now is the clock's time; pass c.Now as the code's clock.
func (c *Clock) Now() time.Time { return *c.t.Load() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.t.Store(&t) }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }
