package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/catalog"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// itemSource is a Postgres stand-in: its items, the queries it answered per
// id, and a switch to take it down.
type itemSource struct {
	mu      sync.Mutex
	items   map[int64]bool
	asked   map[int64]int
	release chan struct{} // if set, ItemExists waits for it
	down    atomic.Bool
}

func newItemSource(ids ...int64) *itemSource {
	s := &itemSource{items: map[int64]bool{}, asked: map[int64]int{}}
	for _, id := range ids {
		s.items[id] = true
	}
	return s
}

func (s *itemSource) add(id int64) { s.mu.Lock(); s.items[id] = true; s.mu.Unlock() }

func (s *itemSource) queries(id int64) int { s.mu.Lock(); defer s.mu.Unlock(); return s.asked[id] }

func (s *itemSource) Items(context.Context) ([]surge.Item, error) {
	if s.down.Load() {
		return nil, surge.Unavailable("database", errors.New("down"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []surge.Item
	for id := range s.items {
		out = append(out, surge.Item{ID: id, Name: "x"})
	}
	return out, nil
}

func (s *itemSource) ItemExists(_ context.Context, id int64) (bool, error) {
	if s.release != nil {
		<-s.release
	}
	if s.down.Load() {
		return false, surge.Unavailable("database", errors.New("down"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[id]++
	return s.items[id], nil
}

func (s *itemSource) Polls(context.Context) ([]surge.Poll, error) { return nil, nil }

func (s *itemSource) SearchItems(context.Context, surge.ItemQuery) ([]surge.Item, error) {
	return nil, nil
}

func newItemCache(src catalog.Source, clk *testenv.Clock) *catalog.Cache {
	c := catalog.New(src, nil, slog.New(slog.DiscardHandler))
	catalog.SetClock(c, clk.Now)
	return c
}

func hasItem(t *testing.T, c *catalog.Cache, id int64) bool {
	t.Helper()
	ok, err := c.HasItem(context.Background(), id)
	if err != nil {
		t.Fatalf("HasItem(%d): %v", id, err)
	}
	return ok
}

// Items seen once are known for good; an item created a moment ago (its
// NOTIFY not yet arrived) is found by asking; an unknown id costs one query
// per id until the miss expires or a NOTIFY arrives.
func TestHasItemAsksOncePerUnknownID(t *testing.T) {
	src, clk := newItemSource(1), testenv.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newItemCache(src, clk)
	if _, err := c.ItemsJSON(context.Background()); err != nil { // a catalogue load
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		before  func()
		id      int64
		times   int
		want    bool
		queries int // queries about id so far
	}{
		{"an item the catalogue loaded", nil, 1, 100, true, 0},
		{"an unknown id, flooded", nil, 99, 100, false, 1},
		{"an item created without a NOTIFY yet", func() { src.add(2) }, 2, 100, true, 1},
		{"the unknown id, just before the miss expires", func() { clk.Advance(5*time.Second - time.Millisecond) }, 99, 10, false, 1},
		{"the unknown id, once the miss expired", func() { clk.Advance(time.Millisecond) }, 99, 10, false, 2},
		{"the unknown id, created since, after its NOTIFY", func() { src.add(99); c.Invalidate() }, 99, 10, true, 3},
		{"a known item with Postgres down", func() { src.down.Store(true) }, 2, 10, true, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			for range st.times {
				if got := hasItem(t, c, st.id); got != st.want {
					t.Fatalf("HasItem(%d) = %v, want %v", st.id, got, st.want)
				}
			}
			if n := src.queries(st.id); n != st.queries {
				t.Fatalf("%d queries about item %d, want %d", n, st.id, st.queries)
			}
		})
	}
	// An id never seen cannot be told while Postgres is down.
	if ok, err := c.HasItem(context.Background(), 3); ok || surge.ErrorCode(err) != surge.EUNAVAILABLE {
		t.Fatalf("unseen id with Postgres down: %v, %v; want EUNAVAILABLE", ok, err)
	}
}

// An item created after the catalogue loaded is on sale from its NOTIFY
// on: an order for it passes with Postgres gone before anyone asked.
func TestCreatedItemIsKnownFromItsNotify(t *testing.T) {
	src := newItemSource(1)
	c := newItemCache(src, testenv.NewClock(time.Unix(1_700_000_000, 0)))
	_, notify := runOnFakeNotifications(t, c)
	src.add(2)
	notify(postgres.CatalogChannel, "2")
	notify(postgres.CatalogChannel, "stock") // not an id: changes nothing
	src.down.Store(true)
	if ok, err := c.HasItem(context.Background(), 2); err != nil || !ok {
		t.Fatalf("HasItem(2) after its NOTIFY, Postgres down: %v, %v; want on sale", ok, err)
	}
	if n := src.queries(2); n != 0 {
		t.Fatalf("%d queries about item 2, want none", n)
	}
	notify(postgres.CatalogChannel, postgres.RetiredPrefix+"2")
	if ok, err := c.HasItem(context.Background(), 2); ok {
		t.Fatalf("HasItem(2) after its retirement: %v, %v; want off sale", ok, err)
	}
}

// With Postgres down and the cache no longer trusted (not listening), the
// catalogue is the last copy loaded, not an error: products stay visible
// when the accounts (or any other part of Postgres) are down.
func TestCatalogueSurvivesPostgresDown(t *testing.T) {
	src := newItemSource(1, 2)
	c := newItemCache(src, testenv.NewClock(time.Unix(1_700_000_000, 0)))
	ctx := context.Background()
	before, err := c.ItemsJSON(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.down.Store(true)
	c.Invalidate()
	got, err := c.ItemsJSON(ctx)
	if err != nil || string(got) != string(before) {
		t.Fatalf("with Postgres down: %s, %v; want the last copy %s", got, err, before)
	}
	if it, ok, err := c.Item(ctx, 2); err != nil || !ok || it.ID != 2 {
		t.Fatalf("item 2 with Postgres down: %+v %v %v", it, ok, err)
	}
	// A cache that never loaded has nothing to show.
	if _, err := newItemCache(src, testenv.NewClock(time.Now())).ItemsJSON(ctx); surge.ErrorCode(err) != surge.EUNAVAILABLE {
		t.Fatalf("a cache that never loaded, Postgres down: %v, want EUNAVAILABLE", err)
	}
}

// Concurrent requests for one unknown id share one query.
func TestHasItemConcurrentMissesShareOneQuery(t *testing.T) {
	src := newItemSource()
	src.release = make(chan struct{})
	c := newItemCache(src, testenv.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if ok, err := c.HasItem(context.Background(), 7); ok || err != nil {
				t.Errorf("HasItem = %v, %v", ok, err)
			}
		})
	}
	close(src.release)
	wg.Wait()
	if n := src.queries(7); n != 1 {
		t.Fatalf("%d queries for 50 concurrent requests of one unknown id, want 1", n)
	}
}

// A flood of distinct unknown ids asks Postgres at most 50 times a second;
// the rest are answered "unavailable", never guessed either way.
func TestHasItemBoundsQueriesOverall(t *testing.T) {
	src, clk := newItemSource(), testenv.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newItemCache(src, clk)
	asked, busy := 0, 0
	for id := range int64(200) {
		ok, err := c.HasItem(context.Background(), id+1)
		switch {
		case ok:
			t.Fatalf("unknown id %d found", id+1)
		case surge.ErrorCode(err) == surge.EUNAVAILABLE:
			busy++
		case err != nil:
			t.Fatal(err)
		default:
			asked++
		}
	}
	if asked != 50 || busy != 150 {
		t.Fatalf("%d ids asked about and %d refused as busy, want 50 and 150", asked, busy)
	}
	clk.Advance(time.Second)
	if _, err := c.HasItem(context.Background(), 1000); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

// Distinct searches the cache has not kept cost Postgres at most
// searchQueries a second overall: past that they are refused as busy
// (503), never queued.
func TestSearchFloodIsBounded(t *testing.T) {
	src := &fakeSource{items: []surge.Item{{ID: 1, Name: "Mug"}}}
	clk := testenv.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	c := catalog.New(src, nil, slog.New(slog.DiscardHandler))
	catalog.SetClock(c, clk.Now)
	busy := 0
	for i := range 300 {
		_, err := c.SearchJSON(context.Background(), surge.ItemQuery{Words: fmt.Sprint("word", i), Limit: 10})
		switch code := surge.ErrorCode(err); code {
		case "":
		case surge.EUNAVAILABLE:
			busy++
		default:
			t.Fatalf("search %d: %v", i, err)
		}
	}
	if got := src.searches(); got != catalog.SearchQueries || busy != 300-catalog.SearchQueries {
		t.Fatalf("300 distinct searches at once: %d reached the source, %d refused; want %d and %d", got, busy, catalog.SearchQueries, 300-catalog.SearchQueries)
	}
	clk.Advance(time.Second)
	if _, err := c.SearchJSON(context.Background(), surge.ItemQuery{Words: "later", Limit: 10}); err != nil {
		t.Fatalf("a search a second later: %v", err)
	}
}
