package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// fakeBacklog is a BacklogReader with fixed answers; hang makes its reads
// wait for their context to end, as a Redis that stopped answering does.
type fakeBacklog struct {
	backlog    redis.Backlog
	oldest     time.Duration
	backlogErr error
	oldestErr  error
	hang       bool
}

func (f fakeBacklog) Backlog(ctx context.Context) (redis.Backlog, error) {
	if f.hang {
		<-ctx.Done()
		return redis.Backlog{}, ctx.Err()
	}
	return f.backlog, f.backlogErr
}

func (f fakeBacklog) Oldest(ctx context.Context) (time.Duration, error) { return f.oldest, f.oldestErr }

// gather returns reg's series as "name{label=value,…} value", sorted.
func gather(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out = append(out, fmt.Sprintf("%s{%s} %g", f.GetName(), strings.Join(labels, ","), value(m)))
		}
	}
	slices.Sort(out)
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// The gauges read each shard on scrape, label it by its number, and show a
// shard that cannot be read as down, without its figures, and without
// holding the scrape past the timeout.
func TestBacklogCollector(t *testing.T) {
	tests := []struct {
		name   string
		shards []BacklogReader
		want   []string
	}{
		{
			name: "two shards readable",
			shards: []BacklogReader{
				fakeBacklog{backlog: redis.Backlog{Pending: 3, Lag: 40}, oldest: 1500 * time.Millisecond},
				fakeBacklog{},
			},
			want: []string{
				"surge_worker_backlog_lag{shard=1} 40",
				"surge_worker_backlog_lag{shard=2} 0",
				"surge_worker_backlog_pending{shard=1} 3",
				"surge_worker_backlog_pending{shard=2} 0",
				"surge_worker_oldest_unacked_seconds{shard=1} 1.5",
				"surge_worker_oldest_unacked_seconds{shard=2} 0",
				"surge_worker_shard_up{shard=1} 1",
				"surge_worker_shard_up{shard=2} 1",
			},
		},
		{
			name: "one shard's Redis down, the other hung",
			shards: []BacklogReader{
				fakeBacklog{backlogErr: errors.New("connection refused")},
				fakeBacklog{hang: true},
			},
			want: []string{"surge_worker_shard_up{shard=1} 0", "surge_worker_shard_up{shard=2} 0"},
		},
		{
			name: "backlog read, age not",
			shards: []BacklogReader{
				fakeBacklog{backlog: redis.Backlog{Lag: 1}, oldestErr: errors.New("i/o timeout")},
			},
			want: []string{"surge_worker_shard_up{shard=1} 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(NewBacklogCollector(tt.shards, 50*time.Millisecond))
			start := time.Now()
			got := gather(t, reg)
			if !slices.Equal(got, tt.want) {
				t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// A failsafe far above the 50 ms timeout: the hung shard must
			// not hold the scrape for good.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("scrape took %s", d)
			}
		})
	}
}

// Every series an alert or a rate looks at exists at zero once a shard is
// set up, before anything happened: dead letters for each reason, orders
// for each outcome.
func TestShardMetricsExistFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	opt := testOptions()
	opt.Shard, opt.Metrics = "2", NewMetrics(reg)
	NewShard(&fakeQueue{log: &testenv.EventLog{}}, nil, opt)
	want := []string{
		"surge_worker_batch_seconds{shard=2} 0",
		"surge_worker_claimed_total{shard=2} 0",
		"surge_worker_copies_skipped_total{shard=2} 0",
		"surge_worker_dead_letters_total{reason=failed,shard=2} 0",
		"surge_worker_dead_letters_total{reason=undecodable,shard=2} 0",
		"surge_worker_dead_letters_total{reason=unknown poll or option,shard=2} 0",
		"surge_worker_entries_applied_total{shard=2} 0",
		"surge_worker_order_conflicts_total{shard=2} 0",
		"surge_worker_orders_total{outcome=confirmed,shard=2} 0",
		"surge_worker_orders_total{outcome=rejected,shard=2} 0",
		"surge_worker_redis_errors_total{shard=2} 0",
		"surge_worker_store_errors_total{shard=2} 0",
	}
	if got := gather(t, reg); !slices.Equal(got, want) {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Orders are counted by outcome once the commit deciding them returns;
// conflicts are counted apart, not as an outcome.
func TestShardCountsOrderOutcomes(t *testing.T) {
	h := newHarness(nil)
	h.store.orderStatus = func(o surge.Order) string {
		return map[string]string{"o1": surge.OrderRejected, "o2": surge.OrderConfirmed, "o3": surge.OrderConfirmed,
			"o4": surge.OrderConflict}[o.ID]
	}
	h.q.news = [][]redis.Message{{orderMsg(t, 1, 1), orderMsg(t, 2, 1), orderMsg(t, 3, 1), orderMsg(t, 4, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "4 acks", func() bool { return len(h.q.ackedIDs()) == 4 })
	stop()
	m := h.opt.Metrics
	for _, c := range []struct {
		name string
		c    prometheus.Counter
		want float64
	}{
		{"confirmed", m.Orders.WithLabelValues(h.opt.Shard, surge.OrderConfirmed), 2},
		{"rejected", m.Orders.WithLabelValues(h.opt.Shard, surge.OrderRejected), 1},
		{"conflicts", m.OrderConflicts.WithLabelValues(h.opt.Shard), 1},
	} {
		if got := counterValue(t, c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}
