-- The textbook flash-sale design: every buyer decrements one hot row and inserts
-- an order, in one transaction (pgbench -f, 64 clients). The row lock serializes
-- every buyer through Postgres' commit path.
BEGIN;
UPDATE stock SET available = available - 1 WHERE sku = 'hot' AND available >= 1;
INSERT INTO orders (sku, qty) VALUES ('hot', 1);
COMMIT;
