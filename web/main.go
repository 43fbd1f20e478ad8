// Command web is the public frontend (--mode capture, the default: it takes
// votes and orders and appends them to its own shard's Redis stream) or the
// admin service (--mode admin: the catalogue and polls, behind /admin).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/config"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/profiling"
	"github.com/surge-vote/surge/internal/telemetry"
)

// Modes of the web binary.
const (
	modeCapture = "capture" // the public frontend: votes, orders, catalogue
	modeAdmin   = "admin"   // the admin service behind /admin
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

// server is what either mode serves.
type server interface {
	Handler() http.Handler
	Close()
}

// common are the settings both modes have.
type common struct{ listen, debugListen, node, logLevel string }

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	mode, err := loadMode(args, getenv)
	if err != nil {
		return err
	}
	var c common
	var start func(*slog.Logger) (server, error)
	switch mode {
	case modeCapture:
		cfg := capture.DefaultConfig()
		fs := flags(mode, cfg.Listen, stderr)
		fs.String("redis.addr", cfg.Redis.Addr, "this shard's Redis")
		if err := config.Load(&cfg, fs, args, getenv); err != nil {
			return err
		}
		cfg.Node = nodeName(cfg.Node)
		c = common{cfg.Listen, cfg.DebugListen, cfg.Node, cfg.LogLevel}
		start = func(log *slog.Logger) (server, error) { return capture.New(ctx, cfg, capture.Options{Logger: log}) }
	case modeAdmin:
		cfg := admin.DefaultConfig()
		if err := config.Load(&cfg, flags(mode, cfg.Listen, stderr), args, getenv); err != nil {
			return err
		}
		cfg.Node = nodeName(cfg.Node)
		c = common{cfg.Listen, cfg.DebugListen, cfg.Node, cfg.LogLevel}
		start = func(log *slog.Logger) (server, error) { return admin.New(ctx, cfg, admin.Options{Logger: log}) }
	default:
		return fmt.Errorf("mode %q is neither %q (the public frontend) nor %q (SURGE_MODE or --mode)", mode, modeCapture, modeAdmin)
	}
	log := telemetry.NewLogger(stderr, c.logLevel, "web").With("mode", mode)
	if err := profiling.Start(ctx, c.debugListen, log); err != nil {
		return err
	}
	srv, err := start(log)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "node", c.node)
	err = httpx.Serve(ctx, httpx.NewServer(srv.Handler()), ln, 10*time.Second)
	log.Info("stopped")
	return err
}

// flags are the flags both modes take; --mode is read first (loadMode),
// and again here so that it is known to the mode's own flags.
func flags(mode, listen string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("web", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("mode", mode, "capture (the public frontend) or admin")
	fs.String("listen", listen, "address to listen on")
	fs.String("node", "", "name shown on pages and receipts (default: hostname)")
	return fs
}

// loadMode reads the mode alone, from the same sources as the rest (--mode,
// SURGE_MODE, the file), before the mode's own configuration is loaded.
func loadMode(args []string, getenv func(string) string) (string, error) {
	sel := struct {
		Mode string `mapstructure:"mode"`
	}{Mode: modeCapture}
	fs := flags(modeCapture, "", io.Discard)
	fs.ParseErrorsAllowlist.UnknownFlags = true // the mode's own flags, read later
	if err := config.Load(&sel, fs, args, getenv); err != nil && !errors.Is(err, pflag.ErrHelp) {
		return "", err
	}
	return sel.Mode, nil
}

// nodeName is the configured node name, or the hostname.
func nodeName(node string) string {
	if node == "" {
		node, _ = os.Hostname()
	}
	return node
}
