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
