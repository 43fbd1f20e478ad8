package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surge-vote/surge/internal/surge"
)

// CreateAccount stores a new account. An email registered before, in any
// case, is ECONFLICT.
func (db *DB) CreateAccount(ctx context.Context, a surge.Account, hash []byte) (surge.Account, error) {
	err := db.Pool.QueryRow(ctx, `
		INSERT INTO accounts (name, email, email_key, password_hash) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at`, a.Name, a.Email, surge.EmailKey(a.Email), hash).Scan(&a.ID, &a.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return surge.Account{}, surge.Errorf(surge.ECONFLICT, "email already registered")
	}
	if err != nil {
		return surge.Account{}, db.classify(fmt.Errorf("create account: %w", err))
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// AccountByEmail finds an account and its password hash by email, in any
// case; ENOTFOUND if there is none.
func (db *DB) AccountByEmail(ctx context.Context, email string) (surge.Account, []byte, error) {
	var a surge.Account
	var hash []byte
	err := db.Pool.QueryRow(ctx, `SELECT id, name, email, created_at, password_hash FROM accounts WHERE email_key = $1`,
		surge.EmailKey(email)).Scan(&a.ID, &a.Name, &a.Email, &a.CreatedAt, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return surge.Account{}, nil, surge.Errorf(surge.ENOTFOUND, "no such account")
	}
	if err != nil {
		return surge.Account{}, nil, db.classify(fmt.Errorf("find account: %w", err))
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, hash, nil
}

// CreateSession stores a session by the hash of its id, and drops a few of
// the expired ones, so the table holds live sessions and not much more.
func (db *DB) CreateSession(ctx context.Context, idHash []byte, account int64, expires time.Time) error {
	var b pgx.Batch
	b.Queue(`INSERT INTO sessions (id_hash, account_id, expires_at) VALUES ($1, $2, $3)`, idHash, account, expires)
	b.Queue(`DELETE FROM sessions WHERE id_hash IN
		(SELECT id_hash FROM sessions WHERE expires_at < now() ORDER BY expires_at LIMIT 10)`)
	if err := db.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return db.classify(fmt.Errorf("create session: %w", err))
	}
	return nil
}

// SessionAccount returns the account of a session that is stored and not
// expired at now; ENOTFOUND otherwise.
func (db *DB) SessionAccount(ctx context.Context, idHash []byte, now time.Time) (int64, error) {
	var account int64
	err := db.Pool.QueryRow(ctx, `SELECT account_id FROM sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash, now).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, surge.Errorf(surge.ENOTFOUND, "no such session")
	}
	if err != nil {
		return 0, db.classify(fmt.Errorf("find session: %w", err))
	}
	return account, nil
}

// DeleteSession revokes a session (logout); an unknown one is no error.
func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := db.Pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, idHash); err != nil {
		return db.classify(fmt.Errorf("delete session: %w", err))
	}
	return nil
}

// AccountOrders lists an account's applied orders, newest first (by
// capture time, then id; item and quantity only for a one-line order, a
// cart's lines are on its order page): at most limit, older than the order before (""
// for the newest; an order of another account or none starts nowhere).
func (db *DB) AccountOrders(ctx context.Context, account int64, before string, limit int) ([]surge.AccountOrder, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT o.id, o.status, coalesce(o.reason, ''), coalesce(o.item_id, 0), coalesce(o.quantity, 0), coalesce(o.ordered_at, o.committed_at)
		FROM orders o
		WHERE o.account_id = $1 AND ($2 = '' OR (coalesce(o.ordered_at, o.committed_at), o.id) <
			(SELECT coalesce(b.ordered_at, b.committed_at), b.id FROM orders b WHERE b.id = $2 AND b.account_id = $1))
		ORDER BY coalesce(o.ordered_at, o.committed_at) DESC, o.id DESC
		LIMIT $3`, account, before, limit)
	if err != nil {
		return nil, db.classify(fmt.Errorf("orders of account %d: %w", account, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.AccountOrder, error) {
		var o surge.AccountOrder
		err := r.Scan(&o.OrderID, &o.Status, &o.Reason, &o.Item, &o.Quantity, &o.OrderedAt)
		o.OrderedAt = o.OrderedAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, db.classify(fmt.Errorf("orders of account %d: %w", account, err))
	}
	return out, nil
}
