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
// deadlock on the counter rows.
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
	for _, v := range votes {
		ok, err := db.knownOption(ctx, v.Poll, v.Choice)
		if err != nil {
			return nil, nil, surge.Unavailable("database", err)
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
	deltas := map[countKey]int64{}

	// 1. New voters: insert. A row another transaction is inserting makes
	// this wait for it, and then counts as existing.
	cols := voteColumns(batch)
	rows, err := tx.Query(ctx, `
		INSERT INTO votes (poll, voter, choice, version, event_id, node, cast_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
			AS t(poll, voter, choice, version, event_id, node, cast_at)
		ORDER BY poll, voter
		ON CONFLICT (poll, voter) DO NOTHING
		RETURNING poll, voter, choice`, cols...)
	if err != nil {
		return fmt.Errorf("insert votes: %w", err)
	}
	inserted := map[voteKey]bool{}
	var poll, voter, choice string
	if _, err := pgx.ForEachRow(rows, []any{&poll, &voter, &choice}, func() error {
		inserted[voteKey{poll, voter}] = true
		deltas[countKey{poll, choice}]++
		return nil
	}); err != nil {
		return fmt.Errorf("insert votes: %w", err)
	}
	var existing []surge.Vote
	for _, v := range batch {
		if !inserted[voteKey{v.Poll, v.Voter}] {
			existing = append(existing, v)
		}
	}

	// 2. Known voters: lock their rows and keep the newer vote.
	if len(existing) > 0 {
		polls, voters := make([]string, len(existing)), make([]string, len(existing))
		for i, v := range existing {
			polls[i], voters[i] = v.Poll, v.Voter
		}
		rows, err := tx.Query(ctx, `
			SELECT v.poll, v.voter, v.choice, v.version, v.event_id
			FROM votes v JOIN unnest($1::text[], $2::text[]) AS k(poll, voter)
				ON v.poll = k.poll AND v.voter = k.voter
			ORDER BY v.poll, v.voter
			FOR UPDATE OF v`, polls, voters)
		if err != nil {
			return fmt.Errorf("lock votes: %w", err)
		}
		type stored struct {
			choice, eventID string
			version         int64
		}
		current := make(map[voteKey]stored, len(existing))
		var s stored
		if _, err := pgx.ForEachRow(rows, []any{&poll, &voter, &s.choice, &s.version, &s.eventID}, func() error {
			current[voteKey{poll, voter}] = s
			return nil
		}); err != nil {
			return fmt.Errorf("lock votes: %w", err)
		}
		var winners []surge.Vote
		for _, v := range existing {
			cur, ok := current[voteKey{v.Poll, v.Voter}]
			if !ok {
				return fmt.Errorf("vote row %s/%s vanished", v.Poll, v.Voter)
			}
			if !v.Wins(cur.version, cur.eventID) {
				continue // redelivery or an older vote: no effect
			}
			winners = append(winners, v)
			if cur.choice != v.Choice {
				deltas[countKey{v.Poll, cur.choice}]--
				deltas[countKey{v.Poll, v.Choice}]++
			}
		}
		if len(winners) > 0 {
			if _, err := tx.Exec(ctx, `
				UPDATE votes v SET choice = u.choice, version = u.version, event_id = u.event_id,
					node = u.node, cast_at = u.cast_at, committed_at = now()
				FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
					AS u(poll, voter, choice, version, event_id, node, cast_at)
				WHERE v.poll = u.poll AND v.voter = u.voter`, voteColumns(winners)...); err != nil {
				return fmt.Errorf("update votes: %w", err)
			}
		}
	}

	// 3. Counters: one statement per (poll, option), in key order.
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
		b.Queue(`UPDATE poll_options SET votes = votes + $3 WHERE poll = $1 AND option = $2`, k.poll, k.option, deltas[k])
		changed[k.poll] = true
	}
	for _, p := range slices.Sorted(maps.Keys(changed)) {
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
