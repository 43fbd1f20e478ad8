// Package catalog caches what the frontends read from Postgres: the item
// catalogue and the polls. Copies are dropped when Postgres announces a
// change (LISTEN/NOTIFY), so a repeated read costs no query and a change is
// visible at once, with no TTL.
package catalog

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// Source is where the cache loads from.
type Source interface {
	Items(ctx context.Context) ([]surge.Item, error)
	Polls(ctx context.Context) ([]surge.Poll, error)
}

// Cache holds the catalogue as ready-to-send JSON and the poll set.
type Cache struct {
	src Source
	log *slog.Logger

	mu        sync.Mutex
	itemsJSON []byte
	itemsGen  uint64 // the generation itemsJSON was loaded in
	gen       atomic.Uint64
	listening atomic.Bool
	ready     chan struct{} // closed once the first load of the stored polls is over
	readyOnce sync.Once

	configPolls []surge.Poll
	polls       atomic.Pointer[map[string]surge.Poll]

	// Loads counts catalogue queries to Postgres.
	Loads prometheus.Counter
}

// New returns a cache. configPolls are always known, even with Postgres down.
func New(src Source, configPolls []surge.Poll, log *slog.Logger) *Cache {
	c := &Cache{src: src, log: log, configPolls: configPolls, ready: make(chan struct{}),
		Loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_catalog_db_loads_total", Help: "Catalogue reads that went to Postgres (cache misses).",
		})}
	c.setPolls(nil)
	return c
}

// Run keeps the cache in step with Postgres until ctx ends. It first loads
// the stored polls once (see Ready).
func (c *Cache) Run(ctx context.Context, db *postgres.DB) {
	c.LoadPolls(ctx)
	db.Listen(ctx, c.log, []string{postgres.CatalogChannel, postgres.PollsChannel},
		func(channel, _ string) {
			switch channel {
			case postgres.CatalogChannel:
				c.Invalidate()
			case postgres.PollsChannel:
				c.reloadPolls(ctx)
			}
		},
		func(listening bool) {
			// Whatever changed while we were not listening is unknown.
			c.Invalidate()
			c.listening.Store(listening)
			if listening {
				c.reloadPolls(ctx)
			}
		})
}

// LoadPolls tries once to load the stored polls; the cache is Ready after
// it, whether or not Postgres answered.
func (c *Cache) LoadPolls(ctx context.Context) {
	c.reloadPolls(ctx)
	c.readyOnce.Do(func() { close(c.ready) })
}

// Ready reports whether the first load of the stored polls is over. Before
// it, a vote for a poll created through admin would be refused as unknown.
// After a failed first load (Postgres down) the cache has the configured
// polls.
func (c *Cache) Ready() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// WaitReady waits until Ready or ctx ends, and reports Ready.
func (c *Cache) WaitReady(ctx context.Context) bool {
	select {
	case <-c.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Listening reports whether the cache hears of changes; until it does,
// every read goes to Postgres.
func (c *Cache) Listening() bool { return c.listening.Load() }

// Invalidate drops the cached catalogue.
func (c *Cache) Invalidate() { c.gen.Add(1) }

// ItemsJSON returns the catalogue as JSON, from the cache when it is valid.
// While the cache is not listening for changes, every read goes to Postgres.
func (c *Cache) ItemsJSON(ctx context.Context) ([]byte, error) {
	gen := c.gen.Load()
	c.mu.Lock()
	if c.itemsJSON != nil && c.itemsGen == gen && c.listening.Load() {
		b := c.itemsJSON
		c.mu.Unlock()
		return b, nil
	}
	c.mu.Unlock()
	c.Loads.Inc()
	items, err := c.src.Items(ctx)
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []surge.Item{}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// Keep the copy only if nothing changed while it was loading.
	if c.gen.Load() == gen {
		c.itemsJSON, c.itemsGen = b, gen
	}
	c.mu.Unlock()
	return b, nil
}

// Poll returns a poll by id, from the configured and stored polls. Before
// the first load of the stored polls is over (a frontend that has just
// started, which a proxy may already send requests to), a poll it does not
// know yet is waited for rather than reported unknown.
func (c *Cache) Poll(ctx context.Context, id string) (surge.Poll, bool) {
	p, ok := (*c.polls.Load())[id]
	if !ok && !c.Ready() && c.WaitReady(ctx) {
		p, ok = (*c.polls.Load())[id]
	}
	return p, ok
}

// Polls returns every known poll.
func (c *Cache) Polls() map[string]surge.Poll { return *c.polls.Load() }

func (c *Cache) reloadPolls(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, err := c.src.Polls(lctx)
	if err != nil {
		c.log.Warn("reload polls failed; keeping the known set", "err", err)
		return
	}
	c.setPolls(stored)
}

func (c *Cache) setPolls(stored []surge.Poll) {
	m := make(map[string]surge.Poll, len(c.configPolls)+len(stored))
	for _, p := range stored {
		m[p.ID] = p
	}
	for _, p := range c.configPolls { // config wins for its own polls
		m[p.ID] = p
	}
	c.polls.Store(&m)
}
