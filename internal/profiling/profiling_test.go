package profiling_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/profiling"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"127.0.0.2:0", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},         // every interface
		{"0.0.0.0:6060", false},  // every interface
		{"[::]:6060", false},     // every interface
		{"10.0.0.5:6060", false}, // a network's
		{"example.com:6060", false},
		{"127.0.0.1", false}, // no port
		{"localhost", false},
	}
	for _, tt := range tests {
		if err := profiling.Check(tt.addr); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}

// Start serves the profile index on a loopback port until ctx ends, and
// refuses an address that is not loopback before listening.
func TestStartServesProfilesOnLoopbackOnly(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := profiling.Start(ctx, "0.0.0.0:0", log); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Start on every interface: %v, want a refusal", err)
	}
	if err := profiling.Start(ctx, "", log); err != nil {
		t.Fatalf("Start off: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := profiling.Start(ctx, addr, log); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, body)
	}
}
