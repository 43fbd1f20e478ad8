-- Accounts, their sessions, and the orders they placed.
-- email_key is lower(email): an address is registered once, whatever its case.
-- password_hash is a bcrypt hash; the password itself is never stored.
CREATE TABLE accounts (
    id            bigserial   PRIMARY KEY,
    name          text        NOT NULL,
    email         text        NOT NULL,
    email_key     text        NOT NULL UNIQUE,
    password_hash bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A session is stored as the SHA-256 of its random id: a copy of this
-- table logs nobody in. Logging out deletes the row.
CREATE TABLE sessions (
    id_hash    bytea       PRIMARY KEY,
    account_id bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The buyer of an order placed while logged in; NULL for anonymous orders
-- (and every order placed before accounts). No foreign key: the worker
-- records the order whatever the accounts table holds.
ALTER TABLE orders ADD COLUMN account_id bigint;
CREATE INDEX orders_account ON orders (account_id, coalesce(ordered_at, committed_at) DESC, id DESC)
    WHERE account_id IS NOT NULL;

-- A poll may take votes from accounts only.
ALTER TABLE polls ADD COLUMN accounts_only boolean NOT NULL DEFAULT false;

---- create above / drop below ----

ALTER TABLE polls DROP COLUMN accounts_only;
DROP INDEX orders_account;
ALTER TABLE orders DROP COLUMN account_id;
DROP TABLE sessions;
DROP TABLE accounts;
