package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no cookie key", map[string]string{}},
		{"short cookie key", map[string]string{"SURGE_COOKIE_KEYS": "short"}},
		{"invalid poll", map[string]string{"SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_POLLS": `[{"id":"x","options":["only-one"]}]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), nil, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
		})
	}
}

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
