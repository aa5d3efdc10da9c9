-- Set-up for pg_hot_row.sql (scripts/sidebyside.sh runs it in a throwaway
-- database): one hot stock row with stock to spare, and an orders table shaped
-- like a real one (uuid key, the SKU, quantity, a timestamp).
CREATE TABLE stock (
    sku       text PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);
CREATE TABLE orders (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku        text NOT NULL REFERENCES stock (sku),
    qty        integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO stock (sku, available) VALUES ('hot', 1000000000);
