package catalog_test

// The cache on a fake Source and fake Notifications: no Postgres.

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/catalog"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// fakeSource holds items and stored polls that a test changes.
type fakeSource struct {
	mu    sync.Mutex
	items []surge.Item
	polls []surge.Poll
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

func TestCacheFollowsNotifications(t *testing.T) {
	src := &fakeSource{items: []surge.Item{{ID: 1, Name: "Mug", Quantity: 3}}}
	c := catalog.New(src, surge.DefaultPolls(), slog.New(slog.DiscardHandler))
	n := &fakeNotifications{listening: make(chan func(string, string))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, n); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	notify := <-n.listening
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
	first := items()
	if items(); testutil.ToFloat64(c.Loads) != loads+1 {
		t.Fatalf("%v loads for two reads while listening, want 1", testutil.ToFloat64(c.Loads)-loads)
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
