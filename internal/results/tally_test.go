package results_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// backlogQueues is a shard whose backlog the test sets.
type backlogQueues struct{ pending atomic.Int64 }

func (q *backlogQueues) Pending(ctx context.Context, id string) (bool, error) { return false, nil }
func (q *backlogQueues) Backlog(ctx context.Context) ([]redis.ShardBacklog, error) {
	return []redis.ShardBacklog{{Shard: 1, Backlog: redis.Backlog{Pending: q.pending.Load()}}}, nil
}

// An export is final only once the poll is closed and every shard is
// drained; before, it says so. Bad formats and unknown polls are refused.
func TestExportIsFinalOnceClosedAndDrained(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	closed := time.Now().Add(-time.Hour)
	polls := []surge.Poll{
		{ID: "final", Title: "Final?", Options: []string{"yes", "no"}, ClosesAt: &closed},
		{ID: "running", Title: "Running?", Options: []string{"yes", "no"}},
	}
	if err := db.EnsurePolls(ctx, polls); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyVotes(ctx, []surge.Vote{
		{ID: "1", Poll: "final", Choice: "yes", Voter: "a", Version: 1, At: closed.Add(-time.Minute)},
		{ID: "2", Poll: "final", Choice: "no", Voter: "b", Version: 1, At: closed.Add(-time.Second)},
		{ID: "3", Poll: "final", Choice: "no", Voter: "c", Version: 1, At: closed.Add(time.Second)}, // after the close
	}); err != nil {
		t.Fatal(err)
	}
	q := &backlogQueues{}
	q.pending.Store(3)
	log := slog.New(slog.DiscardHandler)
	ts := httptest.NewServer(results.New("result-1", db, q, results.NewLive(db, log, time.Millisecond), log).Handler())
	defer ts.Close()

	tally := func(poll string) results.Tally {
		status, body := get(t, ts.URL+"/results/api/polls/"+poll+"/export")
		var tl results.Tally
		if err := json.Unmarshal([]byte(body), &tl); status != 200 || err != nil {
			t.Fatalf("export %s: %d %s (%v)", poll, status, body, err)
		}
		return tl
	}
	if tl := tally("final"); tl.State != "closed" || tl.Final || tl.Counts["yes"] != 1 || tl.Counts["no"] != 1 || tl.Total != 2 {
		t.Fatalf("closed, 3 entries pending: %+v, want closed, not final, yes 1 no 1", tl)
	}
	q.pending.Store(0)
	if tl := tally("final"); !tl.Final || tl.ClosesAt == nil || !tl.ClosesAt.Equal(closed.Truncate(time.Microsecond)) {
		t.Fatalf("closed and drained: %+v, want final, closing at %v", tl, closed)
	}
	if tl := tally("running"); tl.State != "open" || tl.Final {
		t.Fatalf("an open poll: %+v, want open, not final", tl)
	}
	status, csv := get(t, ts.URL+"/results/api/polls/final/export?format=csv")
	if want := "poll,option,votes,state,final\nfinal,yes,1,closed,true\nfinal,no,1,closed,true\n"; status != 200 || csv != want {
		t.Fatalf("CSV: %d\n%s\nwant\n%s", status, csv, want)
	}
	for path, want := range map[string]int{
		"/results/api/polls/final/export?format=xml": 400,
		"/results/api/polls/nope/export":             404,
	} {
		if status, body := get(t, ts.URL+path); status != want || !strings.Contains(body, `"error"`) {
			t.Fatalf("%s: %d %s, want %d with a JSON error", path, status, body, want)
		}
	}
}
