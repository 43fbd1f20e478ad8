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
		return surge.Order{ID: id, Lines: []surge.OrderLine{{Item: item, Quantity: qty}}}
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

// Carts that share items, listed in opposite orders, applied at once by
// concurrent workers: no deadlock (every batch locks its items in id
// order), never oversold, and the stock is exactly what the confirmed carts
// left; each cart is confirmed whole or rejected whole (its lines record no
// take), and a rejected cart has a line its stock could not cover.
func TestConcurrentCartsSharingItems(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	price := surge.Cents(250)
	const initial = 40
	var ids [3]int64
	for i, name := range []string{"A", "B", "C"} {
		it, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: name, Quantity: initial, Price: &price})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = it.ID
	}
	a, b, c := ids[0], ids[1], ids[2]
	carts := [][]surge.OrderLine{
		{{Item: a, Quantity: 1}, {Item: b, Quantity: 2}, {Item: c, Quantity: 1}},
		{{Item: c, Quantity: 1}, {Item: b, Quantity: 1}, {Item: a, Quantity: 2}},
		{{Item: b, Quantity: 3}, {Item: a, Quantity: 1}},
		{{Item: c, Quantity: 2}},
	}
	const workers, batches, perBatch = 6, 6, 5
	sent := map[string][]surge.OrderLine{}
	work := make([][][]surge.Order, workers)
	for w := range workers {
		for bn := range batches {
			var batch []surge.Order
			for k := range perBatch {
				id := fmt.Sprintf("w%d-b%d-%d", w, bn, k)
				lines := carts[(w+bn+k)%len(carts)]
				sent[id] = lines
				batch = append(batch, surge.Order{ID: id, Lines: lines})
			}
			work[w] = append(work[w], batch)
		}
	}
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for _, batch := range work[w] {
				if _, err := db.ApplyOrders(ctx, batch); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatalf("a worker failed (a deadlock?): %v", err)
		}
	}

	taken := map[int64]int64{}
	confirmed, rejected := 0, 0
	items, err := db.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int64]int64{}
	for _, it := range items {
		left[it.ID] = it.Quantity
	}
	for id, lines := range sent {
		st, err := db.OrderState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if surge.LinesPayload(st.OrderLines()) != surge.LinesPayload(lines) {
			t.Fatalf("order %s has lines %+v, sent %+v", id, st.Lines, lines)
		}
		switch st.Status {
		case surge.OrderConfirmed:
			confirmed++
			var total surge.Cents
			for _, l := range lines {
				taken[l.Item] += int64(l.Quantity)
				total += price * surge.Cents(l.Quantity)
			}
			if st.Total == nil || *st.Total != total || st.Reason != "" {
				t.Fatalf("confirmed order %s: total %v reason %q, want %s", id, st.Total, st.Reason, total)
			}
		case surge.OrderRejected:
			rejected++
			// Stock only went down: a line at fault asked for more than is left now.
			short := false
			for _, l := range st.Lines {
				if l.Reason != "" && int64(l.Quantity) > left[l.Item] {
					short = true
				}
			}
			if st.Reason != surge.ReasonOutOfStock || !short {
				t.Fatalf("order %s rejected (%s) with lines %+v while stock is %v", id, st.Reason, st.Lines, left)
			}
		default:
			t.Fatalf("order %s is %s", id, st.Status)
		}
	}
	for _, it := range ids {
		if taken[it] > initial || left[it] != initial-taken[it] {
			t.Fatalf("item %d: %d confirmed of %d, %d left", it, taken[it], initial, left[it])
		}
	}
	if confirmed == 0 || rejected == 0 {
		t.Fatalf("%d confirmed, %d rejected: the test should see both", confirmed, rejected)
	}
	t.Logf("%d carts confirmed, %d rejected; stock left %v", confirmed, rejected, left)
}

// A cart with an unknown item is rejected as unknown_item naming it, takes
// nothing, and has no total; one that fits is confirmed with its total.
func TestCartOutcomes(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	p1, p2 := surge.Cents(1250), surge.Cents(99)
	mug, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Mug", Quantity: 5, Price: &p1})
	if err != nil {
		t.Fatal(err)
	}
	pen, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Pen", Quantity: 1, Price: &p2})
	if err != nil {
		t.Fatal(err)
	}
	outcomes, err := db.ApplyOrders(ctx, []surge.Order{
		{ID: "unknown", Lines: []surge.OrderLine{{Item: mug.ID, Quantity: 1}, {Item: 999, Quantity: 1}}},
		{ID: "short", Lines: []surge.OrderLine{{Item: mug.ID, Quantity: 1}, {Item: pen.ID, Quantity: 2}}},
		{ID: "fits", Lines: []surge.OrderLine{{Item: pen.ID, Quantity: 1}, {Item: mug.ID, Quantity: 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outcomes {
		got = append(got, fmt.Sprintf("%s/%s/%s/%v", o.ID, o.Status, o.Reason, o.Short))
	}
	want := []string{"unknown/rejected/unknown_item/[999]", fmt.Sprintf("short/rejected/out_of_stock/[%d]", pen.ID), "fits/confirmed//[]"}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	st, err := db.OrderState(ctx, "fits")
	if err != nil || st.Total == nil || st.Total.String() != "25.99" || len(st.Lines) != 2 || st.Lines[0].Name != "Pen" || st.Item != 0 {
		t.Fatalf("fits: %+v %v", st, err)
	}
	st, err = db.OrderState(ctx, "unknown")
	if err != nil || st.Total != nil || st.Reason != surge.ReasonUnknownItem || st.Lines[1].Reason != surge.ReasonUnknownItem || st.Lines[0].Reason != "" {
		t.Fatalf("unknown: %+v %v", st, err)
	}
	items, _ := db.Items(ctx)
	if items[0].Quantity != 3 || items[1].Quantity != 0 {
		t.Fatalf("stock %+v, want mug 3 and pen 0", items)
	}
	audit, err := db.AppliedOrders(ctx)
	if err != nil || len(audit) != 3 || len(audit[0].Lines) != 2 || audit[0].OrderID != "fits" || audit[0].Lines[1].Item != mug.ID {
		t.Fatalf("audit %+v %v", audit, err)
	}
}
