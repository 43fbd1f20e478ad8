package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func names(items []surge.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

// Items carry a topic and a description; the search matches every word
// (English stems: "shoes" finds "shoe"), in the name or the description,
// names first; a retired item leaves the catalogue, the search and
// ItemExists, keeps its name, and an order for it is rejected as
// unknown_item.
func TestCatalogueTopicsSearchAndRetirement(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	price := surge.Cents(100)
	str := func(s string) *string { return &s }
	ids := map[string]int64{}
	for _, in := range []surge.ItemInput{
		{Name: "Red running shoe", Topic: str("shoes"), Description: str("Light and fast.")},
		{Name: "Blue boot", Topic: str("shoes"), Description: str("Warm; not for running.")},
		{Name: "Red mug", Topic: str("mugs"), Description: str("Holds tea.")},
		{Name: "Plain mug"},
	} {
		in.Quantity, in.Price = 10, &price
		it, created, err := db.UpsertItem(ctx, in)
		if err != nil || !created {
			t.Fatalf("add %s: %+v %v %v", in.Name, it, created, err)
		}
		ids[it.Name] = it.ID
	}
	// A restock without topic or description keeps them.
	if it, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "red mug", Quantity: 1}); err != nil || it.Topic != "mugs" || it.Description != "Holds tea." {
		t.Fatalf("restock: %+v, %v; want the topic and description kept", it, err)
	}
	search := func(q surge.ItemQuery) []string {
		t.Helper()
		if q.Limit == 0 {
			q.Limit = 50
		}
		items, err := db.SearchItems(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return names(items)
	}
	for _, tt := range []struct {
		q    surge.ItemQuery
		want []string
	}{
		{surge.ItemQuery{Topic: "shoes"}, []string{"Red running shoe", "Blue boot"}},
		{surge.ItemQuery{Words: "shoes"}, []string{"Red running shoe"}},
		{surge.ItemQuery{Words: "running"}, []string{"Red running shoe", "Blue boot"}}, // name before description
		{surge.ItemQuery{Words: "red"}, []string{"Red running shoe", "Red mug"}},
		{surge.ItemQuery{Words: "red", Topic: "mugs"}, []string{"Red mug"}},
		{surge.ItemQuery{Words: "red tea"}, []string{"Red mug"}},
		{surge.ItemQuery{Words: `"running shoe"`}, []string{"Red running shoe"}},
		{surge.ItemQuery{Words: "mug -red"}, []string{"Plain mug"}},
		{surge.ItemQuery{Words: "(&|!:*"}, nil}, // query syntax is words, never an error
		{surge.ItemQuery{Words: "nothing"}, nil},
		{surge.ItemQuery{Limit: 2, Offset: 1}, []string{"Blue boot", "Red mug"}},
	} {
		if got := search(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("search %+v = %q, want %q", tt.q, got, tt.want)
		}
	}

	mug := ids["Red mug"]
	it, err := db.RetireItem(ctx, mug)
	if err != nil || !it.Retired {
		t.Fatalf("retire: %+v, %v", it, err)
	}
	if _, err := db.RetireItem(ctx, mug); err != nil {
		t.Fatalf("retiring again: %v", err)
	}
	if _, err := db.RetireItem(ctx, 999999); surge.ErrorCode(err) != surge.ENOTFOUND {
		t.Fatalf("retiring an unknown item: %v", err)
	}
	if got := search(surge.ItemQuery{Words: "red"}); !slices.Equal(got, []string{"Red running shoe"}) {
		t.Fatalf("search red after retiring the mug: %q", got)
	}
	items, _ := db.Items(ctx)
	all, _ := db.AllItems(ctx)
	if slices.Contains(names(items), "Red mug") || !slices.Contains(names(all), "Red mug") {
		t.Fatalf("catalogue %q, admin's list %q: want the retired mug in admin's only", names(items), names(all))
	}
	if ok, err := db.ItemExists(ctx, mug); err != nil || ok {
		t.Fatalf("ItemExists(retired) = %v, %v", ok, err)
	}
	if _, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "RED MUG", Quantity: 1, Price: &price}); surge.ErrorCode(err) != surge.ECONFLICT {
		t.Fatalf("a new item under a retired name: %v, want conflict", err)
	}
	outcomes, err := db.ApplyOrders(ctx, []surge.Order{{ID: "o-retired", Lines: []surge.OrderLine{{Item: mug, Quantity: 1}}}})
	if err != nil || len(outcomes) != 1 || outcomes[0].Status != surge.OrderRejected || outcomes[0].Reason != surge.ReasonUnknownItem {
		t.Fatalf("an order for a retired item: %+v, %v; want rejected unknown_item", outcomes, err)
	}
}
