package drain

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
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
	// OrderConflicts counts order entries never applied because their id
	// belongs to an order with other lines. An entry delivered
	// again after a crash between commit and XACK counts again.
	OrderConflicts *prometheus.CounterVec
	// CopiesSkipped counts entries acknowledged without applying them:
	// this worker had committed their event from another copy.
	CopiesSkipped *prometheus.CounterVec
	Claimed       *prometheus.CounterVec
	RedisErrors   *prometheus.CounterVec
	StoreErrors   *prometheus.CounterVec
	BatchSeconds  *prometheus.HistogramVec
	// Orders counts orders applied, by outcome (confirmed, rejected), once
	// each: an entry delivered again is not decided again.
	Orders *prometheus.CounterVec
}

// Why entries are dead-lettered: the values of the reason label.
const (
	reasonUndecodable = "undecodable"
	reasonRefused     = "unknown poll or option"
	reasonFailed      = "failed"
)

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_entries_applied_total", Help: "Entries committed and acknowledged.",
		}, []string{"shard"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_dead_letters_total", Help: "Entries moved to the dead-letter stream.",
		}, []string{"shard", "reason"}),
		OrderConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_order_conflicts_total", Help: "Orders not applied: their order_id belongs to an order with other lines (items or quantities).",
		}, []string{"shard"}),
		CopiesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_copies_skipped_total", Help: "Entries acknowledged without applying them: their event was committed from another copy.",
		}, []string{"shard"}),
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
		Orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_worker_orders_total", Help: "Orders applied, by outcome (confirmed, rejected).",
		}, []string{"shard", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Applied, m.DeadLettered, m.Claimed, m.RedisErrors, m.StoreErrors, m.BatchSeconds)
		reg.MustRegister(m.OrderConflicts, m.Orders, m.CopiesSkipped)
	}
	return m
}

// initShard makes every series of a shard exist at zero, so that a rate or
// an increase over them works from the first event and an alert on them
// can tell "none" from "not scraped".
func (m *Metrics) initShard(shard string) {
	for _, c := range []*prometheus.CounterVec{m.Applied, m.OrderConflicts, m.CopiesSkipped, m.Claimed, m.RedisErrors, m.StoreErrors} {
		c.WithLabelValues(shard)
	}
	for _, reason := range []string{reasonUndecodable, reasonRefused, reasonFailed} {
		m.DeadLettered.WithLabelValues(shard, reason)
	}
	for _, outcome := range []string{surge.OrderConfirmed, surge.OrderRejected} {
		m.Orders.WithLabelValues(shard, outcome)
	}
	m.BatchSeconds.WithLabelValues(shard)
}

// newBackOff is the drain's retry schedule: 50 ms growing to 2 s, each
// wait randomised by ±50 % so that workers on every shard do not retry in
// lockstep after an outage. Reset it after a success.
func newBackOff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, Multiplier: 2, MaxInterval: 2 * time.Second,
		RandomizationFactor: 0.5}
}

// wait sleeps for b's next interval or until ctx ends.
func wait(ctx context.Context, b backoff.BackOff) {
	t := time.NewTimer(b.NextBackOff())
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
