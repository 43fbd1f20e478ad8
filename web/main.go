// Command web is a capture frontend: it takes votes and appends them to its
// own shard's Redis stream.
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

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/config"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg := capture.DefaultConfig()
	fs := pflag.NewFlagSet("web", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("mode", cfg.Mode, "capture (the public frontend) or admin")
	fs.String("listen", cfg.Listen, "address to listen on")
	fs.String("node", "", "name shown on pages and receipts (default: hostname)")
	fs.String("redis.addr", cfg.Redis.Addr, "this shard's Redis")
	if err := config.Load(&cfg, fs, args, getenv); err != nil {
		return err
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, "web").With("mode", cfg.Mode)
	srv, err := capture.New(ctx, cfg, capture.Options{Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "node", cfg.Node)
	err = httpx.Serve(ctx, httpx.NewServer(srv.Handler()), ln, 10*time.Second)
	log.Info("stopped")
	return err
}
