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

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// A web instance whose Redis dies leaves HAProxy's rotation at its first
// 503: of clients voting in a closed loop, only those whose vote was in
// flight on it get a 503, so at most one per client, and it never answers
// 202 meanwhile. When its Redis comes back on the same AOF, HAProxy sends it
// votes again.
func TestHAProxyRoutesAroundAShardWhoseRedisIsDown(t *testing.T) {
	c := up(t, 2, 1)
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
	for _, node := range []string{"web-1", "web-2"} {
		testenv.Eventually(t, testenv.AnswersBound(2*20), served(node, 20))
	}

	c.Redis[0].Kill()
	killed.Store(true)
	load.WaitAnswers(t, answers)
	mu.Lock()
	got, acked := maps.Clone(statuses), ackedDown
	mu.Unlock()
	if acked > 0 {
		t.Errorf("web-1 acknowledged %d votes with its Redis down", acked)
	}
	if got[http.StatusServiceUnavailable] > conns || len(got) > 2 {
		t.Errorf("statuses %v with shard 1's Redis down, %d clients: want at most %d 503 (those in flight on web-1), the rest 202",
			got, conns, conns)
	}
	if state, err := c.ProxyState(ctx, c.Web[0]); err != nil || !strings.HasPrefix(state, "DOWN") {
		t.Errorf("web-1 is %q in HAProxy (%v), want DOWN", state, err)
	}

	// Bring the shard back on the same port and AOF: web-1's health check
	// passes again, and within HAProxy's rise time it takes votes.
	rctx, cancel := context.WithTimeout(ctx, testenv.RedisStart)
	defer cancel()
	if err := c.RestartRedis(rctx, 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	back := byNode["web-1"] + 1
	mu.Unlock()
	testenv.Eventually(t, launcher.RiseTime+testenv.AnswersBound(2*conns), served("web-1", back))
	t.Logf("statuses %v while shard 1's Redis was down, %d clients", got, conns)
}
