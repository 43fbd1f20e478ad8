package results_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// stockGauges gathers the stock collector's series: item id -> stock, and
// surge_item_stock_up.
func stockGauges(t *testing.T, c prometheus.Collector) (map[string]float64, float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	stock, up := map[string]float64{}, -1.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "surge_item_stock_up":
				up = m.GetGauge().GetValue()
			case "surge_item_stock":
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				stock[labels["item"]+" "+labels["name"]] = m.GetGauge().GetValue()
			}
		}
	}
	return stock, up
}

// The stock gauges show the items that sold or were restocked last, at
// most StockItems of them, with the units left by id and name.
func TestStockGauges(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	price := surge.Cents(100)
	const items = results.StockItems + 5
	for i := range items {
		if _, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: fmt.Sprintf("item %d", i+1), Quantity: 10, Price: &price}); err != nil {
			t.Fatal(err)
		}
	}
	c := results.NewStockCollector(db, slog.New(slog.DiscardHandler))
	stock, up := stockGauges(t, c)
	if up != 1 || len(stock) != results.StockItems {
		t.Fatalf("up %v, %d items exported, want 1 and %d: %v", up, len(stock), results.StockItems, stock)
	}
	if _, ok := stock["1 item 1"]; ok {
		t.Fatalf("item 1, changed first, is exported among the %d changed last", results.StockItems)
	}
	if got := stock[fmt.Sprintf("%d item %d", items, items)]; got != 10 {
		t.Fatalf("item %d, added last: stock %v, want 10", items, got)
	}

	// A sale moves item 1 among the latest, with its stock left.
	if _, err := db.ApplyOrders(ctx, []surge.Order{{ID: "o-1", Lines: []surge.OrderLine{{Item: 1, Quantity: 3}}}}); err != nil {
		t.Fatal(err)
	}
	if stock, _ := stockGauges(t, c); stock["1 item 1"] != 7 || len(stock) != results.StockItems {
		t.Fatalf("after selling 3 of item 1: %d items, item 1 at %v; want %d and 7", len(stock), stock["1 item 1"], results.StockItems)
	}
}

type failingStock struct{}

func (failingStock) RecentItems(context.Context, int) ([]surge.Item, error) {
	return nil, errors.New("postgres is away")
}

// Stock that cannot be read is surge_item_stock_up 0 and no stock; the
// scrape still succeeds.
func TestStockGaugesWithoutPostgres(t *testing.T) {
	c := results.NewStockCollector(failingStock{}, slog.New(slog.DiscardHandler))
	stock, up := stockGauges(t, c)
	if up != 0 || len(stock) != 0 {
		t.Fatalf("up %v with %d items, want 0 and none", up, len(stock))
	}
}
