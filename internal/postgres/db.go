// Package postgres is the store: it wraps a pgx pool and holds the schema
// migrations, the vote application and the result queries.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"golang.org/x/sys/unix"

	"github.com/surge-vote/surge/internal/surge"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// NotifyChannel is the LISTEN/NOTIFY channel on which every commit that
// changes a poll's counts announces the poll id.
const NotifyChannel = "surge_results"

// Config locates the database.
type Config struct {
	URL      string `mapstructure:"url"`      // postgres://user@host:port/db; the password may be given apart
	Password string `mapstructure:"password"` // secret; usually from POSTGRES_PASSWORD_FILE
	MaxConns int32  `mapstructure:"max_conns"`
}

// DB is the store.
type DB struct {
	Pool *pgxpool.Pool

	mu      sync.Mutex
	options map[string]map[string]bool // poll -> known options; options never go away
}

// Open connects to Postgres. It does not wait for the server to be up.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if cfg.Password != "" {
		pc.ConnConfig.Password = cfg.Password
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pc.ConnConfig.DialFunc = deadPeerDialer().DialContext
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return &DB{Pool: pool}, nil
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Ping checks that the database answers; its error says it is Postgres,
// as health checks report it.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// WaitReady pings until the database answers or ctx ends.
func (db *DB) WaitReady(ctx context.Context) error {
	for {
		err := db.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Migrate applies the embedded migrations. tern holds a Postgres advisory
// lock while it works, so replicas that start at once apply them once.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "public.schema_version")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// IsTransient reports whether err may go away on retry: the database is down
// or unreachable, or the transaction lost a deadlock or serialization race.
// Any other error is a property of the data and will repeat.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"40", // transaction rollback: serialization failure, deadlock
			"53", // insufficient resources
			"57", // operator intervention: admin shutdown, cannot connect now
			"58": // system error
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	// pgx reports a closed or broken connection with plain errors.
	return errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, net.ErrClosed)
}

// EnsurePolls stores the given polls and their options if they are missing.
// Existing polls keep their counts; new options are added.
func (db *DB) EnsurePolls(ctx context.Context, polls []surge.Poll) error {
	for _, p := range polls {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("ensure poll %s: %w", p.ID, err)
		}
	}
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for _, p := range polls {
			if _, err := tx.Exec(ctx,
				`INSERT INTO polls (id, title, opens_at, closes_at, accounts_only) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
				p.ID, p.Title, p.OpensAt, p.ClosesAt, p.AccountsOnly); err != nil {
				return fmt.Errorf("ensure poll %s: %w", p.ID, err)
			}
			for i, o := range p.Options {
				if _, err := tx.Exec(ctx,
					`INSERT INTO poll_options (poll, option, position) VALUES ($1, $2, $3)
					 ON CONFLICT (poll, option) DO NOTHING`, p.ID, o, i); err != nil {
					return fmt.Errorf("ensure poll %s option %s: %w", p.ID, o, err)
				}
				if _, err := tx.Exec(ctx,
					`INSERT INTO option_counts (poll, option) VALUES ($1, $2) ON CONFLICT (poll, option) DO NOTHING`,
					p.ID, o); err != nil {
					return fmt.Errorf("ensure poll %s option %s: %w", p.ID, o, err)
				}
			}
		}
		return nil
	})
}

// Polls returns every stored poll with its options in order.
func (db *DB) Polls(ctx context.Context) ([]surge.Poll, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT p.id, p.title, array_agg(o.option ORDER BY o.position, o.option), p.opens_at, p.closes_at, p.accounts_only
		FROM polls p JOIN poll_options o ON o.poll = p.id
		GROUP BY p.id ORDER BY p.id`)
	if err != nil {
		return nil, fmt.Errorf("list polls: %w", err)
	}
	polls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.Poll, error) {
		var p surge.Poll
		err := r.Scan(&p.ID, &p.Title, &p.Options, &p.OpensAt, &p.ClosesAt, &p.AccountsOnly)
		return p.UTC(), err
	})
	if err != nil {
		return nil, fmt.Errorf("list polls: %w", err)
	}
	return polls, nil
}

// Results returns the counts of one poll with the commit sequence and time
// they are at, read together. An unknown poll is ENOTFOUND.
func (db *DB) Results(ctx context.Context, poll string) (surge.Results, error) {
	rows, err := db.Pool.Query(ctx,
		`SELECT o.option, c.votes, p.counts_seq, coalesce(p.counts_at, p.created_at)
		 FROM polls p JOIN poll_options o ON o.poll = p.id JOIN option_counts c USING (poll, option)
		 WHERE p.id = $1 ORDER BY o.position, o.option`, poll)
	if err != nil {
		return surge.Results{}, fmt.Errorf("results %s: %w", poll, err)
	}
	res := surge.Results{Poll: poll, Counts: map[string]int64{}}
	var option string
	var votes int64
	_, err = pgx.ForEachRow(rows, []any{&option, &votes, &res.Seq, &res.UpdatedAt}, func() error {
		res.Counts[option] = votes
		res.Total += votes
		return nil
	})
	if err != nil {
		return surge.Results{}, fmt.Errorf("results %s: %w", poll, err)
	}
	if len(res.Counts) == 0 {
		return surge.Results{}, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", poll)
	}
	res.UpdatedAt = res.UpdatedAt.UTC()
	return res, nil
}

// Watermarks returns each poll's commit sequence: results read at or past
// it include every vote committed before this call.
func (db *DB) Watermarks(ctx context.Context) (map[string]int64, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, counts_seq FROM polls`)
	if err != nil {
		return nil, fmt.Errorf("commit sequences: %w", err)
	}
	seqs := map[string]int64{}
	var poll string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&poll, &seq}, func() error {
		seqs[poll] = seq
		return nil
	}); err != nil {
		return nil, fmt.Errorf("commit sequences: %w", err)
	}
	return seqs, nil
}

// deadPeerDialer dials connections that notice a vanished server within
// seconds: a Postgres container replaced on another address answers
// nothing, neither FIN nor RST, and pgx's default (keepalive after 5 min)
// left every pooled connection hanging each query until its timeout.
// Keepalive probes an idle connection after 5 s of quiet, and
// TCP_USER_TIMEOUT drops one whose data or probes go unacknowledged for
// 10 s.
func deadPeerDialer() *net.Dialer {
	return &net.Dialer{
		Timeout:         10 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control: func(network, address string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil // a Unix socket has no peer to lose
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 10000)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}
