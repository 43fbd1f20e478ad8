package drain

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/surge"
)

// isTransient reports a passing store failure, which is retried; any other
// error is a property of the entries.
func isTransient(err error) bool { return surge.ErrorCode(err) == surge.EUNAVAILABLE }

// Metrics are the worker's Prometheus metrics.
type Metrics struct {
	Applied      *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	Claimed      *prometheus.CounterVec
	RedisErrors  *prometheus.CounterVec
	StoreErrors  *prometheus.CounterVec
	BatchSeconds *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_entries_applied_total", Help: "Entries committed and acknowledged.",
		}, []string{"shard"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_dead_letters_total", Help: "Entries moved to the dead-letter stream.",
		}, []string{"shard", "reason"}),
		Claimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_claimed_total", Help: "Entries taken over from idle consumers.",
		}, []string{"shard"}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_redis_errors_total", Help: "Failed stream reads.",
		}, []string{"shard"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_store_errors_total", Help: "Transient store failures (retried).",
		}, []string{"shard"}),
		BatchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "surge_worker_batch_seconds", Help: "Time to commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"shard"}),
	}
	if reg != nil {
		reg.MustRegister(m.Applied, m.DeadLettered, m.Claimed, m.RedisErrors, m.StoreErrors, m.BatchSeconds)
	}
	return m
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(b.d):
	}
	b.d = min(b.d*2, 2*time.Second)
}
