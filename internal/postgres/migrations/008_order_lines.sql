-- Carts: an order has 1 to 20 lines and is confirmed or rejected whole.
-- orders keeps item_id and quantity for one-line orders, so the release
-- before carts still reads them during a rolling update; they are NULL for
-- a cart. Its lines are in order_lines, with the unit price of the moment
-- the order was decided (NULL for an unknown item) and, for a rejected
-- order, why each line at fault failed it.
ALTER TABLE orders ALTER COLUMN item_id DROP NOT NULL,
                   ALTER COLUMN quantity DROP NOT NULL;

CREATE TABLE order_lines (
    order_id    text     NOT NULL REFERENCES orders (id),
    line        smallint NOT NULL CHECK (line BETWEEN 0 AND 19),
    item_id     bigint   NOT NULL,
    quantity    int      NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    price_cents bigint,
    reason      text,
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, item_id)
);

-- Every order's lines: those of order_lines, and for an order without any
-- (applied before this migration, or by a worker of the release before
-- carts during a rolling update) its one item and quantity.
CREATE VIEW order_items AS
    SELECT order_id, line, item_id, quantity, price_cents, reason FROM order_lines
    UNION ALL
    SELECT o.id, 0::smallint, o.item_id, o.quantity, NULL::bigint, o.reason FROM orders o
    WHERE o.item_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id);

---- create above / drop below ----

DROP VIEW order_items;
DROP TABLE order_lines;
DELETE FROM orders WHERE item_id IS NULL;
ALTER TABLE orders ALTER COLUMN item_id SET NOT NULL,
                   ALTER COLUMN quantity SET NOT NULL;
