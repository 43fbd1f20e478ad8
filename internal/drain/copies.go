package drain

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/surge-vote/surge/internal/surge"
)

// DefaultApplied is how many events a worker remembers having committed:
// enough for the copies of an entry (package copies), which reach their two
// shards at the same moment and are drained at about the same pace, to
// meet within it. About 10 MB.
const DefaultApplied = 1 << 16

// Applied remembers the events a worker committed lately, across all its
// shards, so that the other copy of an entry is acknowledged without
// another trip to the store. Forgetting one costs only that trip: the store
// ignores a copy it has applied (a vote is keyed by voter and ordered by
// version and event id, an order by its id). A copy is skipped only once
// its event is committed: one that another shard of the worker is applying
// now waits for that commit (and is applied after all if it fails).
type Applied struct {
	events *lru.Cache[string, struct{}]
	mu     sync.Mutex
	flying map[string]*flight // events being applied now, by key
}

// flight is one batch's events on their way to the store.
type flight struct {
	keys   []string
	landed chan struct{} // closed once the batch committed or failed
}

// waiting is an entry whose event another shard's flight carries.
type waiting struct {
	p pending
	f *flight
}

// NewApplied remembers up to size events.
func NewApplied(size int) *Applied {
	c, err := lru.New[string, struct{}](size)
	if err != nil {
		panic(err) // only for size <= 0, a programming error
	}
	return &Applied{events: c, flying: map[string]*flight{}}
}

// appliedKey names what applying e decides: a vote by its event id; an
// order by its id and payload, so that a reuse of the id with another item
// or quantity is never taken for a copy (the store refuses it, and counts
// it).
func appliedKey(e surge.Entry) string {
	switch {
	case e.Vote != nil:
		return "v" + e.Vote.ID
	case e.Order != nil:
		return "o" + e.Order.ID + " " + e.Order.Payload()
	}
	return ""
}

// has reports whether e's event was committed lately; a nil Applied
// remembers nothing.
func (a *Applied) has(e surge.Entry) bool {
	return a != nil && a.events.Contains(appliedKey(e))
}

func (a *Applied) add(e surge.Entry) {
	if a != nil {
		a.events.Add(appliedKey(e), struct{}{})
	}
}

// claim takes a batch's events into a flight of this shard's, except those
// another shard is applying now, which wait for it. A nil Applied claims
// everything.
func (a *Applied) claim(batch []pending) (mine []pending, waits []waiting, f *flight) {
	if a == nil {
		return batch, nil, nil
	}
	f = &flight{landed: make(chan struct{})}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range batch {
		key := appliedKey(p.entry)
		if other, ok := a.flying[key]; ok && other != f {
			waits = append(waits, waiting{p, other})
			continue
		}
		a.flying[key] = f
		f.keys = append(f.keys, key)
		mine = append(mine, p)
	}
	return mine, waits, f
}

// release lands f, once what committed was remembered (add), whether the
// batch committed or not.
func (a *Applied) release(f *flight) {
	if a == nil || f == nil {
		return
	}
	a.mu.Lock()
	for _, key := range f.keys {
		if a.flying[key] == f {
			delete(a.flying, key)
		}
	}
	a.mu.Unlock()
	close(f.landed)
}

// settle sorts the deferred entries whose flight has landed (all of them,
// waiting for their flights, if wait): those whose event committed there
// join copies, to acknowledge; the others are to apply here. The rest stay
// deferred. Every flight lands: its batch commits, fails, or is left at
// shutdown.
func (a *Applied) settle(deferred []waiting, wait bool, copies []string) (rest []waiting, apply []pending, _ []string) {
	for _, w := range deferred {
		if wait {
			<-w.f.landed
		}
		select {
		case <-w.f.landed:
		default:
			rest = append(rest, w)
			continue
		}
		if a.has(w.p.entry) {
			copies = append(copies, w.p.msg.ID)
		} else {
			apply = append(apply, w.p)
		}
	}
	return rest, apply, copies
}
