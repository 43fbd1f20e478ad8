package drain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// front is a capture frontend on shard r, with its catalogue in the
// database at pgURL if one is given.
func front(t *testing.T, r *launcher.Redis, pgURL string) string {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.CookieKeys, cfg.Node, cfg.Postgres.URL = r.Addr, []string{"key-0123456789abcdef"}, r.Addr, pgURL
	s, err := capture.New(context.Background(), cfg, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts.URL
}

// shop is a fresh, migrated database at url with the named items, quantity
// units each at 10.00, in id order; the frontends may read it.
func shop(t *testing.T, quantity int64, names ...string) (*postgres.DB, string, []surge.Item) {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten := surge.Cents(1000)
	items := make([]surge.Item, len(names))
	for i, name := range names {
		if items[i], _, err = db.UpsertItem(ctx, surge.ItemInput{Name: name, Quantity: quantity, Price: &ten}); err != nil {
			t.Fatal(err)
		}
	}
	return db, url, items
}

// The same order_id five times, through two frontends (two shards), and a
// worker crashes between its commit and its XACK: one order, one decrement.
func TestRepeatedOrderAppliesOnceDespiteACrash(t *testing.T) {
	ra, rb := testenv.Redis(t), testenv.Redis(t)
	db := testenv.Postgres(t)
	ctx := context.Background()
	ten := surge.Cents(1000)
	item, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Poster", Quantity: 10, Price: &ten})
	if err != nil {
		t.Fatal(err)
	}
	a, b := front(t, ra, ""), front(t, rb, "")
	body := `{"order_id":"poster-42","item":` + strconv.FormatInt(item.ID, 10) + `,"quantity":3}`
	for _, url := range []string{a, b, a, b, a} {
		resp, err := http.Post(url+"/orders", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("order: %v %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	if n := testenv.RedisClient(t, ra).XLen(ctx, "surge:entries").Val(); n != 1 {
		t.Fatalf("shard A queued %d entries for one order id, want 1", n)
	}

	// Worker on shard A crashes after committing, before acknowledging.
	qa := newConsumer(t, ra.Addr, "worker-1")
	var once sync.Once
	crashed := make(chan struct{})
	stop := runShard(t, qa, db, drain.Options{ClaimIdle: time.Hour, AfterCommit: func([]string) {
		once.Do(func() { close(crashed); panic(crash{}) })
	}})
	<-crashed
	stop()
	if b, _ := qa.Backlog(ctx); b.Pending != 1 {
		t.Fatalf("after the crash %d entries pending on A, want 1", b.Pending)
	}
	// It restarts and replays; shard B's copy is drained too.
	runShard(t, newConsumer(t, ra.Addr, "worker-1"), db, drain.Options{ClaimIdle: time.Hour})
	qb := newConsumer(t, rb.Addr, "worker-2")
	runShard(t, qb, db, drain.Options{ClaimIdle: time.Hour})
	waitDrained(t, qa)
	waitDrained(t, qb)

	var orders, stock int64
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders)
	db.Pool.QueryRow(ctx, `SELECT quantity FROM items WHERE id = $1`, item.ID).Scan(&stock)
	st, err := db.OrderState(ctx, "poster-42")
	if orders != 1 || stock != 7 || err != nil || st.Status != surge.OrderConfirmed {
		t.Fatalf("orders %d (want 1), stock %d (want 7), state %+v %v", orders, stock, st, err)
	}
}

// One order_id, two payloads, two shards: neither frontend can tell at
// capture, so both answer 202. The worker applies the first it drains and
// never the other, which it counts as a conflict. From then on either
// frontend answers the other payload 409 and the owner's retry 202, and
// the order's status names its item and quantity.
func TestOrderIDReusedOnAnotherShardIsNeverApplied(t *testing.T) {
	ra, rb := testenv.Redis(t), testenv.Redis(t)
	ctx := context.Background()
	db, url, items := shop(t, 10, "Gift", "Other")
	a, b := front(t, ra, url), front(t, rb, url)
	owner := fmt.Sprintf(`{"order_id":"gift-1","item":%d,"quantity":1}`, items[0].ID)
	other := fmt.Sprintf(`{"order_id":"gift-1","item":%d,"quantity":2}`, items[1].ID)
	order := func(url, body string) (int, surge.OrderState) {
		t.Helper()
		resp, err := http.Post(url+"/orders", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st surge.OrderState
		json.NewDecoder(resp.Body).Decode(&st)
		return resp.StatusCode, st
	}
	if code, _ := order(a, owner); code != http.StatusAccepted {
		t.Fatalf("first order: %d", code)
	}
	if code, _ := order(b, other); code != http.StatusAccepted {
		t.Fatalf("the other payload on the other shard: %d, want 202 (it cannot tell yet)", code)
	}

	// Shard A drains first, then B.
	qa := newConsumer(t, ra.Addr, "worker-1")
	runShard(t, qa, db, drain.Options{ClaimIdle: time.Hour})
	waitDrained(t, qa)
	metrics := drain.NewMetrics(nil)
	qb := newConsumer(t, rb.Addr, "worker-2")
	runShard(t, qb, db, drain.Options{ClaimIdle: time.Hour, Shard: "b", Metrics: metrics})
	waitDrained(t, qb)

	var orders int64
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders)
	st, err := db.OrderState(ctx, "gift-1")
	if orders != 1 || err != nil || st.Status != surge.OrderConfirmed || st.Item != items[0].ID || st.Quantity != 1 {
		t.Fatalf("%d orders, gift-1 %+v (%v); want one, confirmed for item %d × 1", orders, st, err, items[0].ID)
	}
	stock, _ := db.Items(ctx)
	if stock[0].Quantity != 9 || stock[1].Quantity != 10 {
		t.Fatalf("stock %+v: the conflicting order took stock", stock)
	}
	if n := testutil.ToFloat64(metrics.OrderConflicts.WithLabelValues("b")); n != 1 {
		t.Fatalf("surge_worker_order_conflicts_total = %v, want 1", n)
	}

	for _, c := range []struct {
		name, url, body string
		want            int
	}{
		{"the other payload again, on B", b, other, http.StatusConflict},
		{"the other payload on A", a, other, http.StatusConflict},
		{"the owner's retry on B", b, owner, http.StatusAccepted},
		{"the owner's retry on A", a, owner, http.StatusAccepted},
	} {
		code, st := order(c.url, c.body)
		if code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
		if code == http.StatusAccepted && (st.Status != surge.OrderConfirmed || st.Item != items[0].ID) {
			t.Errorf("%s: %+v, want the confirmed order for item %d", c.name, st, items[0].ID)
		}
	}
}

// A worker drains what a stream holds during a rolling update: an order
// entry of the JSON format, a flat one-item entry as the release before
// carts wrote it, and carts through a frontend. Each applies as an order
// with its lines; a cart the stock cannot cover whole takes nothing; a
// second copy of a cart's entry changes nothing.
func TestWorkerAppliesOldEntriesAndCarts(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ctx := context.Background()
	db, url, items := shop(t, 5, "Cap", "Scarf")
	hat, scarf := items[0].ID, items[1].ID
	// Written by earlier releases, straight into the stream.
	for _, fields := range [][]any{
		{surge.FieldKind, surge.KindOrder, surge.FieldData, fmt.Sprintf(`{"id":"old-json","item":%d,"quantity":1,"node":"web-0"}`, hat)},
		{surge.FieldKind, surge.KindOrder, surge.FieldID, "old-flat", surge.FieldItem, strconv.FormatInt(scarf, 10),
			surge.FieldQuantity, "1", surge.FieldNode, "web-0", surge.FieldAt, ""},
	} {
		if err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: "surge:entries", Values: fields}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	web := front(t, r, url)
	for _, body := range []string{
		fmt.Sprintf(`{"order_id":"cart-ok","lines":[{"item":%d,"quantity":3},{"item":%d,"quantity":2}]}`, hat, scarf),
		fmt.Sprintf(`{"order_id":"cart-short","lines":[{"item":%d,"quantity":1},{"item":%d,"quantity":3}]}`, hat, scarf),
	} {
		resp, err := http.Post(web+"/orders", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("cart: %v %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	// A second copy of the first cart's entry, as a retried XADD leaves.
	msgs := rc.XRange(ctx, "surge:entries", "-", "+").Val()
	if err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: "surge:entries", Values: msgs[2].Values}).Err(); err != nil {
		t.Fatal(err)
	}
	q := newConsumer(t, r.Addr, "worker-1")
	runShard(t, q, db, drain.Options{ClaimIdle: time.Hour})
	waitDrained(t, q)

	want := map[string]string{
		"old-json":   fmt.Sprintf("confirmed %d:1", hat),
		"old-flat":   fmt.Sprintf("confirmed %d:1", scarf),
		"cart-ok":    surge.LinesPayload([]surge.OrderLine{{Item: hat, Quantity: 3}, {Item: scarf, Quantity: 2}}),
		"cart-short": surge.LinesPayload([]surge.OrderLine{{Item: hat, Quantity: 1}, {Item: scarf, Quantity: 3}}),
	}
	want["cart-ok"] = "confirmed " + want["cart-ok"]
	want["cart-short"] = "rejected " + want["cart-short"]
	for id, w := range want {
		st, err := db.OrderState(ctx, id)
		if got := st.Status + " " + surge.LinesPayload(st.OrderLines()); err != nil || got != w {
			t.Errorf("order %s: %q (%v), want %q", id, got, err, w)
		}
	}
	stock, _ := db.Items(ctx)
	if stock[0].Quantity != 1 || stock[1].Quantity != 2 {
		t.Fatalf("stock %+v, want cap 5-1-3 = 1 and scarf 5-1-2 = 2: the rejected cart took nothing, the copy nothing", stock)
	}
}
