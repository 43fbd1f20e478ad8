package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// An order_id is one order: an entry that reuses it with another item or
// quantity (a repeat that reached another shard) is never applied and comes
// back as a conflict, whether the id was taken in an earlier batch or
// earlier in the same one. A repeat with the same payload is nothing.
func TestApplyOrdersReportsConflictsAndNeverAppliesThem(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	price := surge.Cents(100)
	var items [2]int64 // a and b, 10 each
	for i, name := range []string{"A", "B"} {
		it, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: name, Quantity: 10, Price: &price})
		if err != nil {
			t.Fatal(err)
		}
		items[i] = it.ID
	}
	a, b := items[0], items[1]
	o := func(id string, item int64, qty int) surge.Order {
		return surge.Order{ID: id, Item: item, Quantity: qty}
	}
	steps := []struct {
		name  string
		batch []surge.Order
		want  []string // outcomes as id/status
	}{
		{"first orders", []surge.Order{o("x", a, 1), o("y", a, 1)}, []string{"x/confirmed", "y/confirmed"}},
		{"a repeat", []surge.Order{o("x", a, 1)}, nil},
		{"another item under a taken id", []surge.Order{o("x", b, 1)}, []string{"x/conflict"}},
		{"another quantity under a taken id", []surge.Order{o("y", a, 3)}, []string{"y/conflict"}},
		{"a conflict and a repeat of the owner", []surge.Order{o("x", b, 2), o("x", a, 1)}, []string{"x/conflict"}},
		{"both in one batch: the first wins", []surge.Order{o("z", b, 1), o("z", a, 1), o("z", b, 1)}, []string{"z/confirmed", "z/conflict"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			outcomes, err := db.ApplyOrders(ctx, st.batch)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, oc := range outcomes {
				got = append(got, oc.ID+"/"+oc.Status)
			}
			if !slices.Equal(got, st.want) {
				t.Fatalf("outcomes %v, want %v", got, st.want)
			}
		})
	}
	// Only the owners were applied: x and y took 2 of A, z 1 of B.
	var state []string
	for _, id := range []string{"x", "y", "z"} {
		s, err := db.OrderState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		state = append(state, fmt.Sprintf("%s:%d×%d:%s", id, s.Item, s.Quantity, s.Status))
	}
	want := fmt.Sprintf("x:%d×1:confirmed y:%d×1:confirmed z:%d×1:confirmed", a, a, b)
	if got := strings.Join(state, " "); got != want {
		t.Fatalf("orders %s, want %s", got, want)
	}
	stock, err := db.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stock[0].Quantity != 8 || stock[1].Quantity != 9 {
		t.Fatalf("stock %+v, want A 8 and B 9", stock)
	}
}
