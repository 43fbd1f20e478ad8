package main

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/status"
	"github.com/surge-vote/surge/internal/surge"
)

// backlog is the drain's input: votes from voters of whom some vote again
// (a later version, another choice), and the counts they must end in.
type backlog struct {
	votes  []surge.Vote
	fields [][]any
	voters int
	counts map[string]int64 // per choice, the latest vote of each voter
}

func makeBacklog(n int) (*backlog, error) {
	b := &backlog{votes: make([]surge.Vote, n), fields: make([][]any, n), voters: n * 7 / 10}
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	base := at.UnixMicro()
	latest := make([]string, b.voters)
	choices := []string{"cats", "dogs"}
	for i := range n {
		voter := i
		choice := choices[rng.IntN(2)]
		if i >= b.voters { // a change of an earlier voter's vote
			voter = rng.IntN(b.voters)
			if latest[voter] == "cats" {
				choice = "dogs"
			} else {
				choice = "cats"
			}
		}
		latest[voter] = choice
		v := surge.Vote{ID: ulid.Make().String(), Poll: surge.DefaultPollID, Choice: choice,
			Voter: fmt.Sprintf("%032x", voter), Version: base + int64(i), Node: "bench", At: at}
		b.votes[i], b.fields[i] = v, surge.EncodeVote(v)
	}
	b.counts = map[string]int64{}
	for _, c := range latest {
		b.counts[c]++
	}
	return b, nil
}

// benchDrain: the workers drain a pre-filled backlog across the shards into
// Postgres; the same rows go in by COPY into a staging table and one merge,
// and by a one-row-per-statement upsert loop. All against one Postgres
// (synchronous commit), in fresh databases.
func benchDrain(ctx context.Context, o options, res *Results) error {
	const shards, workers = 2, 2
	say(o, "  generating %d votes...", o.votes)
	b, err := makeBacklog(o.votes)
	if err != nil {
		return err
	}
	d := &res.Drain
	d.Votes, d.Voters, d.Shards, d.Workers, d.DroppedFK = o.votes, b.voters, shards, workers, o.dropFK
	d.BatchSize = "default (500)"
	if o.drainBatch > 0 {
		d.BatchSize = strconv.Itoa(o.drainBatch)
	}

	db, err := startStore(ctx, o, "drain-postgres")
	if err != nil {
		return err
	}
	defer db.stop()

	var prefill, work, copyMerge, copyOnly, mergeOnly, naive8, naive1 []float64
	cpuWork, cpuCopy := map[string][]float64{}, map[string][]float64{}
	perVote := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(len(b.votes)) }
	d.CheckedOut = true
	for round := range o.rounds {
		// 1. The workers, from a backlog spread over the shards.
		run, err := drainWorkers(ctx, o, db, fmt.Sprintf("drain_%d", round+1), b, shards, workers, 1)
		if err != nil {
			return err
		}
		for k, v := range run.cpu {
			cpuWork[k] = append(cpuWork[k], perVote(v))
		}
		prefill, work = append(prefill, run.prefill), append(work, run.votesPerSecond(b))
		if run.counts != "" {
			d.CheckedOut = false
			res.Notes = append(res.Notes, fmt.Sprintf("drain round %d: the counts differ from the backlog: %s", round+1, run.counts))
		}
		say(o, "  drain round %d: prefill %.0f/s; workers %.0f votes/s (%s for %d votes)", round+1, prefill[round], work[round], run.took.Round(time.Millisecond), len(b.votes))

		// 2. The same rows by COPY into a staging table and one merge.
		name := fmt.Sprintf("copy_%d", round+1)
		url, err := db.fresh(ctx, name)
		if err != nil {
			return err
		}
		pgBefore, selfBefore := procCPU(db.pg.Pid(), true), selfCPU()
		cp, mg, err := copyAndMerge(ctx, url, b)
		if err != nil {
			return err
		}
		clientCPU := selfCPU() - selfBefore
		cpuCopy["postgres"] = append(cpuCopy["postgres"], perVote(procCPU(db.pg.Pid(), true)-pgBefore))
		cpuCopy["client"] = append(cpuCopy["client"], perVote(clientCPU))
		if ok, why := checkCounts(ctx, url, b); !ok {
			d.CheckedOut = false
			res.Notes = append(res.Notes, fmt.Sprintf("drain, COPY + merge round %d: the counts differ from the backlog: %s", round+1, why))
		}
		db.drop(ctx, name)
		n := float64(len(b.votes))
		copyMerge = append(copyMerge, n/(cp+mg).Seconds())
		copyOnly, mergeOnly = append(copyOnly, n/cp.Seconds()), append(mergeOnly, n/mg.Seconds())
		say(o, "  drain round %d: COPY + merge %.0f rows/s (COPY %s, merge %s)", round+1, copyMerge[round], cp.Round(time.Millisecond), mg.Round(time.Millisecond))

		// 3. The naive way: one upsert statement per row, autocommit.
		for _, clients := range []int{8, 1} {
			name = fmt.Sprintf("naive_%d_%d", clients, round+1)
			if url, err = db.fresh(ctx, name); err != nil {
				return err
			}
			rate, err := naiveUpserts(ctx, url, b, clients, 4*time.Second)
			if err != nil {
				return err
			}
			db.drop(ctx, name)
			if clients == 8 {
				naive8 = append(naive8, rate)
			} else {
				naive1 = append(naive1, rate)
			}
			say(o, "  drain round %d: one-row upserts, %d clients: %.0f rows/s", round+1, clients, rate)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	d.Prefill, d.Worker = figure("/s", prefill), figure("votes/s", work)
	d.CopyMerge, d.CopyOnly, d.MergeOnly = figure("rows/s", copyMerge), figure("rows/s", copyOnly), figure("rows/s", mergeOnly)
	d.Naive, d.Naive1 = figure("rows/s", naive8), figure("rows/s", naive1)
	d.CPUWorkers, d.CPUCopy = figures("µs", cpuWork), figures("µs", cpuCopy)
	return nil
}

// store is a drain phase's Postgres (synchronous commit): one cluster, a
// fresh migrated database for each measurement.
type store struct {
	pg       *launcher.Postgres
	adminURL string
	dropFK   bool
}

// startStore starts the cluster in o.dir/dir.
func startStore(ctx context.Context, o options, dir string) (*store, error) {
	dir = filepath.Join(o.dir, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := launcher.FreePort()
	if err != nil {
		return nil, err
	}
	pg, err := launcher.StartPostgres(ctx, filepath.Join(dir, "data"), port)
	if err != nil {
		return nil, err
	}
	return &store{pg: pg, adminURL: fmt.Sprintf("postgres://surge@127.0.0.1:%d/postgres?sslmode=disable", pg.Port), dropFK: o.dropFK}, nil
}

func (s *store) stop() { s.pg.Stop(30 * time.Second) }

// fresh (re)creates database name with surge's schema and default polls,
// and returns its URL.
func (s *store) fresh(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	url := fmt.Sprintf("postgres://surge@127.0.0.1:%d/%s?sslmode=disable", s.pg.Port, name)
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return "", err
	}
	if s.dropFK { // diagnosis only: what the per-row foreign key to the counter rows costs
		if _, err := db.Pool.Exec(ctx, `DO $$DECLARE c text; BEGIN
			FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'votes'::regclass AND contype = 'f' LOOP
				EXECUTE format('ALTER TABLE votes DROP CONSTRAINT %I', c);
			END LOOP; END$$`); err != nil {
			return "", err
		}
	}
	return url, db.EnsurePolls(ctx, surge.DefaultPolls())
}

func (s *store) drop(ctx context.Context, name string) {
	if conn, err := pgx.Connect(ctx, s.adminURL); err == nil {
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(ctx)
	}
}

// workersRun is one drain by the worker processes.
type workersRun struct {
	took    time.Duration            // from the workers' start until every entry is acknowledged
	prefill float64                  // entries written to the shards per second, before
	cpu     map[string]time.Duration // by process: worker, redis, postgres
	// Entries the workers committed, and copies they acknowledged without
	// a trip to Postgres (their event was committed from another copy).
	applied, skipped float64
	counts           string // how the counts differ from the backlog's; "" if they do not
}

func (r workersRun) votesPerSecond(b *backlog) float64 {
	return float64(len(b.votes)) / r.took.Seconds()
}

// drainWorkers writes b's votes to shards fresh Redis shards, each vote to
// copies of them, then starts workers worker processes (default settings
// but o.drainBatch) on a fresh database, name, and times them until every
// entry is acknowledged; it then checks the counts.
func drainWorkers(ctx context.Context, o options, db *store, name string, b *backlog, shards, workers, copies int) (workersRun, error) {
	var run workersRun
	var rs procs
	defer func() {
		rs.stop()
		for s := range shards { // their AOFs are as large as the backlog
			os.RemoveAll(filepath.Join(o.dir, fmt.Sprintf("%s-redis-%d", name, s+1)))
		}
	}()
	var addrs []string
	var redisPids []int
	var clients []*goredis.Client
	for s := range shards {
		r, err := startRedis(ctx, o, &rs, fmt.Sprintf("%s-redis-%d", name, s+1))
		if err != nil {
			return run, err
		}
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
		defer c.Close()
		addrs, redisPids, clients = append(addrs, r.Addr), append(redisPids, r.Pid()), append(clients, c)
	}
	t := time.Now()
	if err := fill(ctx, clients, b.fields, copies); err != nil {
		return run, err
	}
	run.prefill = float64(len(b.fields)*copies) / time.Since(t).Seconds()
	url, err := db.fresh(ctx, name)
	if err != nil {
		return run, err
	}
	defer db.drop(ctx, name)
	env := []string{"SURGE_SHARDS=" + strings.Join(addrs, ","), "SURGE_POSTGRES_URL=" + url, "SURGE_LOG_LEVEL=warn"}
	if o.drainBatch > 0 {
		env = append(env, "SURGE_BATCH_SIZE="+strconv.Itoa(o.drainBatch))
	}
	pgBefore, redisBefore := procCPU(db.pg.Pid(), true), sumCPU(redisPids)
	start := time.Now()
	var ws procs
	defer ws.stop()
	var listen []string
	var workerPids []int
	for w := range workers {
		port, err := launcher.FreePort()
		if err != nil {
			return run, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := launcher.StartProc(launcher.ProcSpec{Name: fmt.Sprintf("%s-worker-%d", name, w+1), Path: filepath.Join(o.bin, "worker"),
			Env: append([]string{"SURGE_LISTEN=" + addr, "SURGE_NAME=" + fmt.Sprintf("worker-%d", w+1)}, env...),
			Log: filepath.Join(o.dir, "logs", fmt.Sprintf("%s-worker-%d.log", name, w+1))})
		if err != nil {
			return run, err
		}
		ws.add(p)
		listen, workerPids = append(listen, addr), append(workerPids, p.Pid())
	}
	err = waitDrained(ctx, clients, len(b.fields)*copies, 10*time.Minute)
	run.took = time.Since(start)
	run.cpu = map[string]time.Duration{"worker": sumCPU(workerPids), "redis": sumCPU(redisPids) - redisBefore}
	if err != nil {
		return run, err
	}
	rep := status.Gather(ctx, http.DefaultClient, status.Targets{Workers: listen}, 3*time.Second)
	for _, s := range rep.Services {
		run.applied += s.Sum("surge_worker_entries_applied_total")
		run.skipped += s.Sum("surge_worker_copies_skipped_total")
	}
	backends, err := backendPids(ctx, db.adminURL, name)
	if err != nil {
		return run, err
	}
	ws.stop()
	// The workers' backends count in the postmaster's CPU once reaped.
	if err := reaped(ctx, backends...); err != nil {
		return run, err
	}
	run.cpu["postgres"] = procCPU(db.pg.Pid(), true) - pgBefore
	if ok, why := checkCounts(ctx, url, b); !ok {
		run.counts = why
	}
	return run, nil
}

// sumCPU is the CPU time the processes have used, together.
func sumCPU(pids []int) time.Duration {
	var t time.Duration
	for _, p := range pids {
		t += procCPU(p, false)
	}
	return t
}

// fill appends each entry to copies consecutive shards of the ring, entry i
// from shard i mod n on (as package copies writes a vote from its
// frontend's shard on, so an entry's copies sit at about the same place in
// their streams), 1,000 per pipeline, the shards in parallel.
func fill(ctx context.Context, clients []*goredis.Client, fields [][]any, copies int) error {
	n := len(clients)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for s, c := range clients {
		wg.Go(func() {
			pipe := c.Pipeline()
			for i := range fields {
				if (s-i%n+n)%n >= copies {
					continue
				}
				pipe.XAdd(ctx, &goredis.XAddArgs{Stream: redis.DefaultStream, Values: fields[i]})
				if pipe.Len() == 1000 {
					if _, err := pipe.Exec(ctx); err != nil {
						errs[s] = err
						return
					}
				}
			}
			if pipe.Len() > 0 {
				if _, err := pipe.Exec(ctx); err != nil {
					errs[s] = err
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// waitDrained waits until the group has delivered and acknowledged every
// entry on every shard.
func waitDrained(ctx context.Context, clients []*goredis.Client, entries int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	shards := redis.Shards{Clients: clients, Stream: redis.DefaultStream, Group: "workers"}
	for {
		bl, err := shards.Backlog(ctx)
		if err == nil && len(bl) == len(clients) {
			drained := true
			for _, s := range bl {
				// Before the workers create the group, the backlog reads as
				// empty: also require the group to have delivered entries.
				drained = drained && s.Drained()
			}
			if drained && delivered(ctx, clients) >= int64(entries) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %w (last: %v %v)", ctx.Err(), bl, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backendPids lists the client backends connected to database db.
func backendPids(ctx context.Context, adminURL, db string) ([]int, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, db)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("backends of %s: %w", db, err)
	}
	return pids, nil
}

// reaped waits until the backends pids have exited and the postmaster has
// reaped them: only then is their CPU time in its children's (cutime). A
// backend exits as soon as its client hangs up; 10 s is room for a loaded
// machine.
func reaped(ctx context.Context, pids ...int) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 5*time.Millisecond, 100*time.Millisecond
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		for _, pid := range pids {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil { // a zombie is still there
				return struct{}{}, fmt.Errorf("backend %d not reaped", pid)
			}
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(10*time.Second))
	return err
}

// delivered sums the entries the group has read on every shard.
func delivered(ctx context.Context, clients []*goredis.Client) int64 {
	var n int64
	for _, c := range clients {
		groups, err := c.XInfoGroups(ctx, redis.DefaultStream).Result()
		if err != nil {
			return 0
		}
		for _, g := range groups {
			if g.Name == "workers" {
				n += g.EntriesRead
			}
		}
	}
	return n
}

// checkCounts compares the poll's counts and vote rows with the backlog's
// latest vote per voter.
func checkCounts(ctx context.Context, url string, b *backlog) (bool, string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close(ctx)
	var rows int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM votes WHERE poll = $1`, surge.DefaultPollID).Scan(&rows); err != nil {
		return false, err.Error()
	}
	if rows != int64(b.voters) {
		return false, fmt.Sprintf("%d vote rows, want %d voters", rows, b.voters)
	}
	for choice, want := range b.counts {
		var got, rowsFor int64
		if err := conn.QueryRow(ctx, `SELECT votes FROM option_counts WHERE poll = $1 AND option = $2`, surge.DefaultPollID, choice).Scan(&got); err != nil {
			return false, err.Error()
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM votes WHERE poll = $1 AND choice = $2`, surge.DefaultPollID, choice).Scan(&rowsFor); err != nil {
			return false, err.Error()
		}
		if got != want || rowsFor != want {
			return false, fmt.Sprintf("%s: count %d, rows %d, want %d", choice, got, rowsFor, want)
		}
	}
	return true, ""
}

// copyAndMerge loads every vote with COPY into a temporary staging table,
// then merges it into votes (the latest per voter wins) and recounts the
// options, in one transaction with synchronous commit.
func copyAndMerge(ctx context.Context, url string, b *backlog) (copyTook, mergeTook time.Duration, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		pid := int(conn.PgConn().PID())
		conn.Close(ctx)
		// Return once the backend's CPU counts in the postmaster's.
		if rerr := reaped(ctx, pid); err == nil {
			err = rerr
		}
	}()
	// The staging table lives in this session's buffers, not the WAL.
	if _, err := conn.Exec(ctx, `SET temp_buffers = '512MB'`); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE staging (poll text, voter text, choice text, version bigint,
		event_id text, node text, cast_at timestamptz) ON COMMIT DROP`); err != nil {
		return 0, 0, err
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"staging"}, []string{"poll", "voter", "choice", "version", "event_id", "node", "cast_at"},
		pgx.CopyFromSlice(len(b.votes), func(i int) ([]any, error) {
			v := &b.votes[i]
			return []any{v.Poll, v.Voter, v.Choice, v.Version, v.ID, v.Node, v.At}, nil
		}))
	if err != nil {
		return 0, 0, err
	}
	if n != int64(len(b.votes)) {
		return 0, 0, fmt.Errorf("copied %d rows of %d", n, len(b.votes))
	}
	copyTook = time.Since(start)
	start = time.Now()
	if _, err := tx.Exec(ctx, `
		INSERT INTO votes (poll, voter, choice, version, event_id, node, cast_at)
		SELECT DISTINCT ON (poll, voter) poll, voter, choice, version, event_id, node, cast_at
		FROM staging ORDER BY poll, voter, version DESC, event_id DESC
		ON CONFLICT (poll, voter) DO UPDATE SET choice = excluded.choice, version = excluded.version,
			event_id = excluded.event_id, node = excluded.node, cast_at = excluded.cast_at, committed_at = now()
		WHERE (excluded.version, excluded.event_id) > (votes.version, votes.event_id)`); err != nil {
		return 0, 0, fmt.Errorf("merge: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE option_counts o SET votes = coalesce(c.n, 0)
		FROM option_counts p LEFT JOIN (SELECT poll, choice, count(*) AS n FROM votes GROUP BY poll, choice) c
			ON c.poll = p.poll AND c.choice = p.option
		WHERE o.poll = p.poll AND o.option = p.option AND o.poll IN (SELECT DISTINCT poll FROM staging)`); err != nil {
		return 0, 0, fmt.Errorf("recount: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, err
	}
	return copyTook, time.Since(start), nil
}

// naiveUpserts sends one upsert statement per vote, each its own
// transaction, from the given number of clients, for a while; rows/s.
func naiveUpserts(ctx context.Context, url string, b *backlog, clients int, d time.Duration) (float64, error) {
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns="+strconv.Itoa(clients))
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return 0, err
	}
	var next, done atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(b.votes)) {
					return
				}
				v := &b.votes[i]
				_, err := pool.Exec(ctx, `
					INSERT INTO votes (poll, voter, choice, version, event_id, node, cast_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
					ON CONFLICT (poll, voter) DO UPDATE SET choice = excluded.choice, version = excluded.version,
						event_id = excluded.event_id, node = excluded.node, cast_at = excluded.cast_at, committed_at = now()
					WHERE (excluded.version, excluded.event_id) > (votes.version, votes.event_id)`,
					v.Poll, v.Voter, v.Choice, v.Version, v.ID, v.Node, v.At)
				if err != nil {
					errMu.Lock()
					firstErr = cmp.Or(firstErr, err)
					errMu.Unlock()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("naive upsert: %w", firstErr)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}
