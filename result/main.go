// Command result serves poll results.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/surge-vote/surge/internal/config"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/profiling"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "result:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg := results.DefaultConfig()
	fs := pflag.NewFlagSet("result", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("listen", cfg.Listen, "address to listen on")
	fs.String("node", "", "name shown on pages (default: hostname)")
	fs.String("postgres.url", cfg.Postgres.URL, "Postgres URL")
	fs.StringSlice("shards", cfg.Shards, "every shard's Redis address (for pending orders)")
	if err := config.Load(&cfg, fs, args, getenv); err != nil {
		return err
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, "result")
	if err := profiling.Start(ctx, cfg.DebugListen, log); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.WaitReady(ctx); err != nil {
		return nil // shut down while waiting
	}
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	if err := db.EnsurePolls(ctx, cfg.Polls); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "node", cfg.Node)
	markers := redis.Shards{Stream: cfg.Stream, Group: cfg.Group}
	for _, addr := range cfg.Shards {
		c := redis.NewClient(redis.Config{Addr: addr, Password: cfg.RedisPassword}, 4)
		defer c.Close()
		markers.Clients = append(markers.Clients, c)
	}
	live := results.NewLive(db, log, cfg.PushInterval)
	live.MaxSubscribers = cfg.MaxStreams
	go live.Run(ctx, db)
	err = httpx.Serve(ctx, httpx.NewServer(results.New(cfg.Node, db, markers, live, log).Handler()), ln, 10*time.Second)
	<-live.Done()
	log.Info("stopped")
	return err
}
