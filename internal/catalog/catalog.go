// Package catalog caches what the frontends read from Postgres: the item
// catalogue and the polls. Copies are dropped when Postgres announces a
// change (LISTEN/NOTIFY), so a repeated read costs no query and a change is
// visible at once, with no TTL.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// Source is where the cache loads from.
type Source interface {
	Items(ctx context.Context) ([]surge.Item, error) // the items on sale
	ItemExists(ctx context.Context, id int64) (bool, error)
	SearchItems(ctx context.Context, q surge.ItemQuery) ([]surge.Item, error)
	Polls(ctx context.Context) ([]surge.Poll, error)
}

// Notifications is how the cache hears of changes: Postgres LISTEN/NOTIFY
// (postgres.DB.Listen). Listen calls onNotify for each notification on
// channels and onState whenever it starts or stops listening, until ctx
// ends.
type Notifications interface {
	Listen(ctx context.Context, log *slog.Logger, channels []string, onNotify func(channel, payload string), onState func(listening bool))
}

// Bounds on what ids the catalogue does not know may cost Postgres.
const (
	missTTL     = 5 * time.Second // an unknown id is not asked again for this long
	maxMisses   = 10_000          // unknown ids remembered at once
	missQueries = 50              // unknown ids asked about per second, overall

	searchEntries = 1024 // searches kept per catalogue generation
	searchQueries = 100  // searches not in the cache sent to Postgres per second, overall
)

// Cache holds the catalogue as ready-to-send JSON and the poll set.
type Cache struct {
	src Source
	log *slog.Logger

	mu        sync.Mutex
	itemsJSON []byte
	byID      map[int64]surge.Item // the items of itemsJSON
	itemsGen  uint64               // the generation itemsJSON was loaded in
	gen       atomic.Uint64
	listening atomic.Bool
	ready     chan struct{} // closed once the first load of the stored polls is over
	readyOnce sync.Once

	configPolls []surge.Poll
	polls       atomic.Pointer[map[string]surge.Poll]

	// Item ids on sale: replaced by each full load, so a retired item
	// drops out at the first load after its NOTIFY.
	known    map[int64]bool      // under mu
	misses   map[int64]time.Time // under mu: ids not found, until when that answer stands
	asking   singleflight.Group  // one query per unknown id at a time
	askLimit *rate.Limiter       // queries about unknown ids, overall
	now      func() time.Time

	// Searches: answers kept until the catalogue changes (keyed by the
	// generation too), one query per search at a time, and a bound on
	// the queries that searches not seen before cost Postgres.
	searches    *lru.Cache[searchKey, []byte]
	searching   singleflight.Group
	searchLimit *rate.Limiter

	// Loads counts catalogue queries to Postgres.
	Loads prometheus.Counter
}

// New returns a cache. configPolls are always known, even with Postgres down.
func New(src Source, configPolls []surge.Poll, log *slog.Logger) *Cache {
	c := &Cache{src: src, log: log, configPolls: configPolls, ready: make(chan struct{}),
		known: map[int64]bool{}, misses: map[int64]time.Time{}, now: time.Now,
		askLimit: rate.NewLimiter(missQueries, missQueries), searchLimit: rate.NewLimiter(searchQueries, searchQueries),
		Loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_catalog_db_loads_total", Help: "Catalogue reads that went to Postgres (cache misses).",
		})}
	c.searches, _ = lru.New[searchKey, []byte](searchEntries) // cannot fail: the size is positive
	c.setPolls(nil)
	return c
}

// Run keeps the cache in step with Postgres, hearing of changes from n,
// until ctx ends. It first loads
// the stored polls once (see Ready).
func (c *Cache) Run(ctx context.Context, n Notifications) {
	c.LoadPolls(ctx)
	// Learn the item ids now, so orders for them pass even if Postgres
	// goes away before they are first asked about.
	if _, err := c.ItemsJSON(ctx); err != nil {
		c.log.Warn("first catalogue load failed", "err", err)
	}
	n.Listen(ctx, c.log, []string{postgres.CatalogChannel, postgres.PollsChannel},
		func(channel, payload string) {
			switch channel {
			case postgres.CatalogChannel:
				c.Invalidate()
				if id, ok := strings.CutPrefix(payload, postgres.RetiredPrefix); ok {
					c.forget(id)
				} else {
					c.learn(payload)
				}
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
				// Items created while not listening: learn their ids now.
				if _, err := c.ItemsJSON(ctx); err != nil {
					c.log.Warn("catalogue load failed", "err", err)
				}
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

// Invalidate drops the cached catalogue, and what it knew not to exist.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.gen.Add(1)
	clear(c.misses)
	c.mu.Unlock()
}

// learn adds the id of an item just created or restocked (its NOTIFY's
// payload) to the ids on sale, so orders for it pass without a query, even
// if Postgres goes away before anyone asks. Other payloads ("stock") are
// not ids.
func (c *Cache) learn(id string) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.known[n] = true
	c.mu.Unlock()
}

// forget drops a retired item's id from the ids on sale, so an order for
// it is refused before the next catalogue load.
func (c *Cache) forget(id string) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	delete(c.known, n)
	c.mu.Unlock()
}

// ItemsJSON returns the catalogue as JSON, from the cache when it is valid.
// While the cache is not listening for changes, every read goes to Postgres;
// when Postgres cannot be read, the last copy loaded is served.
func (c *Cache) ItemsJSON(ctx context.Context) ([]byte, error) {
	b, _, err := c.catalogue(ctx)
	return b, err
}

// Item returns an item on sale by id, from the same copy as ItemsJSON.
func (c *Cache) Item(ctx context.Context, id int64) (surge.Item, bool, error) {
	_, byID, err := c.catalogue(ctx)
	it, ok := byID[id]
	return it, ok, err
}

func (c *Cache) catalogue(ctx context.Context) ([]byte, map[int64]surge.Item, error) {
	gen := c.gen.Load()
	c.mu.Lock()
	if c.itemsJSON != nil && c.itemsGen == gen && c.listening.Load() {
		b, byID := c.itemsJSON, c.byID
		c.mu.Unlock()
		return b, byID, nil
	}
	c.mu.Unlock()
	c.Loads.Inc()
	items, err := c.src.Items(ctx)
	if err != nil {
		// Postgres cannot be read: the last copy, if there is one, rather
		// than nothing, so the products stay visible while it is down
		// (their stock may be stale; the worker judges every order).
		c.mu.Lock()
		b, byID := c.itemsJSON, c.byID
		c.mu.Unlock()
		if b != nil {
			return b, byID, nil
		}
		return nil, nil, err
	}
	if items == nil {
		items = []surge.Item{}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[int64]surge.Item, len(items))
	for _, it := range items {
		byID[it.ID] = it
	}
	c.mu.Lock()
	// Keep the copy only if nothing changed while it was loading; then
	// it is also the set of ids on sale (a retired one drops out).
	if c.gen.Load() == gen {
		c.itemsJSON, c.byID, c.itemsGen = b, byID, gen
		c.known = make(map[int64]bool, len(items))
	}
	for id := range byID {
		c.known[id] = true
	}
	c.mu.Unlock()
	return b, byID, nil
}

type searchKey struct {
	gen uint64
	q   surge.ItemQuery
}

// SearchJSON returns the items matching q as JSON. An answer is kept until
// the catalogue changes; a search not kept costs one Postgres query, and at
// most searchQueries of them a second overall are sent: past that the
// answer is EUNAVAILABLE, so a flood of distinct searches cannot load
// Postgres.
func (c *Cache) SearchJSON(ctx context.Context, q surge.ItemQuery) ([]byte, error) {
	key := searchKey{c.gen.Load(), q}
	if b, ok := c.searches.Get(key); ok && c.listening.Load() {
		return b, nil
	}
	v, err, _ := c.searching.Do(fmt.Sprintf("%d/%q/%q/%d/%d", key.gen, q.Topic, q.Words, q.Limit, q.Offset), func() (any, error) {
		if !c.searchLimit.AllowN(c.now(), 1) {
			return nil, surge.Errorf(surge.EUNAVAILABLE, "catalogue search busy; try again")
		}
		c.Loads.Inc()
		items, err := c.src.SearchItems(ctx, q)
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
		if c.gen.Load() == key.gen { // not from before a change
			c.searches.Add(key, b)
		}
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// HasItem reports whether an item is on sale. Items it has seen are answered
// from memory. An id it has not seen may be an item created a moment ago
// whose NOTIFY has not arrived, so it asks Postgres, once per id per
// missTTL (a NOTIFY forgets the misses), and at most missQueries times a
// second overall: past that, or with Postgres down, an unseen id is
// EUNAVAILABLE, never guessed.
func (c *Cache) HasItem(ctx context.Context, id int64) (bool, error) {
	now := c.now()
	if ok, decided := c.remembered(id, now); decided {
		return ok, nil
	}
	v, err, _ := c.asking.Do(strconv.FormatInt(id, 10), func() (any, error) {
		// Asked again: a query for this id may have ended between the
		// check above and this flight.
		if ok, decided := c.remembered(id, now); decided {
			return ok, nil
		}
		if !c.askLimit.AllowN(now, 1) {
			return false, surge.Errorf(surge.EUNAVAILABLE, "catalogue busy; try again")
		}
		gen := c.gen.Load()
		c.Loads.Inc()
		ok, err := c.src.ItemExists(ctx, id)
		if err != nil {
			return false, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if ok {
			c.known[id] = true
			return true, nil
		}
		// A miss from before a NOTIFY may already be stale: don't keep it.
		if c.gen.Load() == gen {
			c.rememberMiss(id, now)
		}
		return false, nil
	})
	if err != nil {
		return false, err
	}
	return v.(bool), nil
}

// remembered answers from memory whether id is on sale: decided is false
// when neither a known id nor a fresh miss says.
func (c *Cache) remembered(id int64, now time.Time) (ok, decided bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known[id] {
		return true, true
	}
	until, missed := c.misses[id]
	return false, missed && now.Before(until)
}

// rememberMiss notes that id did not exist at now; under mu. The table is
// bounded: when it is full of fresh misses, this one is not kept.
func (c *Cache) rememberMiss(id int64, now time.Time) {
	if len(c.misses) >= maxMisses {
		maps.DeleteFunc(c.misses, func(_ int64, until time.Time) bool { return !now.Before(until) })
	}
	if len(c.misses) < maxMisses {
		c.misses[id] = now.Add(missTTL)
	}
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
