package capture_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// The accounts store is Postgres: stopped, the frontend still takes cookie
// votes and orders (anonymous, and logged-in ones with their buyer from
// the signed cookie) and serves the catalogue from its cache; the account
// pages and accounts-only polls answer 503.
func TestAccountsWithPostgresStopped(t *testing.T) {
	r := testenv.Redis(t)
	pg := testenv.PrivatePostgres(t)
	db := testenv.PostgresClient(t, pg.URL)
	ctx := context.Background()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	item := newItem(t, db, "Mug", 10)
	if err := db.CreatePoll(ctx, surge.Poll{ID: "members", Title: "Members", Options: []string{"yes", "no"}, AccountsOnly: true}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, "node-a", []string{testKey}
	cfg.Postgres.URL, cfg.OrdersPerIP = pg.URL, 0
	cfg.Accounts.PasswordCost = 4
	base := serve(t, startServer(t, cfg, capture.Options{})).URL
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, path := range []string{"/api/items", fmt.Sprintf("/api/items/%d", item.ID)} {
			if got := do(t, base, "GET", path, "", nil); got != 200 {
				return fmt.Errorf("GET %s: %d", path, got)
			}
		}
		return nil
	})
	session := login(t, base)
	if got := do(t, base, "POST", "/vote", `{"poll":"members","choice":"yes"}`, session); got != 202 {
		t.Fatalf("accounts-only vote with Postgres up: %d", got)
	}

	if err := pg.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path, body string
		logged             bool
		status             int
	}{
		{"POST", "/vote", `{"choice":"cats"}`, false, 202},
		{"POST", "/vote", `{"choice":"dogs"}`, true, 202},
		{"GET", "/api/items", "", false, 200},
		{"POST", "/orders", fmt.Sprintf(`{"item":%d,"quantity":1}`, item.ID), false, 202},
		{"POST", "/orders", fmt.Sprintf(`{"order_id":"mine-while-down","item":%d,"quantity":1}`, item.ID), true, 202},
		{"POST", "/vote", `{"poll":"members","choice":"no"}`, true, 503},
		{"GET", "/accounts/me/orders", "", true, 503},
		{"GET", "/my-orders", "", true, 503},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`, false, 503},
	} {
		ck := session
		if !r.logged {
			ck = nil
		}
		if got := do(t, base, r.method, r.path, r.body, ck); got != r.status {
			t.Errorf("%s %s with Postgres stopped: %d, want %d", r.method, r.path, got, r.status)
		}
	}
	// The logged-in order was queued with its buyer.
	rc := testenv.RedisClient(t, r)
	msgs, err := rc.XRange(ctx, cfg.Redis.Stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		if m.Values[surge.FieldID] == "mine-while-down" {
			found = m.Values[surge.FieldAccount] == "1"
		}
	}
	if !found {
		t.Fatalf("the order placed while Postgres was down is not queued with account 1: %v", msgs)
	}
}
