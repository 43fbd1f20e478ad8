package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/catalog"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countingSource counts catalogue queries and can be switched off, as if
// Postgres were gone.
type countingSource struct {
	*postgres.DB
	queries atomic.Int64
	down    atomic.Bool
}

func (s *countingSource) Items(ctx context.Context) ([]surge.Item, error) {
	s.queries.Add(1)
	if s.down.Load() {
		return nil, errors.New("postgres is down")
	}
	return s.DB.Items(ctx)
}

func start(t *testing.T) (*catalog.Cache, *countingSource, *postgres.DB) {
	t.Helper()
	db := testenv.Postgres(t)
	src := &countingSource{DB: db}
	c := catalog.New(src, surge.DefaultPolls(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, db); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, src, db
}

func quantities(t *testing.T, c *catalog.Cache) map[string]int64 {
	t.Helper()
	b, err := c.ItemsJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	json.Unmarshal(b, &raw)
	out := map[string]int64{}
	for _, r := range raw {
		out[r["name"].(string)] = int64(r["quantity"].(float64))
	}
	return out
}

// waitFor waits until the cache shows want: a NOTIFY and one reload, which
// a loaded machine may take seconds over.
func waitFor(t *testing.T, c *catalog.Cache, name string, want int64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if q := quantities(t, c); q[name] != want {
			return fmt.Errorf("cache shows %v, want %s=%d", q, name, want)
		}
		return nil
	})
}

func TestRepeatedReadsDoNotTouchPostgres(t *testing.T) {
	c, src, db := start(t)
	price := surge.Cents(250)
	db.UpsertItem(context.Background(), surge.ItemInput{Name: "Pen", Quantity: 10, Price: &price})
	// Listening takes a connection to Postgres and a LISTEN.
	testenv.Eventually(t, 10*time.Second, func() error {
		if !c.Listening() {
			return errors.New("the cache is not listening")
		}
		return nil
	})
	waitFor(t, c, "Pen", 10) // loaded while listening: cached
	before := src.queries.Load()
	src.down.Store(true) // Postgres "gone": hits must not need it
	for range 100 {
		if q := quantities(t, c); q["Pen"] != 10 {
			t.Fatalf("cached read %v", q)
		}
	}
	if n := src.queries.Load() - before; n != 0 {
		t.Fatalf("%d queries for 100 repeated reads, want 0", n)
	}
	if got := testutil.ToFloat64(c.Loads); got != float64(before) {
		t.Fatalf("loads metric %v, want %d", got, before)
	}
}

func TestAdminWriteInvalidates(t *testing.T) {
	c, _, db := start(t)
	price := surge.Cents(100)
	db.UpsertItem(context.Background(), surge.ItemInput{Name: "Cup", Quantity: 1, Price: &price})
	waitFor(t, c, "Cup", 1)
	db.UpsertItem(context.Background(), surge.ItemInput{Name: "cup", Quantity: 4})
	waitFor(t, c, "Cup", 5)
}

func TestOrderInvalidates(t *testing.T) {
	c, _, db := start(t)
	price := surge.Cents(100)
	item, _, _ := db.UpsertItem(context.Background(), surge.ItemInput{Name: "Bag", Quantity: 3, Price: &price})
	waitFor(t, c, "Bag", 3)
	if _, err := db.ApplyOrders(context.Background(), []surge.Order{{ID: "o1", Lines: []surge.OrderLine{{Item: item.ID, Quantity: 2}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "Bag", 1)
}

// Without a listening connection nothing may be trusted: every read loads.
func TestNotListeningMeansNoCaching(t *testing.T) {
	db := testenv.Postgres(t)
	src := &countingSource{DB: db}
	c := catalog.New(src, nil, slog.New(slog.DiscardHandler)) // Run never called
	for range 3 {
		if _, err := c.ItemsJSON(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.queries.Load(); n != 3 {
		t.Fatalf("%d queries, want 3", n)
	}
}

// pollSource answers Polls when released, as a Postgres that is slow to
// answer at start-up would.
type pollSource struct {
	polls   []surge.Poll
	err     error
	release chan struct{}
}

func (s *pollSource) Items(context.Context) ([]surge.Item, error) { return nil, nil }

func (s *pollSource) ItemExists(context.Context, int64) (bool, error) { return false, nil }

func (s *pollSource) SearchItems(context.Context, surge.ItemQuery) ([]surge.Item, error) {
	return nil, nil
}

func (s *pollSource) Polls(ctx context.Context) ([]surge.Poll, error) {
	<-s.release
	return s.polls, s.err
}

// A new cache is not Ready until its first load of the stored polls is over,
// and WaitReady and a lookup of a poll it does not know yet wait until then. A failed load still ends the wait,
// with the configured polls only.
func TestReadyAfterFirstPollLoad(t *testing.T) {
	stored := surge.Poll{ID: "tea", Title: "Tea?", Options: []string{"yes", "no"}}
	tests := []struct {
		name      string
		polls     []surge.Poll
		err       error
		wantStore bool
	}{
		{"postgres answers", []surge.Poll{stored}, nil, true},
		{"postgres down", nil, errors.New("connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &pollSource{polls: tt.polls, err: tt.err, release: make(chan struct{})}
			c := catalog.New(src, surge.DefaultPolls(), slog.New(slog.DiscardHandler))
			if c.Ready() {
				t.Fatal("Ready before any load")
			}
			short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if c.WaitReady(short) {
				t.Fatal("WaitReady returned true before any load")
			}
			waited, polled := make(chan bool), make(chan bool)
			go func() { waited <- c.WaitReady(context.Background()) }()
			// A lookup of a poll not known yet waits for the load too.
			go func() { _, ok := c.Poll(context.Background(), "tea"); polled <- ok }()
			loaded := make(chan struct{})
			go func() { c.LoadPolls(context.Background()); close(loaded) }()
			// What is tested is that nothing happens: the 20 ms give a
			// wrong WaitReady the time to return early (kept on purpose).
			select {
			case <-waited:
				t.Fatal("WaitReady returned while the load was still running")
			case <-time.After(20 * time.Millisecond):
			}
			close(src.release)
			<-loaded
			if !<-waited || !c.Ready() {
				t.Fatal("not Ready after the first load")
			}
			if ok := <-polled; ok != tt.wantStore {
				t.Errorf("a lookup made during the load found the stored poll = %v, want %v", ok, tt.wantStore)
			}
			if _, ok := c.Poll(context.Background(), "tea"); ok != tt.wantStore {
				t.Errorf("stored poll known = %v, want %v", ok, tt.wantStore)
			}
			if _, ok := c.Poll(context.Background(), surge.DefaultPollID); !ok {
				t.Error("the configured poll is unknown")
			}
		})
	}
}
