package results_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// 1,000 clients follow the live stream while votes are committed in 20
// batches. Every client receives the final counts, and Postgres is read once
// per change (coalesced), not once per client.
func TestLiveResultsFanOutWithoutMeltingPostgres(t *testing.T) {
	db := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db.EnsurePolls(ctx, surge.DefaultPolls())
	log := slog.New(slog.DiscardHandler)
	live := results.NewLive(db, log, 100*time.Millisecond)
	go live.Run(ctx, db)
	for !live.Listening() {
		time.Sleep(10 * time.Millisecond)
	}
	ts := httptest.NewServer(results.New("r1", db, redis.Shards{}, live, log).Handler())
	defer ts.Close()
	defer cancel() // streams end before the server closes

	const clients, batches, perBatch = 1000, 20, 50
	const final = batches * perBatch
	transport := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
	var got sync.WaitGroup
	var mu sync.Mutex
	lastSeen := make([]int64, clients)
	for i := range clients {
		got.Add(1)
		go func() {
			done := false
			defer func() {
				if !done {
					got.Done()
				}
			}()
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/results/api/stream", nil)
			resp, err := transport.RoundTrip(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var snap results.Snapshot
				if json.Unmarshal([]byte(line), &snap) != nil || snap.Poll != surge.DefaultPollID {
					continue
				}
				mu.Lock()
				lastSeen[i] = snap.Total
				mu.Unlock()
				if snap.Total == final && !done {
					done = true
					got.Done()
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for live.Subscribers() < clients {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d clients connected", live.Subscribers(), clients)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readsBefore := testutil.ToFloat64(live.Reads)

	for b := range batches {
		votes := make([]surge.Vote, perBatch)
		for i := range votes {
			votes[i] = surge.Vote{ID: fmt.Sprintf("e%d-%d", b, i), Poll: surge.DefaultPollID,
				Choice: []string{"cats", "dogs"}[i%2], Voter: fmt.Sprintf("v%d-%d", b, i), Version: 1}
		}
		if _, err := db.ApplyVotes(ctx, votes); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}

	finished := make(chan struct{})
	go func() { got.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		mu.Lock()
		behind := 0
		for _, n := range lastSeen {
			if n != final {
				behind++
			}
		}
		mu.Unlock()
		t.Fatalf("%d of %d clients never saw the final total %d", behind, clients, final)
	}
	reads := testutil.ToFloat64(live.Reads) - readsBefore
	t.Logf("%d clients got the final counts; %v Postgres reads for %d commits", clients, reads, batches)
	if reads > batches+2 {
		t.Fatalf("%v reads for %d commits: reads must follow changes, not clients", reads, batches)
	}
	if reads < 1 {
		t.Fatal("no reads: the counts cannot have been fresh")
	}

	// The JSON snapshot is served from the same cache: no read.
	before := testutil.ToFloat64(live.Reads)
	for range 50 {
		resp, err := http.Get(ts.URL + "/results/api/polls/cats-vs-dogs")
		if err != nil {
			t.Fatal(err)
		}
		var res surge.Results
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if res.Total != final {
			t.Fatalf("snapshot total %d, want %d", res.Total, final)
		}
	}
	if extra := testutil.ToFloat64(live.Reads) - before; extra != 0 {
		t.Fatalf("%v reads for 50 snapshot requests, want 0", extra)
	}
}
