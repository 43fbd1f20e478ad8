package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

const catsPoll = "cats-vs-dogs"

// testPolls are stored before any vote. The second poll gives the tests an
// option ("vim") that exists, but not in cats-vs-dogs, and a second set of
// counter rows for the concurrency test.
var testPolls = []surge.Poll{
	{ID: catsPoll, Title: "Cats or dogs?", Options: []string{"cats", "dogs"}},
	{ID: "best-editor", Title: "Best editor?", Options: []string{"vim", "emacs", "nano"}},
}

// newDB returns a fresh migrated database holding testPolls, and a context
// that bounds the test.
func newDB(t testing.TB) (*postgres.DB, context.Context) {
	t.Helper()
	db := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := db.EnsurePolls(ctx, testPolls); err != nil {
		t.Fatal(err)
	}
	return db, ctx
}

// pv builds a vote for any poll.
func pv(poll, voter, choice string, version int64, id string) surge.Vote {
	return surge.Vote{ID: id, Poll: poll, Choice: choice, Voter: voter, Version: version,
		Node: "test-node", At: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// v builds a vote for cats-vs-dogs.
func v(voter, choice string, version int64, id string) surge.Vote {
	return pv(catsPoll, voter, choice, version, id)
}

// apply applies a batch and fails the test on any error.
func apply(t testing.TB, ctx context.Context, db *postgres.DB, batch []surge.Vote) []surge.Vote {
	t.Helper()
	rejected, err := db.ApplyVotes(ctx, batch)
	if err != nil {
		t.Fatalf("ApplyVotes(%d votes): code %q: %v", len(batch), surge.ErrorCode(err), err)
	}
	return rejected
}

// stored is the row of one (poll, voter).
type stored struct {
	Choice      string
	Version     int64
	ID          string
	Node        string
	CommittedAt time.Time
}

func (s stored) String() string {
	return fmt.Sprintf("{%s v%d id=%q}", s.Choice, s.Version, s.ID)
}

// want is the expected row of a voter; the node and commit time are not
// compared.
type want struct {
	Choice  string
	Version int64
	ID      string
}

func wantOf(v surge.Vote) want { return want{v.Choice, v.Version, v.ID} }

// storedVotes returns every row of votes keyed "poll/voter".
func storedVotes(t testing.TB, ctx context.Context, db *postgres.DB) map[string]stored {
	t.Helper()
	rows, err := db.Pool.Query(ctx,
		`SELECT poll, voter, choice, version, event_id, node, committed_at FROM votes`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]stored{}
	var poll, voter string
	var s stored
	if _, err := pgx.ForEachRow(rows, []any{&poll, &voter, &s.Choice, &s.Version, &s.ID, &s.Node, &s.CommittedAt}, func() error {
		out[poll+"/"+voter] = s
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// catsVotes returns the cats-vs-dogs rows keyed by voter, without node and
// commit time.
func catsVotes(t testing.TB, ctx context.Context, db *postgres.DB) map[string]want {
	t.Helper()
	out := map[string]want{}
	for k, s := range storedVotes(t, ctx, db) {
		if voter, ok := strings.CutPrefix(k, catsPoll+"/"); ok {
			out[voter] = want{s.Choice, s.Version, s.ID}
		}
	}
	return out
}

// optionCounts returns option_counts.votes keyed "poll/option", zeros left out.
func optionCounts(t testing.TB, ctx context.Context, db *postgres.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Pool.Query(ctx, `SELECT poll, option, votes FROM option_counts`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var poll, option string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&poll, &option, &n}, func() error {
		if n != 0 {
			out[poll+"/"+option] = n
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// groupCounts recounts the votes rows, keyed "poll/option".
func groupCounts(t testing.TB, ctx context.Context, db *postgres.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Pool.Query(ctx, `SELECT poll, choice, count(*) FROM votes GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var poll, choice string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&poll, &choice, &n}, func() error {
		out[poll+"/"+choice] = n
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCounts asserts the counters of every poll: they equal want (keyed
// "poll/option", zeros left out) and the recount of the votes rows.
func checkCounts(t testing.TB, ctx context.Context, db *postgres.DB, want map[string]int64, when string) {
	t.Helper()
	got := optionCounts(t, ctx, db)
	if want != nil && !maps.Equal(got, want) {
		t.Errorf("%s: option_counts = %v, want %v", when, got, want)
	}
	if recount := groupCounts(t, ctx, db); !maps.Equal(got, recount) {
		t.Errorf("%s: option_counts = %v, but votes rows count %v", when, got, recount)
	}
}

// checkCats asserts the cats-vs-dogs rows.
func checkCats(t testing.TB, ctx context.Context, db *postgres.DB, want map[string]want, when string) {
	t.Helper()
	if got := catsVotes(t, ctx, db); !maps.Equal(got, want) {
		t.Errorf("%s: stored votes = %v, want %v", when, got, want)
	}
}

func ids(votes []surge.Vote) []string {
	out := make([]string, 0, len(votes))
	for _, v := range votes {
		out = append(out, v.ID)
	}
	slices.Sort(out)
	return out
}

// newer reports whether a beats b: the greater (version, id) pair, ids
// compared as strings. It is the rule of surge.Vote.Wins, restated here so
// that the expectations do not depend on the code under test.
func newer(a, b surge.Vote) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	return a.ID > b.ID
}

func reversed(votes []surge.Vote) []surge.Vote {
	out := slices.Clone(votes)
	slices.Reverse(out)
	return out
}

// 1. Redelivery of a batch, as is or reordered, changes nothing: not the
// counts, and not the rows (a rewrite would move committed_at).
func TestApplyVotesIdempotent(t *testing.T) {
	cases := []struct {
		name       string
		before     []surge.Vote // applied once first, if any
		batch      []surge.Vote // applied, then redelivered
		wantRej    []string
		wantVotes  map[string]want
		wantCounts map[string]int64
	}{
		{
			name:       "empty batch",
			batch:      nil,
			wantVotes:  map[string]want{},
			wantCounts: map[string]int64{},
		},
		{
			name:      "new voters",
			batch:     []surge.Vote{v("alice", "cats", 1, "e1"), v("bob", "dogs", 1, "e2"), v("carol", "dogs", 1, "e3")},
			wantVotes: map[string]want{"alice": {"cats", 1, "e1"}, "bob": {"dogs", 1, "e2"}, "carol": {"dogs", 1, "e3"}},
			wantCounts: map[string]int64{
				"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2,
			},
		},
		{
			name:      "changed votes of known voters",
			before:    []surge.Vote{v("alice", "cats", 1, "e1"), v("bob", "cats", 1, "e2")},
			batch:     []surge.Vote{v("alice", "dogs", 2, "e3"), v("bob", "cats", 2, "e4"), v("carol", "dogs", 1, "e5")},
			wantVotes: map[string]want{"alice": {"dogs", 2, "e3"}, "bob": {"cats", 2, "e4"}, "carol": {"dogs", 1, "e5"}},
			wantCounts: map[string]int64{
				"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2,
			},
		},
		{
			name:   "duplicates, stale votes and rejects",
			before: []surge.Vote{v("alice", "dogs", 5, "e0")},
			batch: []surge.Vote{
				v("alice", "cats", 4, "e1"),                                                     // older than stored: no effect
				v("bob", "cats", 1, "e2"), v("bob", "dogs", 2, "e3"), v("bob", "cats", 2, "e4"), // e4 wins
				v("carol", "birds", 1, "e5"),                 // unknown option
				pv("no-such-poll", "dave", "cats", 1, "e6"),  // unknown poll
				pv("best-editor", "alice", "emacs", 1, "e7"), // same voter, other poll
			},
			wantRej:   []string{"e5", "e6"},
			wantVotes: map[string]want{"alice": {"dogs", 5, "e0"}, "bob": {"cats", 2, "e4"}},
			wantCounts: map[string]int64{
				"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 1, "best-editor/emacs": 1,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, ctx := newDB(t)
			if tc.before != nil {
				if rej := apply(t, ctx, db, tc.before); len(rej) != 0 {
					t.Fatalf("setup rejected %v", ids(rej))
				}
			}
			rej := apply(t, ctx, db, tc.batch)
			if got := ids(rej); !slices.Equal(got, tc.wantRej) {
				t.Errorf("first delivery: rejected %v, want %v", got, tc.wantRej)
			}
			checkCats(t, ctx, db, tc.wantVotes, "first delivery")
			checkCounts(t, ctx, db, tc.wantCounts, "first delivery")
			rows := storedVotes(t, ctx, db)

			redeliveries := []struct {
				name  string
				batch []surge.Vote
			}{
				{"same order", tc.batch},
				{"reversed", reversed(tc.batch)},
				{"doubled", append(slices.Clone(tc.batch), tc.batch...)},
			}
			for _, r := range redeliveries {
				rej := apply(t, ctx, db, r.batch)
				// Each rejected vote comes back once per copy in the batch.
				wantRej := tc.wantRej
				if r.name == "doubled" {
					wantRej = slices.Sorted(slices.Values(append(slices.Clone(tc.wantRej), tc.wantRej...)))
				}
				if got := ids(rej); !slices.Equal(got, wantRej) {
					t.Errorf("redelivery %s: rejected %v, want %v", r.name, got, wantRej)
				}
				if got := storedVotes(t, ctx, db); !maps.Equal(got, rows) {
					t.Errorf("redelivery %s changed the rows:\n got  %v\n want %v", r.name, got, rows)
				}
				checkCounts(t, ctx, db, tc.wantCounts, "redelivery "+r.name)
			}
		})
	}
}

// 2. The newer vote of a voter wins whatever the order in which the two
// arrive, together or apart, and the counts move exactly once.
func TestApplyVotesLatestWins(t *testing.T) {
	pairs := []struct {
		name       string
		older      surge.Vote
		newer      surge.Vote
		wantCounts map[string]int64 // with bob=cats and carol=dogs also stored
	}{
		{
			name:       "greater version",
			older:      v("alice", "cats", 100, "e2"),
			newer:      v("alice", "dogs", 101, "e1"), // smaller id, but the version decides
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2},
		},
		{
			name:       "greater version beats much greater id",
			older:      v("alice", "dogs", 1_700_000_000_000_000, "zzzzzzzz"),
			newer:      v("alice", "cats", 1_700_000_000_000_001, "00000000"),
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 2, "cats-vs-dogs/dogs": 1},
		},
		{
			name:       "equal version, greater id",
			older:      v("alice", "cats", 7, "01HZX0000000000000000000A0"),
			newer:      v("alice", "dogs", 7, "01HZX0000000000000000000A1"),
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2},
		},
		{
			name:       "equal version, ids compare as strings",
			older:      v("alice", "cats", 7, "10"),
			newer:      v("alice", "dogs", 7, "9"), // "9" > "10"
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2},
		},
		{
			name:       "newer vote, same choice",
			older:      v("alice", "dogs", 3, "e1"),
			newer:      v("alice", "dogs", 4, "e2"),
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 2},
		},
	}
	orders := []struct {
		name    string
		batches func(older, newer surge.Vote) [][]surge.Vote
	}{
		{"one batch, older first", func(o, n surge.Vote) [][]surge.Vote { return [][]surge.Vote{{o, n}} }},
		{"one batch, newer first", func(o, n surge.Vote) [][]surge.Vote { return [][]surge.Vote{{n, o}} }},
		{"two batches, older first", func(o, n surge.Vote) [][]surge.Vote { return [][]surge.Vote{{o}, {n}} }},
		{"two batches, newer first", func(o, n surge.Vote) [][]surge.Vote { return [][]surge.Vote{{n}, {o}} }},
	}
	base := []surge.Vote{v("bob", "cats", 1, "b1"), v("carol", "dogs", 1, "c1")}
	for _, p := range pairs {
		for _, o := range orders {
			t.Run(p.name+"/"+o.name, func(t *testing.T) {
				db, ctx := newDB(t)
				apply(t, ctx, db, base)
				wantRows := map[string]want{"bob": wantOf(base[0]), "carol": wantOf(base[1])}
				for i, b := range o.batches(p.older, p.newer) {
					if rej := apply(t, ctx, db, b); len(rej) != 0 {
						t.Fatalf("batch %d: rejected %v", i, ids(rej))
					}
					// After each batch the winner so far is stored, and
					// counted once.
					winner := b[0]
					for _, x := range b[1:] {
						if newer(x, winner) {
							winner = x
						}
					}
					if cur, ok := wantRows["alice"]; !ok || newer(winner, surge.Vote{Version: cur.Version, ID: cur.ID}) {
						wantRows["alice"] = wantOf(winner)
					}
					when := fmt.Sprintf("after batch %d", i)
					checkCats(t, ctx, db, wantRows, when)
					counts := map[string]int64{}
					for _, w := range wantRows {
						counts[catsPoll+"/"+w.Choice]++
					}
					checkCounts(t, ctx, db, counts, when)
				}
				wantRows["alice"] = wantOf(p.newer)
				checkCats(t, ctx, db, wantRows, "end")
				checkCounts(t, ctx, db, p.wantCounts, "end")

				// Either vote delivered again later changes nothing.
				apply(t, ctx, db, []surge.Vote{p.older})
				apply(t, ctx, db, []surge.Vote{p.newer, p.older})
				checkCats(t, ctx, db, wantRows, "after redelivery")
				checkCounts(t, ctx, db, p.wantCounts, "after redelivery")
			})
		}
	}
}

// 3. Several votes of one (poll, voter) in one batch: only the winner is
// stored and counted.
func TestApplyVotesDuplicatesInBatch(t *testing.T) {
	runBatchCases(t, []batchCase{
		{
			name:       "winner last",
			batch:      []surge.Vote{v("alice", "cats", 1, "e1"), v("alice", "dogs", 2, "e2"), v("alice", "cats", 3, "e3")},
			wantVotes:  map[string]want{"alice": {"cats", 3, "e3"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1},
		},
		{
			name:       "winner first",
			batch:      []surge.Vote{v("alice", "dogs", 9, "e1"), v("alice", "cats", 2, "e2"), v("alice", "cats", 3, "e3")},
			wantVotes:  map[string]want{"alice": {"dogs", 9, "e1"}},
			wantCounts: map[string]int64{"cats-vs-dogs/dogs": 1},
		},
		{
			name:       "winner in the middle, ties on version",
			batch:      []surge.Vote{v("alice", "cats", 5, "a"), v("alice", "dogs", 5, "c"), v("alice", "cats", 5, "b")},
			wantVotes:  map[string]want{"alice": {"dogs", 5, "c"}},
			wantCounts: map[string]int64{"cats-vs-dogs/dogs": 1},
		},
		{
			name:       "exact duplicate of the winner",
			batch:      []surge.Vote{v("alice", "dogs", 5, "e5"), v("alice", "cats", 4, "e4"), v("alice", "dogs", 5, "e5")},
			wantVotes:  map[string]want{"alice": {"dogs", 5, "e5"}},
			wantCounts: map[string]int64{"cats-vs-dogs/dogs": 1},
		},
		{
			name: "several voters interleaved",
			batch: []surge.Vote{
				v("alice", "cats", 1, "a1"), v("bob", "dogs", 1, "b1"), v("carol", "cats", 2, "c2"),
				v("bob", "cats", 2, "b2"), v("alice", "dogs", 2, "a2"), v("carol", "dogs", 1, "c1"),
				v("bob", "dogs", 1, "b0"), v("alice", "cats", 1, "a0"),
			},
			wantVotes:  map[string]want{"alice": {"dogs", 2, "a2"}, "bob": {"cats", 2, "b2"}, "carol": {"cats", 2, "c2"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 2, "cats-vs-dogs/dogs": 1},
		},
		{
			name:       "stored vote newer than every duplicate",
			before:     []surge.Vote{v("alice", "cats", 10, "e10")},
			batch:      []surge.Vote{v("alice", "dogs", 5, "e5"), v("alice", "dogs", 7, "e7"), v("alice", "cats", 6, "e6")},
			wantVotes:  map[string]want{"alice": {"cats", 10, "e10"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1},
		},
		{
			name:       "stored vote older than the winner",
			before:     []surge.Vote{v("alice", "cats", 1, "e1")},
			batch:      []surge.Vote{v("alice", "dogs", 2, "e2"), v("alice", "dogs", 4, "e4"), v("alice", "cats", 3, "e3")},
			wantVotes:  map[string]want{"alice": {"dogs", 4, "e4"}},
			wantCounts: map[string]int64{"cats-vs-dogs/dogs": 1},
		},
		{
			name:       "winner repeats the stored choice",
			before:     []surge.Vote{v("alice", "cats", 1, "e1"), v("bob", "dogs", 1, "f1")},
			batch:      []surge.Vote{v("alice", "dogs", 2, "e2"), v("alice", "cats", 3, "e3"), v("alice", "dogs", 2, "e2b")},
			wantVotes:  map[string]want{"alice": {"cats", 3, "e3"}, "bob": {"dogs", 1, "f1"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 1},
		},
	})
}

// 4. Votes for an unknown poll or option come back as rejected; the rest of
// the batch is applied and the rejected ones touch neither rows nor counts.
func TestApplyVotesRejectsUnknown(t *testing.T) {
	runBatchCases(t, []batchCase{
		{
			name:       "unknown poll",
			batch:      []surge.Vote{pv("no-such-poll", "alice", "cats", 1, "e1")},
			wantRej:    []string{"e1"},
			wantVotes:  map[string]want{},
			wantCounts: map[string]int64{},
		},
		{
			name:       "unknown option",
			batch:      []surge.Vote{v("alice", "birds", 1, "e1")},
			wantRej:    []string{"e1"},
			wantVotes:  map[string]want{},
			wantCounts: map[string]int64{},
		},
		{
			name:       "option of another poll",
			batch:      []surge.Vote{v("alice", "vim", 1, "e1")},
			wantRej:    []string{"e1"},
			wantVotes:  map[string]want{},
			wantCounts: map[string]int64{},
		},
		{
			name: "mixed batch",
			batch: []surge.Vote{
				v("alice", "cats", 1, "e1"),
				pv("no-such-poll", "bob", "cats", 1, "e2"),
				v("carol", "birds", 1, "e3"),
				v("dave", "dogs", 1, "e4"),
				pv("best-editor", "erin", "cats", 1, "e5"),
				pv("best-editor", "erin", "nano", 1, "e6"),
			},
			wantRej:    []string{"e2", "e3", "e5"},
			wantVotes:  map[string]want{"alice": {"cats", 1, "e1"}, "dave": {"dogs", 1, "e4"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1, "cats-vs-dogs/dogs": 1, "best-editor/nano": 1},
		},
		{
			name:       "rejected newer vote leaves the stored one",
			before:     []surge.Vote{v("alice", "cats", 1, "e1")},
			batch:      []surge.Vote{v("alice", "birds", 5, "e5")},
			wantRej:    []string{"e5"},
			wantVotes:  map[string]want{"alice": {"cats", 1, "e1"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1},
		},
		{
			name:       "rejected newer duplicate does not hide the valid one",
			batch:      []surge.Vote{v("alice", "cats", 1, "e1"), v("alice", "birds", 2, "e2")},
			wantRej:    []string{"e2"},
			wantVotes:  map[string]want{"alice": {"cats", 1, "e1"}},
			wantCounts: map[string]int64{"cats-vs-dogs/cats": 1},
		},
		{
			name:       "only rejects, voter known elsewhere",
			before:     []surge.Vote{v("alice", "dogs", 1, "e1")},
			batch:      []surge.Vote{pv("no-such-poll", "alice", "dogs", 9, "e9"), v("bob", "birds", 1, "e10")},
			wantRej:    []string{"e10", "e9"},
			wantVotes:  map[string]want{"alice": {"dogs", 1, "e1"}},
			wantCounts: map[string]int64{"cats-vs-dogs/dogs": 1},
		},
	})
}

// batchCase applies before (which must all be accepted), then batch, and
// checks what was rejected (wantRej: vote ids, none if empty), the stored
// votes and the counts.
type batchCase struct {
	name       string
	before     []surge.Vote
	batch      []surge.Vote
	wantRej    []string
	wantVotes  map[string]want
	wantCounts map[string]int64
}

func runBatchCases(t *testing.T, cases []batchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, ctx := newDB(t)
			if tc.before != nil {
				if rej := apply(t, ctx, db, tc.before); len(rej) != 0 {
					t.Fatalf("setup rejected %v", ids(rej))
				}
			}
			rej := apply(t, ctx, db, tc.batch)
			if got := ids(rej); !slices.Equal(got, tc.wantRej) {
				t.Errorf("rejected %v, want %v", got, tc.wantRej)
			}
			// Rejected votes come back whole.
			for _, r := range rej {
				if !slices.Contains(tc.batch, r) {
					t.Errorf("rejected vote %+v is not one of the batch", r)
				}
			}
			checkCats(t, ctx, db, tc.wantVotes, "after batch")
			checkCounts(t, ctx, db, tc.wantCounts, "after batch")
			rows := storedVotes(t, ctx, db)
			for k := range rows {
				if strings.HasPrefix(k, "no-such-poll/") {
					t.Errorf("row stored for unknown poll: %s", k)
				}
			}
		})
	}
}

// 5. Eight workers apply overlapping batches of the same voters at once, in
// random order with random versions, for several rounds. Nothing may fail
// (a deadlock would come back as EUNAVAILABLE), the counters must equal the
// recount of the rows, and each voter's row must be their greatest
// (version, id) vote. Large batches contend mostly on the vote rows; many
// small ones spend a larger share of their time on the counter rows.
func TestApplyVotesConcurrent(t *testing.T) {
	cases := []struct {
		name             string
		rounds           int
		batchesPerWorker int
		batchSize        int
		votersPerPoll    int
		votesPerRound    int
	}{
		{"large batches", 10, 4, 120, 150, 900},
		{"small batches", 6, 120, 6, 200, 1200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testConcurrent(t, tc.rounds, tc.batchesPerWorker, tc.batchSize, tc.votersPerPoll, tc.votesPerRound)
		})
	}
}

func testConcurrent(t *testing.T, rounds, batchesPerWorker, batchSize, votersPerPoll, votesPerRound int) {
	db, ctx := newDB(t)
	const workers = 8
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	expected := map[string]surge.Vote{} // "poll/voter" -> greatest vote sent
	seq := 0
	for round := range rounds {
		// The round's votes: random voters, choices and versions (small, so
		// that equal versions are common), unique random-looking ids.
		universe := make([]surge.Vote, votesPerRound)
		for i := range universe {
			p := testPolls[rng.IntN(len(testPolls))]
			seq++
			universe[i] = pv(p.ID,
				fmt.Sprintf("voter-%03d", rng.IntN(votersPerPoll)),
				p.Options[rng.IntN(len(p.Options))],
				1+rng.Int64N(20),
				fmt.Sprintf("%04x-%06d", rng.IntN(0x10000), seq))
		}
		// Each worker sends random, overlapping subsets in random order;
		// a vote sent by several workers is a redelivery.
		plans := make([][][]surge.Vote, workers)
		for w := range plans {
			for range batchesPerWorker {
				batch := make([]surge.Vote, batchSize)
				for i := range batch {
					batch[i] = universe[rng.IntN(len(universe))]
				}
				plans[w] = append(plans[w], batch)
				for _, x := range batch {
					k := x.Poll + "/" + x.Voter
					if cur, ok := expected[k]; !ok || newer(x, cur) {
						expected[k] = x
					}
				}
			}
		}

		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			errs  []error
			start = make(chan struct{})
		)
		for w := range workers {
			wg.Go(func() {
				<-start
				for i, batch := range plans[w] {
					rej, err := db.ApplyVotes(ctx, batch)
					if err == nil && len(rej) > 0 {
						err = fmt.Errorf("rejected %d valid votes: %v", len(rej), ids(rej))
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("round %d worker %d batch %d: %w", round, w, i, err))
						mu.Unlock()
						return // the others stop too once they see it
					}
					mu.Lock()
					failed := len(errs) > 0
					mu.Unlock()
					if failed {
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			var pgErr *pgconn.PgError
			sqlstate := ""
			if errors.As(err, &pgErr) {
				sqlstate = pgErr.Code
			}
			t.Errorf("%v (code %q, SQLSTATE %q)", err, surge.ErrorCode(err), sqlstate)
		}
		if t.Failed() {
			t.FailNow()
		}

		when := fmt.Sprintf("after round %d", round)
		checkCounts(t, ctx, db, nil, when)
		rows := storedVotes(t, ctx, db)
		if len(rows) != len(expected) {
			t.Errorf("%s: %d rows, want %d", when, len(rows), len(expected))
		}
		bad := 0
		for k, x := range expected {
			got, ok := rows[k]
			if !ok || got.Choice != x.Choice || got.Version != x.Version || got.ID != x.ID {
				if bad++; bad <= 10 {
					t.Errorf("%s: %s stored %v (present %v), want %s v%d id=%q", when, k, got, ok, x.Choice, x.Version, x.ID)
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%s: %d voters hold the wrong vote", when, bad)
		}
	}
}

// 7. The counters cannot go negative: the CHECK constraint refuses it.
func TestCountsNeverNegative(t *testing.T) {
	cases := []struct {
		name  string
		setup []surge.Vote
		sql   string
		want  int64 // cats count, unchanged by the refused statement
	}{
		{"set to -1", nil, `UPDATE option_counts SET votes = -1 WHERE poll = $1 AND option = 'cats'`, 0},
		{"decrement from zero", nil, `UPDATE option_counts SET votes = votes - 1 WHERE poll = $1 AND option = 'cats'`, 0},
		{"decrement past the votes", []surge.Vote{v("alice", "cats", 1, "e1")},
			`UPDATE option_counts SET votes = votes - 2 WHERE poll = $1 AND option = 'cats'`, 1},
		{"all options of the poll", nil, `UPDATE option_counts SET votes = -1 WHERE poll = $1`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, ctx := newDB(t)
			if tc.setup != nil {
				apply(t, ctx, db, tc.setup)
			}
			_, err := db.Pool.Exec(ctx, tc.sql, catsPoll)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
				t.Fatalf("%s: err = %v, want check_violation (23514)", tc.sql, err)
			}
			res, err := db.Results(ctx, catsPoll)
			if err != nil {
				t.Fatal(err)
			}
			if res.Counts["cats"] != tc.want || res.Counts["dogs"] != 0 {
				t.Errorf("counts = %v, want cats=%d dogs=0", res.Counts, tc.want)
			}
		})
	}
}

// 8. Throughput of ApplyVotes in batches of 500. Run with
// go test -run '^$' -bench ApplyVotes ./internal/postgres/
func BenchmarkApplyVotes(b *testing.B) {
	db, ctx := newDB(b)
	const size = 500
	run := 0
	bench := func(b *testing.B, changers int) {
		run++
		prefix := fmt.Sprintf("r%d", run)
		voter := func(i, j int) string { return fmt.Sprintf("%s-%d-%d", prefix, i, j) }
		// The voters of batch -1, so that the first timed batch also has
		// voters who change their vote.
		if changers > 0 {
			seedBatch := make([]surge.Vote, 0, size-changers)
			for j := range size - changers {
				seedBatch = append(seedBatch, v(voter(-1, j), "cats", 1, fmt.Sprintf("%s-seed-%d", prefix, j)))
			}
			apply(b, ctx, db, seedBatch)
		}
		n := 0
		for i := 0; b.Loop(); i++ {
			batch := make([]surge.Vote, 0, size)
			// Fresh voters...
			for j := range size - changers {
				batch = append(batch, v(voter(i, j), "cats", 1, fmt.Sprintf("%s-%d-%d", prefix, i, j)))
			}
			// ...and voters of the previous batch who change their mind.
			for j := range changers {
				batch = append(batch, v(voter(i-1, j), "dogs", 2, fmt.Sprintf("%s-%d-c%d", prefix, i, j)))
			}
			if rej, err := db.ApplyVotes(ctx, batch); err != nil || len(rej) > 0 {
				b.Fatalf("ApplyVotes: rejected %d, err %v", len(rej), err)
			}
			n += len(batch)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "votes/s")
	}
	b.Run("fresh-voters", func(b *testing.B) { bench(b, 0) })
	b.Run("half-change", func(b *testing.B) { bench(b, size/2) })
	// Workers applying batches to the same poll at once contend for its
	// counter rows, as the workers of every shard do under a burst.
	b.Run("4-workers", func(b *testing.B) {
		run++
		var batches atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := batches.Add(1); i <= int64(b.N); i = batches.Add(1) {
					batch := make([]surge.Vote, size)
					for j := range batch {
						id := fmt.Sprintf("r%d-%d-%d", run, i, j)
						batch[j] = v(id, []string{"cats", "dogs"}[j%2], 1, id)
					}
					if rej, err := db.ApplyVotes(ctx, batch); err != nil || len(rej) > 0 {
						b.Errorf("ApplyVotes: rejected %d, err %v", len(rej), err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "votes/s")
	})
}
