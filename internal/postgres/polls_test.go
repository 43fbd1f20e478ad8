package postgres_test

import (
	"context"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestEnsurePollsAndResults(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	polls := []surge.Poll{{ID: "cats-vs-dogs", Title: "Cats or dogs?", Options: []string{"cats", "dogs"}}}
	for range 2 { // idempotent
		if err := db.EnsurePolls(ctx, polls); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Polls(ctx)
	if err != nil || len(got) != 1 || got[0].Options[0] != "cats" || got[0].Options[1] != "dogs" {
		t.Fatalf("Polls = %+v, %v", got, err)
	}
	res, err := db.Results(ctx, "cats-vs-dogs")
	if err != nil || res.Total != 0 || len(res.Counts) != 2 {
		t.Fatalf("Results = %+v, %v", res, err)
	}
	if _, err := db.Results(ctx, "nope"); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("unknown poll: err = %v", err)
	}
}

// A poll created after the store has cached the options must be usable at
// once: its votes are applied, not refused.
func TestVotesForANewPollAreAppliedAtOnce(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	db.EnsurePolls(ctx, surge.DefaultPolls())
	if _, err := db.ApplyVotes(ctx, []surge.Vote{{ID: "1", Poll: "cats-vs-dogs", Choice: "cats", Voter: "a", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	rejected, err := db.ApplyVotes(ctx, []surge.Vote{{ID: "2", Poll: "tea", Choice: "yes", Voter: "a", Version: 1}})
	if err != nil || len(rejected) != 1 {
		t.Fatalf("vote for a missing poll: rejected %v, %v", rejected, err)
	}
	if err := db.CreatePoll(ctx, surge.Poll{ID: "tea", Title: "Tea?", Options: []string{"yes", "no"}}); err != nil {
		t.Fatal(err)
	}
	rejected, err = db.ApplyVotes(ctx, []surge.Vote{{ID: "3", Poll: "tea", Choice: "yes", Voter: "a", Version: 2}})
	if err != nil || len(rejected) != 0 {
		t.Fatalf("vote for the new poll: rejected %v, %v", rejected, err)
	}
}
