package main

import (
	"context"
	"io"
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
	r := testenv.Redis(t)
	admin := testenv.RedisClient(t, r)
	port, _ := launcher.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{"SURGE_LISTEN": addr, "SURGE_REDIS_ADDR": r.Addr, "SURGE_COOKIE_KEYS": "test-key-0123456789abcdef", "SURGE_NODE": "n1"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs) }()
	for {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	admin.Do(context.Background(), "CLIENT", "PAUSE", "2000", "WRITE")
	const inFlight = 20
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
	time.Sleep(300 * time.Millisecond) // let the requests reach the handler
	cancel()                           // SIGTERM
	time.Sleep(100 * time.Millisecond)
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still accepting connections after shutdown began")
	}
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
