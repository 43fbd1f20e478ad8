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
	// RetiredPrefix starts a CatalogChannel payload that names a retired
	// item ("retired:12"), so caches forget its id at once.
	RetiredPrefix = "retired:"
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
			INSERT INTO items (name, name_key, quantity, price_cents, topic, description)
			VALUES ($1, $2, $3, coalesce($4, 0), coalesce($5, ''), coalesce($6, ''))
			ON CONFLICT (name_key) DO UPDATE
				SET quantity = items.quantity + excluded.quantity,
				    price_cents = coalesce($4, items.price_cents),
				    topic = coalesce($5, items.topic),
				    description = coalesce($6, items.description),
				    updated_at = now()
				WHERE items.retired_at IS NULL
			RETURNING id, name, quantity, price_cents, topic, description, xmax = 0`,
			in.Name, surge.ItemKey(in.Name), in.Quantity, price, in.Topic, in.Description,
		).Scan(&item.ID, &item.Name, &item.Quantity, &cents, &item.Topic, &item.Description, &created)
		if errors.Is(err, pgx.ErrNoRows) { // the name is a retired item's
			return surge.Errorf(surge.ECONFLICT, "item %q is retired; give the new one another name", in.Name)
		}
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

// itemColumns are what an Item is read from, in scanItem's order.
const itemColumns = `id, name, quantity, price_cents, topic, description, retired_at IS NOT NULL`

func scanItem(r pgx.CollectableRow) (surge.Item, error) {
	var it surge.Item
	var cents int64
	err := r.Scan(&it.ID, &it.Name, &it.Quantity, &cents, &it.Topic, &it.Description, &it.Retired)
	it.Price = surge.Cents(cents)
	return it, err
}

// Items returns the catalogue (the items on sale), by id.
func (db *DB) Items(ctx context.Context) ([]surge.Item, error) {
	return db.queryItems(ctx, "list items", `SELECT `+itemColumns+` FROM items WHERE retired_at IS NULL ORDER BY id`)
}

// AllItems returns every item, retired ones included, by id: admin's list.
func (db *DB) AllItems(ctx context.Context) ([]surge.Item, error) {
	return db.queryItems(ctx, "list items", `SELECT `+itemColumns+` FROM items ORDER BY id`)
}

// SearchItems returns the items on sale that match q: of q.Topic, if set,
// and whose name or description has every word of q.Words (English
// stemming; names weigh more), best matches first, then by id.
func (db *DB) SearchItems(ctx context.Context, q surge.ItemQuery) ([]surge.Item, error) {
	return db.queryItems(ctx, "search items", `
		SELECT `+itemColumns+` FROM items
		WHERE retired_at IS NULL AND ($1 = '' OR topic = $1)
		  AND ($2 = '' OR search @@ websearch_to_tsquery('english', $2))
		ORDER BY CASE WHEN $2 = '' THEN 0 ELSE ts_rank(search, websearch_to_tsquery('english', $2)) END DESC, id
		LIMIT $3 OFFSET $4`, q.Topic, q.Words, q.Limit, q.Offset)
}

// RecentItems returns the n items on sale whose stock changed last (a sale
// or a restock), the latest first.
func (db *DB) RecentItems(ctx context.Context, n int) ([]surge.Item, error) {
	return db.queryItems(ctx, "list recent items", `SELECT `+itemColumns+` FROM items WHERE retired_at IS NULL ORDER BY updated_at DESC, id LIMIT $1`, n)
}

func (db *DB) queryItems(ctx context.Context, op, sql string, args ...any) ([]surge.Item, error) {
	rows, err := db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, db.classify(fmt.Errorf("%s: %w", op, err))
	}
	items, err := pgx.CollectRows(rows, scanItem)
	if err != nil {
		return nil, db.classify(fmt.Errorf("%s: %w", op, err))
	}
	return items, nil
}

// RetireItem takes an item off sale for good and returns it. Retiring a
// retired item changes nothing. An unknown id is ENOTFOUND.
func (db *DB) RetireItem(ctx context.Context, id int64) (surge.Item, error) {
	var item surge.Item
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE items SET retired_at = coalesce(retired_at, now()), updated_at = now()
			WHERE id = $1 RETURNING `+itemColumns, id)
		if err != nil {
			return err
		}
		if item, err = pgx.CollectExactlyOneRow(rows, scanItem); errors.Is(err, pgx.ErrNoRows) {
			return surge.Errorf(surge.ENOTFOUND, "unknown item %d", id)
		} else if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, CatalogChannel, RetiredPrefix+fmt.Sprint(id))
		return err
	})
	var se *surge.Error
	if errors.As(err, &se) {
		return surge.Item{}, err
	}
	if err != nil {
		return surge.Item{}, db.classify(fmt.Errorf("retire item %d: %w", id, err))
	}
	return item, nil
}

// ItemExists reports whether an item with this id is on sale.
func (db *DB) ItemExists(ctx context.Context, id int64) (bool, error) {
	var ok bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE id = $1 AND retired_at IS NULL)`, id).Scan(&ok); err != nil {
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
		tag, err := tx.Exec(ctx, `INSERT INTO polls (id, title, opens_at, closes_at, accounts_only) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO NOTHING`, p.ID, p.Title, p.OpensAt, p.ClosesAt, p.AccountsOnly)
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
	accounts := orderAccounts(sorted)
	// 1. Claim the ids. A concurrent claim of the same id waits for us.
	rows, err := tx.Query(ctx, `
		INSERT INTO orders (id, item_id, quantity, status, node, ordered_at, account_id)
		SELECT id, item, qty, 'pending', node, at, account
		FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::timestamptz[], $6::bigint[]) AS t(id, item, qty, node, at, account)
		ORDER BY id
		ON CONFLICT (id) DO NOTHING
		RETURNING id`, ids, items, qty, nodes, at, accounts)
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
	// A retired item is not on sale: its lines are unknown_item.
	rows, err = tx.Query(ctx, `SELECT id, quantity, price_cents FROM items WHERE id = ANY($1) AND retired_at IS NULL ORDER BY id FOR UPDATE`, itemIDs)
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

// orderAccounts is each order's buyer, NULL for an anonymous order.
func orderAccounts(orders []surge.Order) []*int64 {
	accounts := make([]*int64, len(orders))
	for i := range orders {
		if orders[i].Account != 0 {
			accounts[i] = &orders[i].Account
		}
	}
	return accounts
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
	Voter       string     `json:"voter"`
	Choice      string     `json:"choice"`
	Version     int64      `json:"version"`
	EventID     string     `json:"event_id"`
	Node        string     `json:"node"`              // the frontend that captured it
	CastAt      *time.Time `json:"cast_at,omitempty"` // when it was captured
	CommittedAt time.Time  `json:"committed_at"`
}

// CountedVotes returns the vote that counts for each voter of a poll, for
// audits such as the load tool's verification: at most limit of them, in
// voter order, starting after the voter after ("" for the first page).
func (db *DB) CountedVotes(ctx context.Context, poll, after string, limit int) ([]VoteRecord, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT voter, choice, version, event_id, node, cast_at, committed_at FROM votes
		WHERE poll = $1 AND voter > $2 ORDER BY voter LIMIT $3`, poll, after, limit)
	if err != nil {
		return nil, db.classify(fmt.Errorf("counted votes of %s: %w", poll, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (VoteRecord, error) {
		v, err := pgx.RowToStructByPos[VoteRecord](r)
		if v.CastAt != nil {
			*v.CastAt = v.CastAt.UTC()
		}
		v.CommittedAt = v.CommittedAt.UTC()
		return v, err
	})
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

// ClosePoll closes a poll at the given time, or keeps its earlier closing
// time, and returns the poll as it now is. Votes cast before the close still
// count when they are drained later. An unknown poll is ENOTFOUND.
func (db *DB) ClosePoll(ctx context.Context, id string, at time.Time) (surge.Poll, error) {
	var p surge.Poll
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE polls SET closes_at = least(coalesce(closes_at, $2), $2),
				-- a poll closed before it opened never opens
				opens_at = CASE WHEN opens_at >= least(coalesce(closes_at, $2), $2) THEN NULL ELSE opens_at END
			WHERE id = $1
			RETURNING id, title, opens_at, closes_at, accounts_only,
				(SELECT array_agg(option ORDER BY position, option) FROM poll_options WHERE poll = $1)`, id, at).
			Scan(&p.ID, &p.Title, &p.OpensAt, &p.ClosesAt, &p.AccountsOnly, &p.Options)
		if errors.Is(err, pgx.ErrNoRows) {
			return surge.Errorf(surge.ENOTFOUND, "unknown poll %q", id)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, PollsChannel, id)
		return err
	})
	var se *surge.Error
	if errors.As(err, &se) {
		return surge.Poll{}, err
	}
	if err != nil {
		return surge.Poll{}, db.classify(fmt.Errorf("close poll %s: %w", id, err))
	}
	return p.UTC(), nil
}
