package drain_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/testenv"
)

// A running worker says who it is, reads each shard's backlog on scrape
// under the shard's number, shows a shard whose Redis is gone as down, and
// never publishes a Redis address.
func TestWorkerMetricsShowShards(t *testing.T) {
	r1, r2 := testenv.Redis(t), testenv.Redis(t)
	health := startWorker(t, testenv.PostgresURL(t), r1.Addr, r2.Addr)
	metricsURL := strings.TrimSuffix(health, "/healthz") + "/metrics"
	scrape := func(want ...string) func() error {
		return func() error {
			resp, err := http.Get(metricsURL)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			text := string(body)
			for _, addr := range []string{r1.Addr, r2.Addr} {
				if strings.Contains(text, addr) {
					return fmt.Errorf("metrics publish the Redis address %s", addr)
				}
			}
			for _, w := range want {
				if !strings.Contains(text, "\n"+w) { // a line, or the start of one

					return fmt.Errorf("metrics lack %q", w)
				}
			}
			return nil
		}
	}
	// Bound: one scrape; the worker is draining already.
	testenv.Eventually(t, 10*time.Second, scrape(
		`surge_build_info{node="w1",service="worker",version=`,
		`surge_worker_shard_up{shard="1"} 1`, `surge_worker_shard_up{shard="2"} 1`,
		`surge_worker_backlog_lag{shard="2"} 0`, `surge_worker_oldest_unacked_seconds{shard="2"} 0`,
		`surge_worker_dead_letters_total{reason="undecodable",shard="1"} 0`,
	))
	r2.Kill()
	<-r2.Done()
	// Bound: the next scrape, whose reads of shard 2 are refused at once.
	testenv.Eventually(t, 10*time.Second, scrape(`surge_worker_shard_up{shard="1"} 1`, `surge_worker_shard_up{shard="2"} 0`))
}
