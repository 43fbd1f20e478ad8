// Package profiling serves Go's runtime profiles (net/http/pprof) on a
// listener of their own, for finding where a service's CPU and memory go.
// It is off unless an address is configured (debug_listen), and that
// address must be a loopback one: profiles show internals and cost CPU, so
// they are never on a port the proxy or the network can reach. Reach them
// on the machine, e.g.
//
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
)

// Check reports an address that is set but not a loopback host:port.
// "" (off) passes.
func Check(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("debug_listen %q: want host:port on loopback, e.g. 127.0.0.1:6060", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("debug_listen %q: profiles are served on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// Handler serves the profiles under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Start serves the profiles on addr until ctx ends; "" starts nothing. It
// fails at once on an address Check refuses or one it cannot listen on, so
// a service does not start without the profiles it was asked for.
func Start(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	if err := Check(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listen: %w", err)
	}
	log.Info("profiles served", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	srv := httpx.NewServer(Handler())
	go func() {
		if err := httpx.Serve(ctx, srv, ln, time.Second); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiles: server stopped", "err", err)
		}
	}()
	return nil
}
