-- Items for sale and the orders against them.
CREATE TABLE items (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    name_key    text        NOT NULL UNIQUE, -- lower(trim(name)): names compare case-insensitively
    quantity    bigint      NOT NULL CHECK (quantity >= 0),
    price_cents bigint      NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per order id. No foreign key on item_id: an order for an
-- unknown item is recorded as rejected.
CREATE TABLE orders (
    id           text        PRIMARY KEY,
    item_id      bigint      NOT NULL,
    quantity     int         NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    status       text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
    reason       text,
    node         text        NOT NULL DEFAULT '',
    ordered_at   timestamptz,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_item_status ON orders (item_id, status);

---- create above / drop below ----

DROP TABLE orders;
DROP TABLE items;
