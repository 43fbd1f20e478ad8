package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// With three shards and two copies, a shard whose Redis dies costs no
// vote: its frontend writes its copies to the two other shards, so every
// frontend keeps answering 202 (only votes in flight on the dead Redis may
// fail, at most one per client) and stays in HAProxy's rotation. When the
// Redis comes back on the same AOF, it takes copies again, and once
// drained every acknowledged vote is counted, once.
func TestAShardsRedisLossCostsNoVote(t *testing.T) {
	c := up(t, 3, 1)
	const conns, answers = 8, 2000
	ctx := context.Background()
	client := &http.Client{Timeout: testenv.RequestBound, Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	var (
		killed    atomic.Bool
		mu        sync.Mutex
		statuses  = map[int]int{}
		byNode    = map[string]int{}
		ackedDown int // 202s from web-1 to votes sent after its Redis died
	)
	load := testenv.StartLoad(conns, func() {
		after := killed.Load()
		node, status := vote(t, client, c.URL, "cats")
		mu.Lock()
		defer mu.Unlock()
		statuses[status]++
		if status == http.StatusAccepted {
			byNode[node]++
			if after && node == "web-1" {
				ackedDown++
			}
		}
	})
	defer load.Stop()
	served := func(node string, n int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if byNode[node] < n {
				return fmt.Errorf("%s took %d votes, want %d (statuses %v)", node, byNode[node], n, statuses)
			}
			return nil
		}
	}
	for _, node := range []string{"web-1", "web-2", "web-3"} {
		testenv.Eventually(t, testenv.AnswersBound(3*20), served(node, 20))
	}

	c.Redis[0].Kill()
	killed.Store(true)
	load.WaitAnswers(t, answers)
	mu.Lock()
	got, acked := maps.Clone(statuses), ackedDown
	mu.Unlock()
	if acked == 0 {
		t.Errorf("web-1 acknowledged no vote after its Redis died: its copies should go to shards 2 and 3")
	}
	if got[http.StatusServiceUnavailable] > conns || len(got) > 2 {
		t.Errorf("statuses %v with shard 1's Redis down, %d clients: want at most %d 503 (those in flight on it), the rest 202",
			got, conns, conns)
	}
	if state, err := c.ProxyState(ctx, c.Web[0]); err != nil || strings.HasPrefix(state, "DOWN") {
		t.Errorf("web-1 is %q in HAProxy (%v), want it in rotation", state, err)
	}

	rctx, cancel := context.WithTimeout(ctx, testenv.RedisStart)
	defer cancel()
	if err := c.RestartRedis(rctx, 0); err != nil {
		t.Fatal(err)
	}
	load.Stop()
	mu.Lock()
	total := map[int]int{}
	maps.Copy(total, statuses)
	mu.Unlock()
	t.Logf("statuses %v while shard 1's Redis was down, %d clients; %v in all", got, conns, total)
	// Every vote is a new voter's cats: the count is every 202, and
	// perhaps some of the unknown outcomes (a 503 may have left a copy).
	waitDrained(t, c)
	unknown := 0
	for status, n := range total {
		if status != http.StatusAccepted {
			unknown += n
		}
	}
	testenv.Eventually(t, resultsLag, func() error {
		resp, err := http.Get(c.URL + "/results/api/polls/cats-vs-dogs")
		if err != nil {
			return err
		}
		var res surge.Results
		decodeJSON(resp, &res)
		if acked := int64(total[http.StatusAccepted]); res.Counts["cats"] < acked || res.Counts["cats"] > acked+int64(unknown) {
			return fmt.Errorf("cats %d, want from %d (the 202s) to %d (and the unknown outcomes)", res.Counts["cats"], acked, acked+int64(unknown))
		}
		return nil
	})
}
