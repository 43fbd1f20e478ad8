package drain

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/telemetry"
)

// Config is the worker service's configuration.
type Config struct {
	Name          string          `mapstructure:"name"`   // consumer name; stable across restarts; defaults to the hostname
	Listen        string          `mapstructure:"listen"` // health and metrics
	Shards        []string        `mapstructure:"shards"` // every shard's Redis address
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
	LogLevel      string          `mapstructure:"log_level"`
	// TestCrashAfterCommit is for fault-injection tests only: the chance,
	// per committed batch, that the worker SIGKILLs itself after the commit
	// and before the XACK. 0 (the default) never crashes.
	TestCrashAfterCommit float64 `mapstructure:"test_crash_after_commit"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:8070",
		Shards:        []string{"127.0.0.1:6379"},
		Stream:        redis.DefaultStream,
		Group:         "workers",
		Postgres:      postgres.Config{URL: "postgres://surge@127.0.0.1:5432/surge?sslmode=disable", MaxConns: 16},
		Polls:         surge.DefaultPolls(),
		BatchSize:     2000,
		Block:         time.Second,
		ClaimIdle:     30 * time.Second,
		TrimEvery:     10 * time.Second,
		MaxDeliveries: 5,
		FinishTimeout: 10 * time.Second,
		LogLevel:      "info",
	}
}

// RunWorker migrates the schema, stores the configured polls, and drains
// every shard until ctx ends. Each shard's batch in flight at shutdown is
// committed and acknowledged, or left pending for another worker.
func RunWorker(ctx context.Context, cfg Config, log *slog.Logger, afterCommit func([]string)) error {
	if len(cfg.Shards) == 0 {
		return fmt.Errorf("worker: no shards configured")
	}
	if afterCommit == nil && cfg.TestCrashAfterCommit > 0 {
		log.Warn("fault injection on: this worker will crash between commits and acks", "chance", cfg.TestCrashAfterCommit)
		afterCommit = CrashAfterCommit(cfg.TestCrashAfterCommit, log)
	}
	reg := telemetry.NewRegistry()
	metrics := NewMetrics(reg)

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

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	var ready sync.Map // shard -> true once draining
	r.GET("/healthz", func(c *gin.Context) {
		status := map[string]bool{}
		for _, s := range cfg.Shards {
			_, ok := ready.Load(s)
			status[s] = ok
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok", "name": cfg.Name, "shards": status})
	})
	r.GET("/metrics", telemetry.MetricsHandler(reg))
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
	for _, addr := range cfg.Shards {
		client := redis.NewClient(redis.Config{Addr: addr, Password: cfg.RedisPassword}, 4)
		q := &redis.Consumer{Client: client, Stream: cfg.Stream, Group: cfg.Group, Name: cfg.Name}
		shard := NewShard(q, db, Options{
			Shard: addr, BatchSize: cfg.BatchSize, Block: cfg.Block, ClaimIdle: cfg.ClaimIdle,
			ClaimEvery: cfg.ClaimEvery, TrimEvery: cfg.TrimEvery, MaxDeliveries: cfg.MaxDeliveries,
			FinishTimeout: cfg.FinishTimeout, Logger: log, Metrics: metrics, AfterCommit: afterCommit,
		})
		wg.Go(func() {
			defer client.Close()
			ready.Store(addr, true)
			shard.Run(ctx)
		})
	}
	log.Info("draining", "shards", cfg.Shards, "consumer", cfg.Name)
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
