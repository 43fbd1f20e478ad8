package drain

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/telemetry"
)

// BacklogReader is what the backlog gauges read of one shard.
type BacklogReader interface {
	Backlog(ctx context.Context) (redis.Backlog, error)
	Oldest(ctx context.Context) (time.Duration, error)
}

// DefaultBacklogTimeout bounds one scrape's reads of every shard, well
// under Prometheus's default scrape timeout (10 s).
const DefaultBacklogTimeout = 2 * time.Second

// BacklogCollector exports each shard's backlog, read from its Redis when
// Prometheus scrapes. The drain loop does not keep these gauges: a loop that
// is stuck, the case they are for, would stop updating them. Shards are
// labelled by number (1, 2, … as configured), never by address. A shard
// whose reads fail or time out shows surge_worker_shard_up 0 and no backlog.
type BacklogCollector struct {
	shards                   []BacklogReader // shard i+1
	timeout                  time.Duration
	up, pending, lag, oldest *prometheus.Desc
}

// NewBacklogCollector returns the gauges of the given shards, each scrape
// reading all of them at once within timeout.
func NewBacklogCollector(shards []BacklogReader, timeout time.Duration) *BacklogCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"shard"}, nil)
	}
	return &BacklogCollector{shards: shards, timeout: timeout,
		up:      desc("surge_worker_shard_up", "1 if the shard's backlog could be read at this scrape, else 0."),
		pending: desc("surge_worker_backlog_pending", "Entries delivered to a worker and not acknowledged."),
		lag:     desc("surge_worker_backlog_lag", "Entries not yet delivered to any worker."),
		oldest:  desc("surge_worker_oldest_unacked_seconds", "Age of the oldest entry not acknowledged, by its Redis's clock; 0 if none."),
	}
}

// Describe implements prometheus.Collector.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.pending
	ch <- c.lag
	ch <- c.oldest
}

// Collect implements prometheus.Collector.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range c.shards {
		wg.Go(func() {
			shard := strconv.Itoa(i + 1)
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, shard)
			}
			b, err := s.Backlog(ctx)
			if err != nil {
				gauge(c.up, 0)
				return
			}
			age, err := s.Oldest(ctx)
			if err != nil {
				gauge(c.up, 0)
				return
			}
			gauge(c.up, 1)
			gauge(c.pending, float64(b.Pending))
			gauge(c.lag, float64(b.Lag))
			gauge(c.oldest, age.Seconds())
		})
	}
	wg.Wait()
}

// NewRegistry returns the worker's registry: the process's metrics, the
// drain's (shared by every Shard), and the backlog of the given shards.
func NewRegistry(shards []BacklogReader) (*prometheus.Registry, *Metrics) {
	reg := telemetry.NewRegistry()
	metrics := NewMetrics(reg)
	reg.MustRegister(NewBacklogCollector(shards, DefaultBacklogTimeout))
	return reg, metrics
}
