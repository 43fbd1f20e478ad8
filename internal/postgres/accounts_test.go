package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// *postgres.DB is the accounts' store.
var _ accounts.Store = (*postgres.DB)(nil)

func TestAccountsAndSessions(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	a, err := db.CreateAccount(ctx, surge.Account{Name: "Ada", Email: "Ada@Example.com"}, []byte("$2a$04$hash"))
	if err != nil || a.ID == 0 || a.CreatedAt.IsZero() {
		t.Fatalf("create: %+v %v", a, err)
	}
	if _, err := db.CreateAccount(ctx, surge.Account{Name: "Other", Email: "ada@EXAMPLE.COM"}, []byte("x")); surge.ErrorCode(err) != surge.ECONFLICT {
		t.Fatalf("the same email in another case: %v, want ECONFLICT", err)
	}
	got, hash, err := db.AccountByEmail(ctx, "ADA@example.com")
	if err != nil || got.ID != a.ID || got.Email != "Ada@Example.com" || string(hash) != "$2a$04$hash" {
		t.Fatalf("by email: %+v %q %v", got, hash, err)
	}
	if _, _, err := db.AccountByEmail(ctx, "nobody@example.com"); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("unknown email: %v, want ENOTFOUND", err)
	}

	now := time.Now()
	id := []byte("0123456789abcdef0123456789abcdef")
	if err := db.CreateSession(ctx, id, a.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if acct, err := db.SessionAccount(ctx, id, now); err != nil || acct != a.ID {
		t.Fatalf("session: %d %v", acct, err)
	}
	if _, err := db.SessionAccount(ctx, id, now.Add(time.Hour)); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("an expired session: %v, want ENOTFOUND", err)
	}
	if err := db.DeleteSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SessionAccount(ctx, id, now); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("a deleted session: %v, want ENOTFOUND", err)
	}
}

// Orders placed while logged in are listed for their account, newest
// first, page by page; anonymous orders and other accounts' are not.
func TestAccountOrders(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	price := surge.Cents(100)
	item, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Mug", Quantity: 3, Price: &price})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var batch []surge.Order
	for i := range 5 { // o0..o4, 2 units each: o0 is the oldest
		batch = append(batch, surge.Order{ID: fmt.Sprintf("o%d", i), Lines: []surge.OrderLine{{Item: item.ID, Quantity: 1 + i%2}},
			Account: 1, At: at.Add(time.Duration(i) * time.Second)})
	}
	batch = append(batch, surge.Order{ID: "anon", Lines: []surge.OrderLine{{Item: item.ID, Quantity: 1}}, At: at.Add(time.Minute)},
		surge.Order{ID: "theirs", Lines: []surge.OrderLine{{Item: item.ID, Quantity: 1}}, Account: 2, At: at.Add(time.Minute)})
	// A cart of the account's: listed too, its lines on its own page.
	batch = append(batch, surge.Order{ID: "o5", Lines: []surge.OrderLine{{Item: item.ID, Quantity: 1}, {Item: item.ID + 1000, Quantity: 1}},
		Account: 1, At: at.Add(-time.Hour)})
	if _, err := db.ApplyOrders(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var ids []string
	before := ""
	for {
		page, err := db.AccountOrders(ctx, 1, before, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			ids = append(ids, o.OrderID+"/"+o.Status)
			if o.OrderedAt.IsZero() || (o.OrderID == "o5") != (o.Item == 0) { // a cart has no one item
				t.Fatalf("order %+v", o)
			}
		}
		if len(page) < 2 {
			break
		}
		before = page[len(page)-1].OrderID
	}
	// Stock 3: o0 (1) and o1 (2) are confirmed, then nothing is left.
	want := []string{"o4/rejected", "o3/rejected", "o2/rejected", "o1/confirmed", "o0/confirmed", "o5/rejected"}
	if !slices.Equal(ids, want) {
		t.Fatalf("account 1's orders %v, want %v", ids, want)
	}
	if page, err := db.AccountOrders(ctx, 1, "theirs", 10); err != nil || len(page) != 0 {
		t.Fatalf("paging from another account's order: %v %v, want nothing", page, err)
	}
}

func TestAccountsOnlyPollIsStored(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	p := surge.Poll{ID: "members", Title: "Members", Options: []string{"yes", "no"}, AccountsOnly: true}
	if err := db.CreatePoll(ctx, p); err != nil {
		t.Fatal(err)
	}
	polls, err := db.Polls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range polls {
		if got.ID == "members" && !got.AccountsOnly {
			t.Fatalf("poll %+v lost accounts_only", got)
		}
	}
	closed, err := db.ClosePoll(ctx, "members", time.Now())
	if err != nil || !closed.AccountsOnly {
		t.Fatalf("closed poll %+v %v: lost accounts_only", closed, err)
	}
}
