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

// The capture time decides: a vote cast before the close counts however late
// it is drained; one cast after it, or before the poll opens, never counts.
// Closing early moves the close to the time of closing, never later.
func TestPollWindowDecidesByCaptureTime(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	opens := time.Date(2027, 2, 7, 22, 0, 0, 0, time.UTC)
	closes := opens.Add(2 * time.Hour)
	poll := surge.Poll{ID: "final", Title: "Final?", Options: []string{"yes", "no"}, OpensAt: &opens, ClosesAt: &closes}
	if err := db.CreatePoll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	stored, err := db.Polls(ctx)
	if err != nil || len(stored) != 1 || !stored[0].OpensAt.Equal(opens) || !stored[0].ClosesAt.Equal(closes) {
		t.Fatalf("Polls = %+v, %v; want the window %v..%v", stored, err, opens, closes)
	}
	cast := func(id string, at time.Time) surge.Vote {
		return surge.Vote{ID: id, Poll: "final", Choice: "yes", Voter: "voter-" + id, Version: 1, At: at}
	}
	last := closes.Add(-time.Millisecond)
	batch := []surge.Vote{
		cast("early", opens.Add(-time.Second)), // before it opened
		cast("first", opens),                   // the first moment
		cast("last", last),                     // the last moment, drained after the close (now)
		cast("late", closes),                   // at the close: too late
		cast("later", closes.Add(time.Minute)), // a frontend with a stale cache took it
	}
	rejected, err := db.ApplyVotes(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(rejected), []string{"early", "late", "later"}; !slices.Equal(got, want) {
		t.Fatalf("rejected %v, want %v", got, want)
	}
	if res, err := db.Results(ctx, "final"); err != nil || res.Counts["yes"] != 2 || res.Total != 2 {
		t.Fatalf("results %+v, %v; want 2 yes (first and last)", res, err)
	}

	// Closing early: at a time before the set close, votes cast after it stop counting.
	early := opens.Add(time.Hour)
	p, err := db.ClosePoll(ctx, "final", early)
	if err != nil || !p.ClosesAt.Equal(early) || p.State(early) != surge.PollClosed {
		t.Fatalf("ClosePoll = %+v, %v; want closed at %v", p, err, early)
	}
	// Closing again later keeps the earlier close.
	if p, err := db.ClosePoll(ctx, "final", closes.Add(time.Hour)); err != nil || !p.ClosesAt.Equal(early) {
		t.Fatalf("second ClosePoll = %+v, %v; want the close kept at %v", p, err, early)
	}
	rejected, err = db.ApplyVotes(ctx, []surge.Vote{cast("before-early", early.Add(-time.Second)), cast("after-early", early.Add(time.Second))})
	if got := ids(rejected); err != nil || !slices.Equal(got, []string{"after-early"}) {
		t.Fatalf("after closing early: rejected %v, %v; want [after-early]", got, err)
	}
	if _, err := db.ClosePoll(ctx, "nope", early); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("closing an unknown poll: %v, want not found", err)
	}

	// A scheduled poll closed before it opens: it never opens.
	if err := db.CreatePoll(ctx, surge.Poll{ID: "cancelled", Title: "?", Options: []string{"a", "b"}, OpensAt: &closes}); err != nil {
		t.Fatal(err)
	}
	if p, err := db.ClosePoll(ctx, "cancelled", early); err != nil || p.State(closes.Add(time.Hour)) != surge.PollClosed {
		t.Fatalf("closing a scheduled poll: %+v, %v; want closed for good", p, err)
	}
}

// The audit is read a page at a time, in voter order, each page starting
// after the last voter of the one before; together the pages are every
// counted vote once, with when and where it was cast.
func TestCountedVotesPages(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	db.EnsurePolls(ctx, surge.DefaultPolls())
	cast := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var batch []surge.Vote
	for _, voter := range []string{"e", "a", "d", "b", "c"} {
		batch = append(batch, surge.Vote{ID: "id-" + voter, Poll: surge.DefaultPollID, Choice: "cats", Voter: voter, Version: 1, Node: "web-1", At: cast})
	}
	if _, err := db.ApplyVotes(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var pages [][]string
	for after := ""; ; {
		page, err := db.CountedVotes(ctx, surge.DefaultPollID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		var voters []string
		for _, v := range page {
			if v.Node != "web-1" || v.CastAt == nil || !v.CastAt.Equal(cast) || v.CommittedAt.IsZero() {
				t.Fatalf("audit row %+v: want node web-1, cast at %v and a commit time", v, cast)
			}
			voters = append(voters, v.Voter)
		}
		pages = append(pages, voters)
		after = page[len(page)-1].Voter
	}
	if want := [][]string{{"a", "b"}, {"c", "d"}, {"e"}}; !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
}
