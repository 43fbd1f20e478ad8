package drain

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
)

// Two shards of one worker hold copies of vote v1. Shard A is applying it
// when shard B reads its copy: B applies its other entries at once, and
// its copy of v1 waits, unacknowledged, for A's commit. If A commits, B
// acknowledges the copy without applying it; if A fails, B applies it.
func TestACopyWaitsForTheOtherShardsCommit(t *testing.T) {
	for _, commits := range []bool{true, false} {
		name := map[bool]string{true: "other shard commits", false: "other shard fails"}[commits]
		t.Run(name, func(t *testing.T) {
			applied := NewApplied(16)
			inFlight, release := make(chan struct{}), make(chan struct{})
			a := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
				if n == 0 {
					close(inFlight)
					<-release
				}
				if !commits {
					return nil, errors.New("constraint violated") // for good: A dead-letters
				}
				return nil, nil
			})
			a.opt.Shard, a.opt.Applied = "1", applied
			a.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}}
			b := newHarness(nil)
			b.opt.Shard, b.opt.Applied = "2", applied
			// Its copy of v1 has another stream id there; then an idle read.
			copyOfV1 := voteMsg(t, 1, 1)
			copyOfV1.ID = "7-0"
			b.q.news = [][]redis.Message{{copyOfV1, voteMsg(t, 3, 1)}, {}}

			a.start(t)
			<-inFlight
			b.start(t)
			b.waitUntil(t, "v3 applied on B", func() bool { return b.store.callCount() == 1 })
			if slices.Contains(b.q.ackedIDs(), "7-0") {
				t.Fatal("B acknowledged its copy of v1 before A's commit landed")
			}
			close(release)
			b.waitUntil(t, "B's copy acknowledged", func() bool { return slices.Contains(b.q.ackedIDs(), "7-0") })
			var bApplied []string
			for _, call := range b.store.allCalls() {
				bApplied = append(bApplied, call...)
			}
			skipped := testutil.ToFloat64(b.opt.Metrics.CopiesSkipped.WithLabelValues("2"))
			if commits && (slices.Contains(bApplied, "v1") || skipped != 1) {
				t.Fatalf("A committed v1, yet B applied %v and skipped %v", bApplied, skipped)
			}
			if !commits && (!slices.Contains(bApplied, "v1") || skipped != 0) {
				t.Fatalf("A failed to commit v1, yet B applied only %v (skipped %v)", bApplied, skipped)
			}
			b.checkNoViolations(t)
		})
	}
}
