package catalog_test

// The cache on a fake Source and fake Notifications: no Postgres.

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/catalog"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// fakeSource holds items and stored polls that a test changes.
type fakeSource struct {
	mu       sync.Mutex
	items    []surge.Item
	polls    []surge.Poll
	searched []surge.ItemQuery // every search asked, in order
}

func (s *fakeSource) Items(ctx context.Context) ([]surge.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]surge.Item(nil), s.items...), nil
}

func (s *fakeSource) ItemExists(ctx context.Context, id int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items {
		if it.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// SearchItems matches the topic and, as a stand-in for full-text search,
// a substring of the name.
func (s *fakeSource) SearchItems(ctx context.Context, q surge.ItemQuery) ([]surge.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searched = append(s.searched, q)
	var out []surge.Item
	for _, it := range s.items {
		if (q.Topic == "" || it.Topic == q.Topic) && strings.Contains(strings.ToLower(it.Name), q.Words) {
			out = append(out, it)
		}
	}
	return out, nil
}

func (s *fakeSource) searches() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.searched) }

func (s *fakeSource) Polls(ctx context.Context) ([]surge.Poll, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]surge.Poll(nil), s.polls...), nil
}

// fakeNotifications hands its callbacks to the test, which then plays
// Postgres: listening or not, and each NOTIFY.
type fakeNotifications struct {
	listening chan func(channel, payload string) // onNotify, once onState(true) was called
	state     func(bool)
}

func (n *fakeNotifications) Listen(ctx context.Context, _ *slog.Logger, _ []string, onNotify func(string, string), onState func(bool)) {
	n.state = onState
	onState(true)
	n.listening <- onNotify
	<-ctx.Done()
}

// runOnFakeNotifications runs c until the test ends and returns the fake
// and its onNotify, once the cache listens.
func runOnFakeNotifications(t *testing.T, c *catalog.Cache) (*fakeNotifications, func(channel, payload string)) {
	n := &fakeNotifications{listening: make(chan func(string, string))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, n); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, <-n.listening
}

func TestCacheFollowsNotifications(t *testing.T) {
	src := &fakeSource{items: []surge.Item{{ID: 1, Name: "Mug", Quantity: 3}}}
	c := catalog.New(src, surge.DefaultPolls(), slog.New(slog.DiscardHandler))
	n, notify := runOnFakeNotifications(t, c)
	if !c.Ready() || !c.Listening() {
		t.Fatalf("ready %v, listening %v after the first load", c.Ready(), c.Listening())
	}

	loads := testutil.ToFloat64(c.Loads)
	items := func() string {
		t.Helper()
		b, err := c.ItemsJSON(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The catalogue was loaded when listening began: reads cost nothing.
	first := items()
	if items(); testutil.ToFloat64(c.Loads) != loads {
		t.Fatalf("%v loads for two reads while listening, want 0", testutil.ToFloat64(c.Loads)-loads)
	}
	// A change without its NOTIFY is not seen; with it, at once.
	src.mu.Lock()
	src.items[0].Quantity = 5
	src.mu.Unlock()
	if got := items(); got != first {
		t.Fatalf("the cache changed without a NOTIFY: %s", got)
	}
	notify(postgres.CatalogChannel, "")
	if got := items(); got == first {
		t.Fatalf("the cache kept %s after a NOTIFY", got)
	}
	// A poll stored later is known once its NOTIFY arrives.
	src.mu.Lock()
	src.polls = []surge.Poll{{ID: "tea", Title: "Tea?", Options: []string{"yes", "no"}}}
	src.mu.Unlock()
	if _, ok := c.Poll(context.Background(), "tea"); ok {
		t.Fatal("a poll known before its NOTIFY")
	}
	notify(postgres.PollsChannel, "")
	if _, ok := c.Poll(context.Background(), "tea"); !ok {
		t.Fatal("a new poll unknown after its NOTIFY")
	}
	// Not listening: every read goes to the source.
	n.state(false)
	loads = testutil.ToFloat64(c.Loads)
	items()
	items()
	if got := testutil.ToFloat64(c.Loads) - loads; got != 2 {
		t.Fatalf("%v loads for two reads while not listening, want 2", got)
	}
}

// A search is answered from the cache until the catalogue changes; a
// retired item (gone from the source's catalogue) is unknown after the
// NOTIFY, by id and to HasItem.
func TestSearchAndLookupFollowNotifications(t *testing.T) {
	src := &fakeSource{items: []surge.Item{
		{ID: 1, Name: "Red shoe", Topic: "shoes", Quantity: 3},
		{ID: 2, Name: "Blue shoe", Topic: "shoes", Quantity: 3},
		{ID: 3, Name: "Red mug", Topic: "mugs", Quantity: 3},
	}}
	c := catalog.New(src, nil, slog.New(slog.DiscardHandler))
	_, notify := runOnFakeNotifications(t, c)

	search := func(q surge.ItemQuery) string {
		t.Helper()
		b, err := c.SearchJSON(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var items []surge.Item
		json.Unmarshal(b, &items)
		var names []string
		for _, it := range items {
			names = append(names, it.Name)
		}
		return strings.Join(names, ",")
	}
	red := surge.ItemQuery{Words: "red", Limit: 10}
	if got := search(red); got != "Red shoe,Red mug" {
		t.Fatalf("search red: %q", got)
	}
	if got := search(surge.ItemQuery{Topic: "shoes", Words: "red", Limit: 10}); got != "Red shoe" {
		t.Fatalf("search red shoes: %q", got)
	}
	before := src.searches()
	search(red)
	if src.searches() != before {
		t.Fatal("a repeated search went to the source while nothing changed")
	}
	if it, ok, err := c.Item(context.Background(), 3); err != nil || !ok || it.Name != "Red mug" {
		t.Fatalf("Item(3) = %+v, %v, %v", it, ok, err)
	}
	// Item 3 is retired: the source's catalogue no longer has it.
	src.mu.Lock()
	src.items = src.items[:2]
	src.mu.Unlock()
	notify(postgres.CatalogChannel, postgres.RetiredPrefix+"3")
	// Known to be off sale at once, before any reload of the catalogue.
	if ok, err := c.HasItem(context.Background(), 3); err != nil || ok {
		t.Fatalf("HasItem(3) after its retirement: %v, %v", ok, err)
	}
	if got := search(red); got != "Red shoe" {
		t.Fatalf("search red after the retirement: %q", got)
	}
	if _, ok, err := c.Item(context.Background(), 3); err != nil || ok {
		t.Fatalf("Item(3) after its retirement: found %v, %v", ok, err)
	}
}
