package results_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// 1,000 clients follow the live stream while votes are committed in 20
// batches. Every client receives the final counts, and Postgres is read once
// per change (coalesced), not once per client.
func TestLiveResultsFanOutWithoutMeltingPostgres(t *testing.T) {
	db, live, ts, ctx := serveLive(t, 0)

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
	// 1,000 connections and requests on a loaded 2-core machine.
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := live.Subscribers(); n < clients {
			return fmt.Errorf("only %d of %d clients connected", n, clients)
		}
		return nil
	})
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
		// Commits spread over several push intervals, as a burst's are:
		// the pacing is part of the workload, not a wait (kept).
		time.Sleep(30 * time.Millisecond)
	}

	finished := make(chan struct{})
	go func() { got.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second): // 1,000 streams served on a loaded 2-core machine
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
