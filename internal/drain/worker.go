package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
)

// Config is the worker service's configuration.
type Config struct {
	Name          string          `mapstructure:"name"`         // consumer name; stable across restarts; defaults to the hostname
	Listen        string          `mapstructure:"listen"`       // health and metrics
	DebugListen   string          `mapstructure:"debug_listen"` // Go's profiles, loopback only; "": off (package profiling)
	Shards        []string        `mapstructure:"shards"`       // every shard's Redis address
	RedisPassword string          `mapstructure:"redis_password"`
	Stream        string          `mapstructure:"stream"`
	Group         string          `mapstructure:"group"`
	Postgres      postgres.Config `mapstructure:"postgres"`
	Polls         []surge.Poll    `mapstructure:"polls"`
	BatchSize     int64           `mapstructure:"batch_size"`
	Block         time.Duration   `mapstructure:"block"`
	ClaimIdle     time.Duration   `mapstructure:"claim_idle"`
	ClaimEvery    time.Duration   `mapstructure:"claim_every"`
	TrimEvery     time.Duration   `mapstructure:"trim_every"`
	MaxDeliveries int64           `mapstructure:"max_deliveries"`
	FinishTimeout time.Duration   `mapstructure:"finish_timeout"`
	// UnhealthyAfter is how long a shard may stay unreadable, or stalled
	// with entries waiting, before /healthz fails.
	UnhealthyAfter time.Duration `mapstructure:"unhealthy_after"`
	LogLevel       string        `mapstructure:"log_level"`
	// TestCrashAfterCommit is for fault-injection tests only: the chance,
	// per committed batch, that the worker SIGKILLs itself after the commit
	// and before the XACK. 0 (the default) never crashes.
	TestCrashAfterCommit float64 `mapstructure:"test_crash_after_commit"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8070",
		Shards:         []string{"127.0.0.1:6379"},
		Stream:         redis.DefaultStream,
		Group:          "workers",
		Postgres:       postgres.Config{URL: "postgres://surge@127.0.0.1:5432/surge?sslmode=disable", MaxConns: 16},
		Polls:          surge.DefaultPolls(),
		BatchSize:      2000,
		Block:          time.Second,
		ClaimIdle:      30 * time.Second,
		TrimEvery:      10 * time.Second,
		MaxDeliveries:  5,
		FinishTimeout:  10 * time.Second,
		UnhealthyAfter: DefaultUnhealthyAfter,
		LogLevel:       "info",
	}
}

// Validate reports settings the worker cannot run with.
func (c Config) Validate() error {
	if len(c.Shards) == 0 {
		return errors.New("worker: no shards configured")
	}
	// An idle read returns every Block; a shorter bound would call a
	// healthy, idle worker stalled.
	if c.UnhealthyAfter <= c.Block {
		return fmt.Errorf("worker: unhealthy_after (%s) must be longer than block (%s)", c.UnhealthyAfter, c.Block)
	}
	return nil
}

// RunWorker migrates the schema, stores the configured polls, and drains
// every shard until ctx ends. Each shard's batch in flight at shutdown is
// committed and acknowledged, or left pending for another worker.
func RunWorker(ctx context.Context, cfg Config, log *slog.Logger, afterCommit func([]string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log = log.With("consumer", cfg.Name) // on every line, once
	if afterCommit == nil && cfg.TestCrashAfterCommit > 0 {
		log.Warn("fault injection on: this worker will crash between commits and acks", "chance", cfg.TestCrashAfterCommit)
		afterCommit = CrashAfterCommit(cfg.TestCrashAfterCommit, log)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("worker: listen: %w", err)
	}
	db, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		ln.Close()
		return err
	}
	defer db.Close()

	// The shards exist before they run so that health can say, from the
	// start, that they are not draining yet.
	queues := make([]*redis.Consumer, len(cfg.Shards))
	readers := make([]BacklogReader, len(cfg.Shards))
	for i, addr := range cfg.Shards {
		client := redis.NewClient(redis.Config{Addr: addr, Password: cfg.RedisPassword}, 4)
		defer client.Close()
		queues[i] = &redis.Consumer{Client: client, Stream: cfg.Stream, Group: cfg.Group, Name: cfg.Name}
		readers[i] = queues[i]
	}
	reg, metrics := NewRegistry(readers)
	shards := make([]*Shard, len(cfg.Shards))
	applied := NewApplied(DefaultApplied) // one for all shards: an entry's copies are on two
	for i, q := range queues {
		// Metrics and health name a shard by its number: its address is
		// nobody's business outside. The log keeps it, for the operator.
		shards[i] = NewShard(q, db, Options{
			Shard: strconv.Itoa(i + 1), Logger: log.With("addr", cfg.Shards[i]), BatchSize: cfg.BatchSize, Block: cfg.Block, ClaimIdle: cfg.ClaimIdle,
			ClaimEvery: cfg.ClaimEvery, TrimEvery: cfg.TrimEvery, MaxDeliveries: cfg.MaxDeliveries,
			FinishTimeout: cfg.FinishTimeout, UnhealthyAfter: cfg.UnhealthyAfter, Metrics: metrics,
			AfterCommit: afterCommit, Applied: applied,
		})
	}
	r, err := httpx.NewEngine(httpx.EngineOptions{Service: "worker", Node: cfg.Name, Log: log, Registry: reg,
		Health: healthOf(db.Ping, shards)})
	if err != nil {
		ln.Close()
		return err
	}
	srv := httpx.NewServer(r)
	srvDone := make(chan error, 1)
	sctx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	go func() { srvDone <- httpx.Serve(sctx, srv, ln, 5*time.Second) }()
	log.Info("listening", "addr", ln.Addr().String())

	if err := db.WaitReady(ctx); err != nil {
		stopServer()
		<-srvDone
		return nil // shut down while waiting
	}
	if err := db.Migrate(ctx); err != nil {
		stopServer()
		<-srvDone
		return fmt.Errorf("worker: %w", err)
	}
	if err := db.EnsurePolls(ctx, cfg.Polls); err != nil {
		stopServer()
		<-srvDone
		return fmt.Errorf("worker: %w", err)
	}

	var wg sync.WaitGroup
	for _, shard := range shards {
		wg.Go(func() { shard.Run(ctx) })
	}
	log.Info("draining", "shards", cfg.Shards)
	wg.Wait()
	stopServer()
	if err := <-srvDone; err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// CrashAfterCommit returns a hook that, with the given chance per batch,
// kills the process with SIGKILL between the commit and the XACK: the crash
// point that exactly-once application must survive.
func CrashAfterCommit(chance float64, log *slog.Logger) func([]string) {
	return func(ids []string) {
		if rand.Float64() < chance {
			log.Warn("fault injection: crashing after commit, before ack", "entries", len(ids))
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
