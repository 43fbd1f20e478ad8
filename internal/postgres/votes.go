package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/surge"
)

type voteKey struct{ poll, voter string }

type countKey struct{ poll, option string }

// ApplyVotes commits a batch of votes in one transaction and returns the
// votes it refused because their poll or option does not exist.
//
// For each (poll, voter) the vote with the greatest (version, event id)
// counts, so applying a batch twice, or batches out of order, changes
// nothing. The option counts change in the same transaction, one delta per
// (poll, option), taken in key order so that concurrent workers never
// deadlock on the counter rows, and each changed poll's commit sequence
// moves up by one (see surge.Results.Seq).
func (db *DB) ApplyVotes(ctx context.Context, votes []surge.Vote) (rejected []surge.Vote, err error) {
	rejected, _, err = db.Apply(ctx, votes, nil)
	return rejected, err
}

// ApplyOrders commits a batch of orders in one transaction and returns the
// outcomes of those not applied before.
func (db *DB) ApplyOrders(ctx context.Context, orders []surge.Order) ([]surge.OrderOutcome, error) {
	_, outcomes, err := db.Apply(ctx, nil, orders)
	return outcomes, err
}

// Apply commits votes and orders in one transaction: see ApplyVotes and
// applyOrders. Vote locks are taken before stock locks by every worker.
func (db *DB) Apply(ctx context.Context, votes []surge.Vote, orders []surge.Order) (rejected []surge.Vote, outcomes []surge.OrderOutcome, err error) {
	latest := make(map[voteKey]surge.Vote, len(votes))
	windows, err := db.windows(ctx, votes)
	if err != nil {
		return nil, nil, surge.Unavailable("database", err)
	}
	for _, v := range votes {
		ok, err := db.knownOption(ctx, v.Poll, v.Choice)
		if err != nil {
			return nil, nil, surge.Unavailable("database", err)
		}
		if w, bounded := windows[v.Poll]; bounded && w.Accepts(v.At) != nil {
			ok = false // cast outside the poll's window: the capture time decides
		}
		if !ok {
			rejected = append(rejected, v)
			continue
		}
		k := voteKey{v.Poll, v.Voter}
		if cur, seen := latest[k]; !seen || v.Wins(cur.Version, cur.ID) {
			latest[k] = v
		}
	}
	batch := make([]surge.Vote, 0, len(latest))
	for _, v := range latest {
		batch = append(batch, v)
	}
	// Rows are locked in (poll, voter) order by every statement below.
	slices.SortFunc(batch, func(a, b surge.Vote) int {
		return cmp.Or(cmp.Compare(a.Poll, b.Poll), cmp.Compare(a.Voter, b.Voter))
	})
	if len(batch) == 0 && len(orders) == 0 {
		return rejected, nil, nil
	}
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if len(batch) > 0 {
			if err := applyVotes(ctx, tx, batch); err != nil {
				return err
			}
		}
		if len(orders) > 0 {
			var err error
			outcomes, err = applyOrders(ctx, tx, orders)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, nil, db.classify(fmt.Errorf("apply %d votes, %d orders: %w", len(batch), len(orders), err))
	}
	return rejected, outcomes, nil
}

// classify marks transient failures as surge.EUNAVAILABLE.
func (db *DB) classify(err error) error {
	if IsTransient(err) {
		return surge.Unavailable("database", err)
	}
	return err
}

func applyVotes(ctx context.Context, tx pgx.Tx, batch []surge.Vote) error {
	// One statement: a new voter's row is inserted; a known voter's row is
	// locked and replaced only by a vote that wins over it, keeping the
	// choice it replaces in prev_choice. A row another transaction is
	// inserting makes this wait for it, and then counts as existing.
	// event_id compares byte-wise (COLLATE "C"), as surge.Vote.Wins does.
	rows, err := tx.Query(ctx, `
		INSERT INTO votes AS v (poll, voter, choice, version, event_id, node, cast_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
			AS t(poll, voter, choice, version, event_id, node, cast_at)
		ORDER BY poll, voter
		ON CONFLICT (poll, voter) DO UPDATE
			SET prev_choice = v.choice, choice = excluded.choice, version = excluded.version,
				event_id = excluded.event_id, node = excluded.node, cast_at = excluded.cast_at, committed_at = now()
			WHERE excluded.version > v.version
				OR (excluded.version = v.version AND excluded.event_id COLLATE "C" > v.event_id COLLATE "C")
		RETURNING poll, choice, prev_choice`, voteColumns(batch)...)
	if err != nil {
		return fmt.Errorf("upsert votes: %w", err)
	}
	// A returned row was inserted (prev_choice NULL: the insert does not
	// set it) or replaced by a winning vote; redeliveries and older votes
	// return nothing and change no count.
	deltas := map[countKey]int64{}
	var poll, choice string
	var prev *string
	if _, err := pgx.ForEachRow(rows, []any{&poll, &choice, &prev}, func() error {
		switch {
		case prev == nil:
			deltas[countKey{poll, choice}]++
		case *prev != choice:
			deltas[countKey{poll, *prev}]--
			deltas[countKey{poll, choice}]++
		}
		return nil
	}); err != nil {
		return fmt.Errorf("upsert votes: %w", err)
	}

	// Counters: one statement per (poll, option), in key order.
	keys := make([]countKey, 0, len(deltas))
	for k, d := range deltas {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.poll, b.poll), cmp.Compare(a.option, b.option))
	})
	var b pgx.Batch
	changed := map[string]bool{}
	for _, k := range keys {
		b.Queue(`UPDATE option_counts SET votes = votes + $3 WHERE poll = $1 AND option = $2`, k.poll, k.option, deltas[k])
		changed[k.poll] = true
	}
	// Then each changed poll's commit sequence, in poll order, after every
	// counter row: the row lock numbers a poll's commits in commit order,
	// and clock_timestamp() taken under it never goes back.
	for _, p := range slices.Sorted(maps.Keys(changed)) {
		b.Queue(`UPDATE polls SET counts_seq = counts_seq + 1, counts_at = clock_timestamp() WHERE id = $1`, p)
		b.Queue(`SELECT pg_notify($1, $2)`, NotifyChannel, p)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("update counts: %w", err)
	}
	return nil
}

func voteColumns(votes []surge.Vote) []any {
	n := len(votes)
	polls, voters, choices, events, nodes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions, at := make([]int64, n), make([]*time.Time, n)
	for i, v := range votes {
		polls[i], voters[i], choices[i], versions[i], events[i], nodes[i] = v.Poll, v.Voter, v.Choice, v.Version, v.ID, v.Node
		if !v.At.IsZero() {
			at[i] = &votes[i].At
		}
	}
	return []any{polls, voters, choices, versions, events, nodes, at}
}

// windows returns the polls of votes that have an opening or closing time.
// They are read for every batch, not cached: closing a poll early moves its
// closing time, and a vote cast after it must not count.
func (db *DB) windows(ctx context.Context, votes []surge.Vote) (map[string]surge.Poll, error) {
	if len(votes) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, 1)
	for _, v := range votes {
		if !slices.Contains(ids, v.Poll) {
			ids = append(ids, v.Poll)
		}
	}
	rows, err := db.Pool.Query(ctx, `SELECT id, opens_at, closes_at FROM polls
		WHERE id = ANY($1) AND (opens_at IS NOT NULL OR closes_at IS NOT NULL)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read poll windows: %w", err)
	}
	windows := map[string]surge.Poll{}
	var p surge.Poll
	if _, err := pgx.ForEachRow(rows, []any{&p.ID, &p.OpensAt, &p.ClosesAt}, func() error {
		windows[p.ID] = p
		p = surge.Poll{}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read poll windows: %w", err)
	}
	return windows, nil
}

// knownOption reports whether poll has option. Options never go away, so
// a known pair is cached; a miss is always checked in the database (a poll
// created a moment ago must not have its votes refused).
func (db *DB) knownOption(ctx context.Context, poll, option string) (bool, error) {
	db.mu.Lock()
	ok := db.options[poll][option]
	db.mu.Unlock()
	if ok {
		return true, nil
	}
	err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM poll_options WHERE poll = $1 AND option = $2)`, poll, option).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up poll option: %w", err)
	}
	if ok {
		db.mu.Lock()
		if db.options == nil {
			db.options = map[string]map[string]bool{}
		}
		if db.options[poll] == nil {
			db.options[poll] = map[string]bool{}
		}
		db.options[poll][option] = true
		db.mu.Unlock()
	}
	return ok, nil
}
