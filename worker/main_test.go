package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Each log line is one JSON object, and a key appears in it once: a
// duplicate is ambiguous to every log reader.
func TestDrainingLogNamesTheConsumerOnce(t *testing.T) {
	r := testenv.Redis(t)
	port, err := launcher.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SURGE_LISTEN": "127.0.0.1:" + strconv.Itoa(port), "SURGE_SHARDS": r.Addr,
		"SURGE_POSTGRES_URL": testenv.PostgresURL(t), "SURGE_NAME": "worker-7"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs) }()
	var line string
	// Bound: migrations on a fresh database, on a loaded machine.
	testenv.Eventually(t, 30*time.Second, func() error {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, `"msg":"draining"`) {
				line = l
				return nil
			}
		}
		return errors.New("no draining line yet")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}

	keys, err := topLevelKeys(line)
	if err != nil {
		t.Fatalf("draining line %q: %v", line, err)
	}
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
	}
	if seen["consumer"] != 1 {
		t.Errorf("draining line has the consumer key %d times, want once: %s", seen["consumer"], line)
	}
	for k, n := range seen {
		if n > 1 && k != "consumer" {
			t.Errorf("draining line has key %q %d times: %s", k, n, line)
		}
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil || fields["consumer"] != "worker-7" {
		t.Errorf("draining line consumer = %v (%v), want worker-7", fields["consumer"], err)
	}
}

// topLevelKeys returns the keys of a JSON object in order, repeats
// included (decoding into a map would keep only the last).
func topLevelKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Settings the worker cannot run with are refused before it starts.
func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unhealthy_after not a duration", map[string]string{"SURGE_UNHEALTHY_AFTER": "soon"}, "unhealthy_after"},
		{"unhealthy_after zero", map[string]string{"SURGE_UNHEALTHY_AFTER": "0s"}, "unhealthy_after"},
		{"unhealthy_after negative", map[string]string{"SURGE_UNHEALTHY_AFTER": "-5s"}, "unhealthy_after"},
		{"unhealthy_after within block", map[string]string{"SURGE_UNHEALTHY_AFTER": "2s", "SURGE_BLOCK": "2s"}, "unhealthy_after"},
		{"profiles on every interface", map[string]string{"SURGE_DEBUG_LISTEN": "0.0.0.0:6060"}, "loopback only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Cancelled: a worker that accepted the settings returns at once
			// instead of waiting for a Postgres.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			tt.env["SURGE_LISTEN"] = "127.0.0.1:0"
			err := run(ctx, nil, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
