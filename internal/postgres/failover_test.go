package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// The primary's machine dies. Patroni promotes a synchronous standby, which
// has every commit that returned; the one commit that had reached no
// standby never returned. Clients of the multi-host URL write to the new
// primary, the LISTEN connection follows it, and the old primary, started
// again, rejoins as a synchronous standby through pg_rewind, its
// unacknowledged commit rewound away.
func TestPatroniFailoverKeepsEveryAcknowledgedCommit(t *testing.T) {
	p, db, ctx := patroniDB(t, 3)
	l := listen(t, ctx, db)

	counts := map[string]int64{}
	commit := func(prefix string, n int) {
		t.Helper()
		batch := make([]surge.Vote, n)
		for i := range batch {
			batch[i] = v(fmt.Sprintf("%s-%d", prefix, i), []string{"cats", "dogs"}[i%2], 1, fmt.Sprintf("%s-id-%d", prefix, i))
		}
		apply(t, ctx, db, batch)
		for _, v := range batch {
			counts[v.Choice]++
		}
	}
	for b := range 10 {
		commit(fmt.Sprintf("before-%d", b), 50)
	}
	testenv.Eventually(t, testenv.RequestBound, l.notified(ctx, db, "before"))

	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := st.Primary
	// A commit that reaches no standby: the primary's WAL senders stop,
	// it commits locally and waits for a standby, and then it dies.
	if err := p.CutReplication(old); err != nil {
		t.Fatal(err)
	}
	unacked := make(chan error, 1)
	go func() {
		_, err := db.ApplyVotes(ctx, []surge.Vote{v("unacked", "dogs", 1, "unacked-id")})
		unacked <- err
	}()
	oldDB := testenv.PostgresClient(t, p.MemberURL(old))
	testenv.Eventually(t, testenv.RequestBound, waitsForStandby(ctx, oldDB))
	if err := p.KillMember(old); err != nil {
		t.Fatal(err)
	}
	if err := <-unacked; err == nil {
		t.Fatal("a commit that no standby had was acknowledged")
	}

	primary := testenv.WaitFailover(t, p, old)
	t.Logf("failover from %s to %s", p.Members[old].Name, p.Members[primary].Name)
	// The pool's connections to the dead primary fail once each; then it
	// connects to the new one.
	testenv.Eventually(t, testenv.RequestBound, func() error { return hasCounts(ctx, db, counts) })
	if n := votesOf(t, ctx, db, "unacked"); n != 0 {
		t.Errorf("the unacknowledged vote is on the new primary (%d rows), though no standby received it", n)
	}
	testenv.Eventually(t, testenv.RequestBound, func() error {
		_, err := db.ApplyVotes(ctx, []surge.Vote{v("after", "cats", 1, "after-id")})
		return err
	})
	counts["cats"]++
	if err := hasCounts(ctx, db, counts); err != nil {
		t.Fatal(err)
	}
	// The LISTEN connection lost the old primary and listens on the new one.
	testenv.Eventually(t, listenRecovery, l.notified(ctx, db, "after"))
	l.check(t)

	if err := p.StartMember(old); err != nil {
		t.Fatal(err)
	}
	testenv.WaitStreaming(t, p, old, "sync")
	if log, _ := os.ReadFile(p.Members[old].Log); !strings.Contains(string(log), "running pg_rewind from") {
		t.Errorf("%s rejoined without pg_rewind, though its WAL had diverged", p.Members[old].Name)
	}
	// A synchronous standby has flushed every commit; it shows them once
	// replayed, at once on an idle machine.
	testenv.Eventually(t, testenv.RequestBound, func() error { return hasCounts(ctx, oldDB, counts) })
	if n := votesOf(t, ctx, oldDB, "unacked"); n != 0 {
		t.Errorf("the old primary kept its unacknowledged vote (%d rows) after rejoining", n)
	}
}

// In strict synchronous mode a primary whose only standby is gone commits
// nothing. The standby's machine comes back with an empty disk: it rejoins
// as synchronous standby by itself, from a base backup, and the waiting
// commit returns.
func TestPatroniWipedStandbyRejoinsAsSynchronousStandby(t *testing.T) {
	p, db, ctx := patroniDB(t, 2)
	apply(t, ctx, db, []surge.Vote{v("before", "cats", 1, "before-id")})
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	standby := 1 - st.Primary
	if err := p.KillMember(standby); err != nil {
		t.Fatal(err)
	}
	if err := p.WipeMember(standby); err != nil {
		t.Fatal(err)
	}
	// Once the standby's member key expires, Patroni would drop
	// synchronous replication; strict mode makes every commit wait instead.
	testenv.Eventually(t, testenv.PatroniFailover(p), func() error {
		var names string
		if err := db.Pool.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names); err != nil {
			return err
		}
		if names != "*" {
			return fmt.Errorf("synchronous_standby_names = %q, want * (any standby; there is none)", names)
		}
		return nil
	})
	committed := make(chan error, 1)
	go func() {
		_, err := db.ApplyVotes(ctx, []surge.Vote{v("during", "dogs", 1, "during-id")})
		committed <- err
	}()
	testenv.Eventually(t, testenv.RequestBound, waitsForStandby(ctx, db))
	select {
	case err := <-committed:
		t.Fatalf("a commit returned (%v) with no standby: synchronous_mode_strict is off", err)
	default:
	}

	if err := p.StartMember(standby); err != nil {
		t.Fatal(err)
	}
	testenv.WaitStreaming(t, p, standby, "sync")
	if err := <-committed; err != nil {
		t.Fatalf("the waiting commit failed once a standby was back: %v", err)
	}
	standbyDB := testenv.PostgresClient(t, p.MemberURL(standby))
	want := map[string]int64{"cats": 1, "dogs": 1}
	testenv.Eventually(t, testenv.RequestBound, func() error { return hasCounts(ctx, standbyDB, want) })
	if log, _ := os.ReadFile(p.Members[standby].Log); !strings.Contains(string(log), "basebackup") {
		t.Errorf("%s rejoined without a base backup, though its disk was wiped", p.Members[standby].Name)
	}
}

// patroniDB starts a Patroni cluster of n members and returns a client of
// its multi-host URL, migrated and holding testPolls, and a context that
// bounds the test.
func patroniDB(t *testing.T, n int) (*launcher.Patroni, *postgres.DB, context.Context) {
	t.Helper()
	p := testenv.Patroni(t, n)
	db := testenv.PostgresClient(t, p.URL())
	// Cancelled before the pool closes: closing waits for a commit that
	// may still wait for a standby.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.EnsurePolls(ctx, testPolls); err != nil {
		t.Fatal(err)
	}
	return p, db, ctx
}

// waitsForStandby checks that a commit on db's server waits for a
// synchronous standby: committed locally, not yet acknowledged.
func waitsForStandby(ctx context.Context, db *postgres.DB) func() error {
	return func() error {
		var waiting int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&waiting); err != nil {
			return err
		}
		if waiting == 0 {
			return errors.New("no commit waits for a synchronous standby yet")
		}
		return nil
	}
}

// listenRecovery bounds the LISTEN connection's return once a new primary
// is up: its reconnection backoff (at most 5 s) and a probe interval.
const listenRecovery = 5*time.Second + 5*time.Second + testenv.RequestBound

// listener records what a Listen loop reports.
type listener struct {
	mu     sync.Mutex
	states []bool
	heard  map[string]bool
}

func listen(t *testing.T, ctx context.Context, db *postgres.DB) *listener {
	l := &listener{heard: map[string]bool{}}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, slog.New(slog.DiscardHandler), []string{postgres.NotifyChannel},
			func(_, payload string) { l.mu.Lock(); l.heard[payload] = true; l.mu.Unlock() },
			func(listening bool) { l.mu.Lock(); l.states = append(l.states, listening); l.mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// notified sends payload on the results channel until the loop has heard it.
func (l *listener) notified(ctx context.Context, db *postgres.DB, payload string) func() error {
	return func() error {
		l.mu.Lock()
		ok := l.heard[payload]
		l.mu.Unlock()
		if ok {
			return nil
		}
		if _, err := db.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", postgres.NotifyChannel, payload); err != nil {
			return err
		}
		return errors.New("not heard yet")
	}
}

// check wants the loop to have reported the loss and the return: caches
// distrust their copy in between, and reload after.
func (l *listener) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.states) < 3 || !l.states[0] || !slices.Contains(l.states, false) || !l.states[len(l.states)-1] {
		t.Errorf("listen states %v: want listening, lost, listening again", l.states)
	}
}

// hasCounts checks cats-vs-dogs's counts.
func hasCounts(ctx context.Context, db *postgres.DB, want map[string]int64) error {
	res, err := db.Results(ctx, catsPoll)
	if err != nil {
		return err
	}
	if res.Counts["cats"] != want["cats"] || res.Counts["dogs"] != want["dogs"] {
		return fmt.Errorf("counts %v, want %v", res.Counts, want)
	}
	return nil
}

// votesOf counts a voter's rows.
func votesOf(t *testing.T, ctx context.Context, db *postgres.DB, voter string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM votes WHERE voter = $1`, voter).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
