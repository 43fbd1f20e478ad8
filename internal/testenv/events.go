package testenv

import (
	"fmt"
	"slices"
	"sync"
)

// EventLog records, in order, what a test's fakes were asked to do, so a
// test can check the order of calls as well as their results.
type EventLog struct {
	mu     sync.Mutex
	events []string
}

// Add records one event, formatted as by fmt.Sprintf.
func (l *EventLog) Add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

// Snapshot returns the events so far.
func (l *EventLog) Snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}
