package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

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

// Each batch that changes a poll's counts moves its commit sequence up by one
// and its updated_at to the commit; a batch that changes nothing (a
// redelivery, a vote that loses) moves neither. Results and Watermarks agree.
func TestCommitSequence(t *testing.T) {
	db, ctx := newDB(t)
	steps := []struct {
		name    string
		batch   []surge.Vote
		changed []string // polls whose counts change
	}{
		{"new voters", []surge.Vote{v("alice", "cats", 1, "e1"), v("bob", "dogs", 1, "e2")}, []string{catsPoll}},
		{"redelivered", []surge.Vote{v("alice", "cats", 1, "e1"), v("bob", "dogs", 1, "e2")}, nil},
		{"a voter changes choice", []surge.Vote{v("alice", "dogs", 2, "e3")}, []string{catsPoll}},
		{"an older vote loses", []surge.Vote{v("alice", "cats", 1, "e0")}, nil},
		{"same choice again", []surge.Vote{v("bob", "dogs", 2, "e4")}, nil},
		{"another poll", []surge.Vote{pv("best-editor", "alice", "vim", 1, "e5")}, []string{"best-editor"}},
		{"both polls", []surge.Vote{v("carol", "cats", 1, "e6"), pv("best-editor", "bob", "nano", 1, "e7")}, []string{catsPoll, "best-editor"}},
	}
	results := func() map[string]surge.Results {
		out := map[string]surge.Results{}
		for _, p := range testPolls {
			res, err := db.Results(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			out[p.ID] = res
		}
		return out
	}
	prev := results()
	for _, p := range testPolls {
		if prev[p.ID].Seq != 0 || prev[p.ID].UpdatedAt.IsZero() {
			t.Fatalf("%s before any vote: seq %d, updated_at %v; want 0 and the poll's creation", p.ID, prev[p.ID].Seq, prev[p.ID].UpdatedAt)
		}
	}
	for _, st := range steps {
		before := time.Now().Truncate(time.Microsecond)
		apply(t, ctx, db, st.batch)
		after := time.Now()
		got := results()
		marks, err := db.Watermarks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range testPolls {
			g, was := got[p.ID], prev[p.ID]
			if marks[p.ID] != g.Seq {
				t.Errorf("%s: %s: Watermarks %d, Results seq %d", st.name, p.ID, marks[p.ID], g.Seq)
			}
			switch slices.Contains(st.changed, p.ID) {
			case true:
				if g.Seq != was.Seq+1 || g.UpdatedAt.Before(before) || g.UpdatedAt.After(after) {
					t.Errorf("%s: %s: seq %d at %v; want %d, committed between %v and %v", st.name, p.ID, g.Seq, g.UpdatedAt, was.Seq+1, before, after)
				}
			case false:
				if g.Seq != was.Seq || !g.UpdatedAt.Equal(was.UpdatedAt) {
					t.Errorf("%s: %s: seq %d at %v; want it unchanged at %d, %v", st.name, p.ID, g.Seq, g.UpdatedAt, was.Seq, was.UpdatedAt)
				}
			}
		}
		prev = got
	}
}
