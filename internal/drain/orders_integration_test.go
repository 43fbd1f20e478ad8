package drain_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

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
	front := func(r *launcher.Redis) string {
		cfg := capture.DefaultConfig()
		cfg.Redis.Addr, cfg.CookieKeys, cfg.Node = r.Addr, []string{"key-0123456789abcdef"}, r.Addr
		s, err := capture.New(ctx, cfg, capture.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s.Handler())
		t.Cleanup(func() { ts.Close(); s.Close() })
		return ts.URL
	}
	a, b := front(ra), front(rb)
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
