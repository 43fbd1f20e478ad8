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
// as failing are want (and as degraded, none).
func wantHealth(url string, status int, want string) error {
	return wantHealthDegraded(url, status, want, "")
}

// wantHealthDegraded checks /healthz's status and the dependencies it names
// as failing and as degraded.
func wantHealthDegraded(url string, status int, failing, degraded string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Status, Failing, Degraded string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("healthz %d: decode: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != status || body.Failing != failing || body.Degraded != degraded {
		return fmt.Errorf("healthz %d %+v, want %d failing %q degraded %q", resp.StatusCode, body, status, failing, degraded)
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

// A shard unreadable for longer than unhealthy_after, while another still
// drains, makes the worker degraded (200, the shard named), not down: a
// restart cannot bring that shard back and would stop the others. Every
// shard unreadable is down (503). Both recover when their Redis is back.
func TestWorkerHealthFollowsShards(t *testing.T) {
	r, other := testenv.Redis(t), testenv.Redis(t)
	url := startWorker(t, testenv.PostgresURL(t), r.Addr, other.Addr)

	killed := time.Now()
	r.Kill()
	var degraded time.Time
	// Bound: unhealthy_after plus the probes' polling. Exactly shard 1:
	// the shard that is up (2) is not blamed.
	testenv.Eventually(t, 10*healthBound+5*time.Second, func() error {
		err := wantHealthDegraded(url, http.StatusOK, "", "shard 1")
		degraded = time.Now()
		return err
	})
	// The first failed read came after the kill, and the answer was written
	// before we read it: one read within the bound came too early, however
	// loaded the machine.
	if d := degraded.Sub(killed); d <= healthBound {
		t.Fatalf("health degraded %s after the kill, before unhealthy_after (%s)", d, healthBound)
	}
	other.Kill()
	testenv.Eventually(t, 10*healthBound+5*time.Second, func() error {
		return wantHealth(url, http.StatusServiceUnavailable, "shard 1, shard 2")
	})
	testenv.RestartRedis(t, r)
	testenv.RestartRedis(t, other)
	// Bound: the drain loop's longest backoff (2 s + jitter) and a read.
	testenv.Eventually(t, 10*time.Second, func() error { return wantHealth(url, http.StatusOK, "") })
}
