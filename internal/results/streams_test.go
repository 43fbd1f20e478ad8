package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// serveLive serves a hub, listening, with at most maxStreams streams (0:
// no cap) on a fresh database. ctx ends, and the streams with it, before
// the server closes.
func serveLive(t *testing.T, maxStreams int) (*postgres.DB, *results.Live, *httptest.Server, context.Context) {
	t.Helper()
	db := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	live := results.NewLive(db, log, 100*time.Millisecond)
	live.MaxSubscribers = maxStreams
	go live.Run(ctx, db)
	ts := httptest.NewServer(results.New("r1", db, redis.Shards{}, live, log).Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(cancel)
	testenv.Eventually(t, 10*time.Second, func() error {
		if !live.Listening() {
			return errors.New("the hub is not listening yet")
		}
		return nil
	})
	return db, live, ts, ctx
}

// Past max_streams, result refuses a stream with a 503 that says to come
// back later, and a stream that ends frees its place at once.
func TestStreamsCappedAtMaxStreams(t *testing.T) {
	_, live, ts, ctx := serveLive(t, 2)
	var open []context.CancelFunc
	defer func() {
		for _, c := range open {
			c()
		}
	}()
	stream := func() *http.Response {
		sctx, scancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, ts.URL+"/results/api/stream", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			scancel()
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			open = append(open, scancel)
		} else {
			defer scancel()
		}
		return resp
	}
	for i := range 2 {
		if resp := stream(); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of 2: %d", i+1, resp.StatusCode)
		}
	}
	resp := stream()
	var body httpx.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || body.Error == "" {
		t.Fatalf("a third stream: %d, Retry-After %q, %+v; want 503 with Retry-After and a message", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := live.Subscribers(); n != 2 {
		t.Fatalf("%d subscribers after a refusal, want 2", n)
	}

	open[0]()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := live.Subscribers(); n != 1 {
			return fmt.Errorf("%d subscribers after one stream closed, want 1", n)
		}
		return nil
	})
	if resp := stream(); resp.StatusCode != http.StatusOK {
		t.Fatalf("a stream after one closed: %d, want 200", resp.StatusCode)
	}
}
