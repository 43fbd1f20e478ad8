package drain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// healthBound is the worker's unhealthy_after in these tests.
const healthBound = time.Second

// startWorker runs RunWorker on the given shards and Postgres until the
// test ends, and returns its /healthz URL once it answers 200.
func startWorker(t *testing.T, pgURL string, shards ...string) string {
	t.Helper()
	port, err := launcher.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := drain.DefaultConfig()
	cfg.Name, cfg.Listen, cfg.Shards, cfg.Postgres.URL = "w1", "127.0.0.1:"+strconv.Itoa(port), shards, pgURL
	cfg.Block, cfg.UnhealthyAfter = 100*time.Millisecond, healthBound
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &testenv.LogBuffer{}
	go func() { done <- drain.RunWorker(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunWorker: %v\n%s", err, logs)
		}
	})
	url := "http://" + cfg.Listen + "/healthz"
	// Bound: Postgres migrations and the first reads on a loaded machine.
	testenv.Eventually(t, 30*time.Second, func() error { return wantHealth(url, http.StatusOK, "") })
	return url
}

// wantHealth checks /healthz's status, and that the dependencies it names
// as failing are want.
func wantHealth(url string, status int, want string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Status, Failing string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("healthz %d: decode: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != status || body.Failing != want {
		return fmt.Errorf("healthz %d %+v, want %d failing %q", resp.StatusCode, body, status, want)
	}
	return nil
}

// The worker's health fails while it cannot reach Postgres, and recovers
// when Postgres is back.
func TestWorkerHealthFollowsPostgres(t *testing.T) {
	r := testenv.Redis(t)
	pg := testenv.PrivatePostgres(t)
	url := startWorker(t, pg.URL, r.Addr)

	if err := pg.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Bound: one probe, whose ping fails at once on a refused connection.
	testenv.Eventually(t, 10*time.Second, func() error {
		return wantHealth(url, http.StatusServiceUnavailable, "postgres")
	})
	testenv.RestartPostgres(t, pg)
	// Bound: the pool opens a new connection on the next probe.
	testenv.Eventually(t, 10*time.Second, func() error { return wantHealth(url, http.StatusOK, "") })
}

// The worker's health fails once a shard it drains has been unreadable for
// longer than unhealthy_after, not before, and recovers when the shard's
// Redis is back.
func TestWorkerHealthFollowsShards(t *testing.T) {
	r, other := testenv.Redis(t), testenv.Redis(t)
	url := startWorker(t, testenv.PostgresURL(t), r.Addr, other.Addr)

	killed := time.Now()
	r.Kill()
	var failed time.Time
	// Bound: unhealthy_after plus the probes' polling. Exactly shard 1:
	// the shard that is up (2) is not blamed.
	testenv.Eventually(t, 10*healthBound+5*time.Second, func() error {
		err := wantHealth(url, http.StatusServiceUnavailable, "shard 1")
		failed = time.Now()
		return err
	})
	// The first failed read came after the kill, and the 503 was written
	// before we read it: a 503 read within the bound came too early, however
	// loaded the machine.
	if d := failed.Sub(killed); d <= healthBound {
		t.Fatalf("health failed %s after the kill, before unhealthy_after (%s)", d, healthBound)
	}
	testenv.RestartRedis(t, r)
	// Bound: the drain loop's longest backoff (2 s + jitter) and a read.
	testenv.Eventually(t, 10*time.Second, func() error { return wantHealth(url, http.StatusOK, "") })
}
