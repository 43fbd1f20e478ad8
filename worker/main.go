// Command worker drains every shard's stream into Postgres.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/surge-vote/surge/internal/config"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/profiling"
	"github.com/surge-vote/surge/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg := drain.DefaultConfig()
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("name", "", "consumer name, stable across restarts (default: hostname)")
	fs.String("listen", cfg.Listen, "address for /healthz and /metrics")
	fs.StringSlice("shards", cfg.Shards, "every shard's Redis address")
	fs.String("postgres.url", cfg.Postgres.URL, "Postgres URL")
	if err := config.Load(&cfg, fs, args, getenv); err != nil {
		return err
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, "worker")
	if err := profiling.Start(ctx, cfg.DebugListen, log); err != nil {
		return err
	}
	return drain.RunWorker(ctx, cfg, log, nil)
}
