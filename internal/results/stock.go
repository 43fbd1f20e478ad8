package results

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/surge"
)

// Bounds on the stock gauges: how many items one scrape exports, and how
// long it may wait for Postgres (well under Prometheus's 10 s scrape timeout).
const (
	StockItems   = 20
	StockTimeout = 2 * time.Second
)

// StockReader is what the stock gauges read: the n items whose stock
// changed last (postgres.DB.RecentItems).
type StockReader interface {
	RecentItems(ctx context.Context, n int) ([]surge.Item, error)
}

// StockCollector exports the stock left of the items being sold, read from
// Postgres when Prometheus scrapes: the StockItems items that sold or were
// restocked last, so a small catalogue is exported whole and a large one by
// the items that move, never more series than that per scrape. Items are
// labelled by id and name. A read that fails or times out shows
// surge_item_stock_up 0 and no stock.
type StockCollector struct {
	store     StockReader
	log       *slog.Logger
	up, stock *prometheus.Desc
}

// NewStockCollector returns the stock gauges read from store.
func NewStockCollector(store StockReader, log *slog.Logger) *StockCollector {
	return &StockCollector{store: store, log: log,
		up:    prometheus.NewDesc("surge_item_stock_up", "1 if the stock could be read from Postgres at this scrape, else 0.", nil, nil),
		stock: prometheus.NewDesc("surge_item_stock", "Units left of the items that sold or were restocked last.", []string{"item", "name"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.stock
}

// Collect implements prometheus.Collector.
func (c *StockCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), StockTimeout)
	defer cancel()
	items, err := c.store.RecentItems(ctx, StockItems)
	if err != nil {
		c.log.Warn("read stock for metrics failed", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, it := range items {
		ch <- prometheus.MustNewConstMetric(c.stock, prometheus.GaugeValue, float64(it.Quantity), strconv.FormatInt(it.ID, 10), it.Name)
	}
}
