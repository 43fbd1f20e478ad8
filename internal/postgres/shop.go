package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/surge"
)

// Notification channels. Every commit that changes the catalogue or the
// polls announces it, so caches drop their copy.
const (
	CatalogChannel = "surge_catalog"
	PollsChannel   = "surge_polls"
)

// UpsertItem adds an item, or restocks it if one with the same name (case
// and surrounding spaces aside) exists: quantity is added and the price is
// replaced if given. It is one atomic statement, so concurrent restocks all
// count. created reports a new item.
func (db *DB) UpsertItem(ctx context.Context, in surge.ItemInput) (item surge.Item, created bool, err error) {
	var price *int64
	if in.Price != nil {
		p := int64(*in.Price)
		price = &p
	}
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if price == nil {
			// A restock may omit the price; a new item may not.
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE name_key = $1)`, surge.ItemKey(in.Name)).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return &surge.Error{Code: surge.EINVALID, Message: "invalid item", Fields: map[string]string{"price": "is required for a new item"}}
			}
		}
		var cents int64
		err := tx.QueryRow(ctx, `
			INSERT INTO items (name, name_key, quantity, price_cents) VALUES ($1, $2, $3, coalesce($4, 0))
			ON CONFLICT (name_key) DO UPDATE
				SET quantity = items.quantity + excluded.quantity,
				    price_cents = coalesce($4, items.price_cents),
				    updated_at = now()
			RETURNING id, name, quantity, price_cents, xmax = 0`,
			in.Name, surge.ItemKey(in.Name), in.Quantity, price,
		).Scan(&item.ID, &item.Name, &item.Quantity, &cents, &created)
		if err != nil {
			return err
		}
		item.Price = surge.Cents(cents)
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, CatalogChannel, fmt.Sprint(item.ID))
		return err
	})
	if err != nil {
		var se *surge.Error
		if errors.As(err, &se) {
			return surge.Item{}, false, err
		}
		return surge.Item{}, false, db.classify(fmt.Errorf("upsert item %q: %w", in.Name, err))
	}
	return item, created, nil
}

// Items returns the catalogue, by id.
func (db *DB) Items(ctx context.Context) ([]surge.Item, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, name, quantity, price_cents FROM items ORDER BY id`)
	if err != nil {
		return nil, db.classify(fmt.Errorf("list items: %w", err))
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.Item, error) {
		var it surge.Item
		var cents int64
		err := r.Scan(&it.ID, &it.Name, &it.Quantity, &cents)
		it.Price = surge.Cents(cents)
		return it, err
	})
	if err != nil {
		return nil, db.classify(fmt.Errorf("list items: %w", err))
	}
	return items, nil
}

// ItemExists reports whether an item with this id exists.
func (db *DB) ItemExists(ctx context.Context, id int64) (bool, error) {
	var ok bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, db.classify(fmt.Errorf("item %d: %w", id, err))
	}
	return ok, nil
}

// CreatePoll stores a new poll. An existing id is ECONFLICT.
func (db *DB) CreatePoll(ctx context.Context, p surge.Poll) error {
	if err := p.Validate(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO polls (id, title) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, p.ID, p.Title)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return surge.Errorf(surge.ECONFLICT, "poll %q already exists", p.ID)
		}
		for i, o := range p.Options {
			if _, err := tx.Exec(ctx, `INSERT INTO poll_options (poll, option, position) VALUES ($1, $2, $3)`, p.ID, o, i); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO option_counts (poll, option) VALUES ($1, $2)`, p.ID, o); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, PollsChannel, p.ID)
		return err
	})
	var se *surge.Error
	if errors.As(err, &se) {
		return err
	}
	if err != nil {
		return db.classify(fmt.Errorf("create poll %s: %w", p.ID, err))
	}
	return nil
}

// OrderState returns an applied order's state, with its lines and total,
// or ENOTFOUND if no worker has applied it yet.
func (db *DB) OrderState(ctx context.Context, id string) (surge.OrderState, error) {
	st := surge.OrderState{OrderID: id}
	var reason *string
	err := db.Pool.QueryRow(ctx, `SELECT status, reason FROM orders WHERE id = $1`, id).Scan(&st.Status, &reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return surge.OrderState{}, surge.Errorf(surge.ENOTFOUND, "unknown order %q", id)
	}
	if err != nil {
		return surge.OrderState{}, db.classify(fmt.Errorf("order %s: %w", id, err))
	}
	if reason != nil {
		st.Reason = *reason
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT l.item_id, l.quantity, coalesce(i.name, ''), l.price_cents, coalesce(l.reason, '')
		FROM order_items l LEFT JOIN items i ON i.id = l.item_id
		WHERE l.order_id = $1 ORDER BY l.line`, id)
	if err != nil {
		return surge.OrderState{}, db.classify(fmt.Errorf("order %s lines: %w", id, err))
	}
	var total surge.Cents
	priced := true
	st.Lines, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.StateLine, error) {
		var l surge.StateLine
		var price *int64
		err := r.Scan(&l.Item, &l.Quantity, &l.Name, &price, &l.Reason)
		if price != nil {
			p := surge.Cents(*price)
			l.Price = &p
			total += p * surge.Cents(l.Quantity)
		} else {
			priced = false
		}
		return l, err
	})
	if err != nil {
		return surge.OrderState{}, db.classify(fmt.Errorf("order %s lines: %w", id, err))
	}
	if priced && len(st.Lines) > 0 {
		st.Total = &total
	}
	st.SetSingle()
	return st, nil
}

// applyOrders applies a batch of orders inside tx: each order id is claimed
// once (a repeat does nothing), then the stock of every item involved is
// locked in id order, and the orders are decided first come, first served,
// each all or nothing (surge.DecideOrder): confirmed only if every line's
// stock suffices, then taking all of it. It returns the outcomes of the
// orders it claimed, then one OrderConflict outcome per entry that reuses an
// id taken by an order with other lines: those are never applied.
func applyOrders(ctx context.Context, tx pgx.Tx, orders []surge.Order) ([]surge.OrderOutcome, error) {
	// One entry per id: the first occurrence.
	seen := map[string]bool{}
	var batch []surge.Order
	for _, o := range orders {
		if !seen[o.ID] {
			seen[o.ID] = true
			batch = append(batch, o)
		}
	}
	sorted := slices.Clone(batch)
	slices.SortFunc(sorted, func(a, b surge.Order) int { return cmp.Compare(a.ID, b.ID) })
	n := len(sorted)
	ids, items, qty, nodes := make([]string, n), make([]*int64, n), make([]*int32, n), make([]string, n)
	at := make([]*time.Time, n)
	for i, o := range sorted {
		ids[i], nodes[i] = o.ID, o.Node
		if len(o.Lines) == 1 { // as before carts, for the readers of that release
			q := int32(o.Lines[0].Quantity)
			items[i], qty[i] = &sorted[i].Lines[0].Item, &q
		}
		if !o.At.IsZero() {
			at[i] = &sorted[i].At
		}
	}
	// 1. Claim the ids. A concurrent claim of the same id waits for us.
	rows, err := tx.Query(ctx, `
		INSERT INTO orders (id, item_id, quantity, status, node, ordered_at)
		SELECT id, item, qty, 'pending', node, at
		FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::timestamptz[]) AS t(id, item, qty, node, at)
		ORDER BY id
		ON CONFLICT (id) DO NOTHING
		RETURNING id`, ids, items, qty, nodes, at)
	if err != nil {
		return nil, fmt.Errorf("claim orders: %w", err)
	}
	claimedIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("claim orders: %w", err)
	}
	claimed := make(map[string]bool, len(claimedIDs))
	for _, id := range claimedIDs {
		claimed[id] = true
	}
	conflicts, err := orderConflicts(ctx, tx, orders, batch, claimed)
	if err != nil {
		return nil, err
	}
	if len(claimedIDs) == 0 {
		return conflicts, nil
	}

	// 2. Lock the stock of every item involved, in id order, so that
	// concurrent carts sharing items never wait on each other in a circle.
	var itemIDs []int64
	for _, o := range batch {
		if claimed[o.ID] {
			for _, l := range o.Lines {
				itemIDs = append(itemIDs, l.Item)
			}
		}
	}
	slices.Sort(itemIDs)
	itemIDs = slices.Compact(itemIDs)
	rows, err = tx.Query(ctx, `SELECT id, quantity, price_cents FROM items WHERE id = ANY($1) ORDER BY id FOR UPDATE`, itemIDs)
	if err != nil {
		return nil, fmt.Errorf("lock stock: %w", err)
	}
	stock, prices := map[int64]int64{}, map[int64]int64{}
	var id, q, p int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &q, &p}, func() error { stock[id], prices[id] = q, p; return nil }); err != nil {
		return nil, fmt.Errorf("lock stock: %w", err)
	}
	initial := maps.Clone(stock)

	// 3. Decide in arrival order, then write stock, outcomes and lines.
	var outcomes []surge.OrderOutcome
	var lines orderLineRows
	for _, o := range batch {
		if !claimed[o.ID] {
			continue
		}
		d := surge.DecideOrder(o.Lines, stock)
		d.TakeStock(o.Lines, stock)
		outcomes = append(outcomes, surge.OrderOutcome{ID: o.ID, Status: d.Status, Reason: d.Reason, Short: d.Short})
		lines.add(o, d, prices)
	}
	var b pgx.Batch
	taken := false
	for _, item := range itemIDs {
		if d := initial[item] - stock[item]; d > 0 {
			// The CHECK (quantity >= 0) backs the decisions above.
			b.Queue(`UPDATE items SET quantity = quantity - $2, updated_at = now() WHERE id = $1`, item, d)
			taken = true
		}
	}
	oids, statuses, reasons := make([]string, len(outcomes)), make([]string, len(outcomes)), make([]*string, len(outcomes))
	for i, o := range outcomes {
		oids[i], statuses[i] = o.ID, o.Status
		if o.Reason != "" {
			reasons[i] = &outcomes[i].Reason
		}
	}
	b.Queue(`UPDATE orders o SET status = u.status, reason = u.reason, committed_at = now()
		FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, status, reason) WHERE o.id = u.id`, oids, statuses, reasons)
	b.Queue(`INSERT INTO order_lines (order_id, line, item_id, quantity, price_cents, reason)
		SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::int[], $5::bigint[], $6::text[])`,
		lines.order, lines.line, lines.item, lines.qty, lines.price, lines.reason)
	if taken {
		b.Queue(`SELECT pg_notify($1, 'stock')`, CatalogChannel)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("record orders: %w", err)
	}
	return append(outcomes, conflicts...), nil
}

// orderLineRows are the order_lines rows of a batch, column by column.
type orderLineRows struct {
	order  []string
	line   []int16
	item   []int64
	qty    []int32
	price  []*int64
	reason []*string
}

// add records an order's lines with their unit prices (none for an unknown
// item) and, on the lines at fault of a rejected order, the reason.
func (r *orderLineRows) add(o surge.Order, d surge.Decision, prices map[int64]int64) {
	for i, l := range o.Lines {
		r.order, r.line, r.item, r.qty = append(r.order, o.ID), append(r.line, int16(i)), append(r.item, l.Item), append(r.qty, int32(l.Quantity))
		var price *int64
		if p, ok := prices[l.Item]; ok {
			price = &p
		}
		var reason *string
		if slices.Contains(d.Short, l.Item) {
			reason = &d.Reason
		}
		r.price, r.reason = append(r.price, price), append(r.reason, reason)
	}
}

// orderConflicts finds the entries whose id belongs to an order with other
// lines: the stored order's, for an id taken before this batch, else the
// first entry's in the batch.
func orderConflicts(ctx context.Context, tx pgx.Tx, orders, firsts []surge.Order, claimed map[string]bool) ([]surge.OrderOutcome, error) {
	owner := make(map[string]string, len(firsts))
	var taken []string
	for _, o := range firsts {
		if claimed[o.ID] {
			owner[o.ID] = o.Payload()
		} else {
			taken = append(taken, o.ID)
		}
	}
	if len(taken) > 0 {
		rows, err := tx.Query(ctx, `SELECT order_id, item_id, quantity FROM order_items WHERE order_id = ANY($1)`, taken)
		if err != nil {
			return nil, fmt.Errorf("compare repeated orders: %w", err)
		}
		stored := map[string][]surge.OrderLine{}
		var oid string
		var l surge.OrderLine
		if _, err := pgx.ForEachRow(rows, []any{&oid, &l.Item, &l.Quantity}, func() error {
			stored[oid] = append(stored[oid], l)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("compare repeated orders: %w", err)
		}
		for oid, lines := range stored {
			owner[oid] = surge.LinesPayload(lines)
		}
	}
	var conflicts []surge.OrderOutcome
	for _, o := range orders {
		if o.Payload() != owner[o.ID] {
			conflicts = append(conflicts, surge.OrderOutcome{ID: o.ID, Status: surge.OrderConflict})
		}
	}
	return conflicts, nil
}

// VoteRecord is the vote that counts for one voter.
type VoteRecord struct {
	Voter   string `json:"voter"`
	Choice  string `json:"choice"`
	Version int64  `json:"version"`
	EventID string `json:"event_id"`
}

// CountedVotes returns the vote that counts for every voter of a poll, for
// audits such as the load tool's verification.
func (db *DB) CountedVotes(ctx context.Context, poll string) ([]VoteRecord, error) {
	rows, err := db.Pool.Query(ctx, `SELECT voter, choice, version, event_id FROM votes WHERE poll = $1 ORDER BY voter`, poll)
	if err != nil {
		return nil, db.classify(fmt.Errorf("counted votes of %s: %w", poll, err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[VoteRecord])
	if err != nil {
		return nil, db.classify(fmt.Errorf("counted votes of %s: %w", poll, err))
	}
	return out, nil
}

// OrderRecord is an applied order with its lines. A one-line order also
// has its item and quantity at the top, as before carts.
type OrderRecord struct {
	OrderID  string            `json:"order_id"`
	Item     int64             `json:"item,omitempty"`
	Quantity int               `json:"quantity,omitempty"`
	Status   string            `json:"status"`
	Reason   string            `json:"reason,omitempty"`
	Lines    []surge.OrderLine `json:"lines"`
}

// AppliedOrders returns every applied order, for audits.
func (db *DB) AppliedOrders(ctx context.Context) ([]OrderRecord, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT o.id, coalesce(o.item_id, 0), coalesce(o.quantity, 0), o.status, coalesce(o.reason, ''),
		       coalesce(json_agg(json_build_object('item', l.item_id, 'quantity', l.quantity) ORDER BY l.line)
		                FILTER (WHERE l.order_id IS NOT NULL), '[]')
		FROM orders o LEFT JOIN order_items l ON l.order_id = o.id
		GROUP BY o.id ORDER BY o.id`)
	if err != nil {
		return nil, db.classify(fmt.Errorf("applied orders: %w", err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OrderRecord])
	if err != nil {
		return nil, db.classify(fmt.Errorf("applied orders: %w", err))
	}
	return out, nil
}
