package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// On SIGTERM (ctx cancelled) the frontend stops accepting, answers every
// request already in flight, and returns nil. Requests are held in flight
// by pausing Redis writes.
func TestShutdownFinishesInFlightVotes(t *testing.T) {
	const inFlight = 20
	r := testenv.Redis(t)
	admin := testenv.RedisClient(t, r)
	port, _ := launcher.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{"SURGE_LISTEN": addr, "SURGE_REDIS_ADDR": r.Addr, "SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_NODE": "n1",
		// One collector per request, so every request that reaches the
		// handler is sent to Redis (and counted in the pipeline metric)
		// rather than queued behind a blocked pipeline.
		"SURGE_COLLECTORS": strconv.Itoa(inFlight)}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs) }()
	// Start-up is a Redis ping and a listen.
	testenv.Eventually(t, 10*time.Second, func() error { return get(addr, "/healthz", nil) })

	// Paused for longer than the test can take; UNPAUSE ends it.
	admin.Do(context.Background(), "CLIENT", "PAUSE", "60000", "WRITE")
	statuses := make(chan int, inFlight)
	for range inFlight {
		go func() {
			resp, err := http.Post("http://"+addr+"/vote", "application/json", strings.NewReader(`{"choice":"cats"}`))
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	// Every request is in a handler once its entry is in a pipeline to the
	// paused Redis: the pipeline metric counts entries as they are sent.
	// 20 loopback requests take milliseconds; the bound stays under the
	// Redis client's 3 s read timeout, which would answer them 503.
	testenv.Eventually(t, 2*time.Second, func() error {
		var metrics string
		if err := get(addr, "/metrics", &metrics); err != nil {
			return err
		}
		if want := fmt.Sprintf("surge_capture_pipeline_size_sum %d\n", inFlight); !strings.Contains(metrics, want) {
			return fmt.Errorf("not all %d requests are in flight: no %q in /metrics", inFlight, strings.TrimSpace(want))
		}
		return nil
	})
	cancel() // SIGTERM
	// The listener closes at once; the requests in flight keep the server
	// shutting down until Redis writes again.
	testenv.Eventually(t, 2*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("still accepting connections after shutdown began")
	})
	admin.Do(context.Background(), "CLIENT", "UNPAUSE")
	for range inFlight {
		if s := <-statuses; s != http.StatusAccepted {
			t.Errorf("in-flight vote got %d, want 202", s)
		}
	}
	if err := <-runErr; err != nil {
		t.Fatalf("run returned %v\n%s", err, logs)
	}
	if n := admin.XLen(context.Background(), "surge:entries").Val(); n != inFlight {
		t.Fatalf("%d entries queued, want %d", n, inFlight)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	const password = "admin-password-123"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error; anything if empty
	}{
		{"no cookie key", map[string]string{}, nil, ""},
		{"short cookie key", map[string]string{"SURGE_COOKIE_KEYS": "short"}, nil, ""},
		{"invalid poll", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_POLLS": `[{"id":"x","options":["only-one"]}]`}, nil, ""},
		{"capture without cookie key, mode named", map[string]string{"SURGE_MODE": "capture"}, nil, "cookie_keys"},
		{"unknown mode", map[string]string{"SURGE_MODE": "shop", "SURGE_COOKIE_KEYS": "test-key-0123456789abcdef"}, nil, `mode "shop" is neither "capture"`},
		{"unknown mode as a flag", map[string]string{}, []string{"--mode", "results"}, `mode "results" is neither`},
		{"admin without password", map[string]string{"SURGE_MODE": "admin", "SURGE_POSTGRES_URL": "postgres://nowhere/x"}, nil, "admin_password"},
		{"admin with a short password", map[string]string{"SURGE_MODE": "admin", "SURGE_ADMIN_PASSWORD": "short", "SURGE_POSTGRES_URL": "postgres://nowhere/x"}, nil, "admin_password"},
		{"admin with a missing password file", map[string]string{"SURGE_MODE": "admin", "SURGE_ADMIN_PASSWORD_FILE": "/nonexistent/admin.password"}, nil, "SURGE_ADMIN_PASSWORD_FILE"},
		{"admin without postgres", map[string]string{"SURGE_ADMIN_PASSWORD": password}, []string{"--mode", "admin"}, "postgres.url"},
		{"copies over the shards", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_COPIES": "2"}, nil, "copies = 2"},
		{"three copies of two shards", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1,127.0.0.1:2", "SURGE_SHARD": "1", "SURGE_COPIES": "3"}, nil, "copies = 3"},
		{"negative copies", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_COPIES": "-1"}, nil, "copies = -1"},
		{"own shard past the list", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1,127.0.0.1:2", "SURGE_SHARD": "3"}, nil, "own shard 3"},
		{"negative own shard", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1", "SURGE_SHARD": "-1"}, nil, "shard = -1"},
		{"own shard without a list", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARD": "2"}, nil, "shard = 2"},
		{"own shard neither named nor found", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1,127.0.0.1:2"}, nil, "set shard"},
		{"a shard listed twice", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1,127.0.0.1:1", "SURGE_SHARD": "1"}, nil, "each shard's address once"},
		{"an empty shard address", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_SHARDS": "127.0.0.1:1,", "SURGE_SHARD": "1"}, nil, "none empty"},
		{"copies not a number", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_COPIES": "two"}, nil, "copies"},
		{"admin refuses capture's flags", map[string]string{"SURGE_ADMIN_PASSWORD": password}, []string{"--mode", "admin", "--redis.addr", "127.0.0.1:1"}, "redis.addr"},
		{"profiles on every interface", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_DEBUG_LISTEN": ":6060"}, nil, "loopback only"},
		{"admin profiles on a network address", map[string]string{"SURGE_ADMIN_PASSWORD": password, "SURGE_POSTGRES_URL": "postgres://nowhere/x", "SURGE_DEBUG_LISTEN": "10.0.0.5:6060"}, []string{"--mode", "admin"}, "loopback only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// In admin mode the binary serves the admin service with the password from
// SURGE_ADMIN_PASSWORD_FILE, as the stack starts it, and no public routes.
func TestRunAdminMode(t *testing.T) {
	const password = "admin-password-123"
	file := filepath.Join(t.TempDir(), "admin.password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, _ := launcher.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{"SURGE_MODE": "admin", "SURGE_LISTEN": addr, "SURGE_POSTGRES_URL": testenv.PostgresURL(t),
		"SURGE_ADMIN_PASSWORD_FILE": file, "SURGE_NODE": "admin-1"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs) }()
	testenv.Eventually(t, 20*time.Second, func() error { return get(addr, "/healthz", nil) })
	for _, tt := range []struct {
		path, password string
		status         int
	}{{"/admin/api/items", password, 200}, {"/admin/api/items", "wrong-password", 401}, {"/vote", password, 404}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tt.path, nil)
		req.SetBasicAuth("admin", tt.password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.status)
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("run returned %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), `"mode":"admin"`) {
		t.Errorf("the logs do not name the mode:\n%s", logs)
	}
}

// TestMain stops the Postgres server the admin test uses.
func TestMain(m *testing.M) { testenv.Main(m) }

// get reads path from the server at addr and fails unless it answers 200;
// body, if not nil, receives what it sent.
func get(addr, path string, body *string) error {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if body != nil {
		*body = string(b)
	}
	return nil
}
