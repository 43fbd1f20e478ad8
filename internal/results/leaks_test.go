package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// countingStore counts every query the result service sends to Postgres.
type countingStore struct {
	*postgres.DB
	queries atomic.Int64
}

func (s *countingStore) Polls(ctx context.Context) ([]surge.Poll, error) {
	s.queries.Add(1)
	return s.DB.Polls(ctx)
}

func (s *countingStore) Results(ctx context.Context, poll string) (surge.Results, error) {
	s.queries.Add(1)
	return s.DB.Results(ctx, poll)
}

// A flood of made-up poll ids costs Postgres nothing while the service hears
// of new polls; a poll created afterwards is served as soon as its NOTIFY
// arrives.
func TestUnknownPollsCostNoQueries(t *testing.T) {
	db := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	store := &countingStore{DB: db}
	log := slog.New(slog.DiscardHandler)
	live := results.NewLive(store, log, 10*time.Millisecond)
	go live.Run(ctx, db)
	testenv.Eventually(t, 10*time.Second, func() error {
		if !live.Listening() {
			return errors.New("not listening")
		}
		return nil
	})
	ts := httptest.NewServer(results.New("r1", store, redis.Shards{}, live, log).Handler())
	defer ts.Close()
	defer cancel()

	if status, body := get(t, ts.URL+"/results/api/polls/cats-vs-dogs"); status != http.StatusOK {
		t.Fatalf("a known poll: %d %s", status, body)
	}
	before := store.queries.Load()
	const flood = 1000
	for i := range flood {
		if status, _ := get(t, fmt.Sprintf("%s/results/api/polls/made-up-%d", ts.URL, i)); status != http.StatusNotFound {
			t.Fatalf("made-up poll %d: %d, want 404", i, status)
		}
	}
	if n := store.queries.Load() - before; n > 0 {
		t.Fatalf("%d made-up poll ids cost %d Postgres queries, want 0", flood, n)
	}

	// The id was looked up (404) just before it is created.
	if status, _ := get(t, ts.URL+"/results/api/polls/tea"); status != http.StatusNotFound {
		t.Fatalf("tea before it exists: %d", status)
	}
	if err := db.CreatePoll(ctx, surge.Poll{ID: "tea", Title: "Tea?", Options: []string{"yes", "no"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if status, body := get(t, ts.URL+"/results/api/polls/tea"); status != http.StatusOK {
			return fmt.Errorf("new poll: %d %s", status, body)
		}
		return nil
	})
}

// The backlog names shards by number, never by their Redis address.
func TestBacklogNamesShardsByNumber(t *testing.T) {
	db := testenv.Postgres(t)
	r1, r2 := testenv.Redis(t), testenv.Redis(t)
	shards := redis.Shards{Clients: []*goredis.Client{testenv.RedisClient(t, r1), testenv.RedisClient(t, r2)},
		Stream: redis.DefaultStream, Group: "workers"}
	log := slog.New(slog.DiscardHandler)
	ts := httptest.NewServer(results.New("r1", db, shards, results.NewLive(db, log, time.Millisecond), log).Handler())
	defer ts.Close()
	status, body := get(t, ts.URL+"/results/api/backlog")
	if status != http.StatusOK {
		t.Fatalf("backlog: %d %s", status, body)
	}
	for _, addr := range []string{r1.Addr, r2.Addr, "127.0.0.1"} {
		if strings.Contains(body, addr) {
			t.Fatalf("backlog publishes an internal address %s: %s", addr, body)
		}
	}
	var b struct {
		Drained bool
		Shards  []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	if !b.Drained || len(b.Shards) != 2 || b.Shards[0]["shard"] != 1.0 || b.Shards[1]["shard"] != 2.0 {
		t.Fatalf("backlog %s, want drained shards 1 and 2", body)
	}
}

// /healthz says which dependency is down, not the driver's message (which
// names hosts, ports and users).
func TestHealthNamesPostgresWithoutDetail(t *testing.T) {
	db, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://surge@127.0.0.1:1/surge?sslmode=disable&connect_timeout=1"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	ts := httptest.NewServer(results.New("r", db, redis.Shards{}, results.NewLive(db, log, time.Millisecond), log).Handler())
	defer ts.Close()
	status, body := get(t, ts.URL+"/healthz")
	var h map[string]string
	json.Unmarshal([]byte(body), &h)
	if status != http.StatusServiceUnavailable || h["status"] != "unavailable" || h["failing"] != "postgres" {
		t.Fatalf("healthz %d %s, want 503 failing postgres", status, body)
	}
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "surge@") || strings.Contains(body, "dial") {
		t.Fatalf("healthz leaks the error: %s", body)
	}
}
