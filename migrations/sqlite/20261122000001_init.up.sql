-- flashcore schema v1 (SQLite). Same tables and constraint names as Postgres.
-- UUIDs are stored as text, JSON as text, instants as epoch milliseconds.

CREATE TABLE products (
    sku               TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    price_amount      INTEGER NOT NULL,
    currency          TEXT    NOT NULL,
    max_per_order     INTEGER,
    sale_starts_at_ms INTEGER,
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT products_pkey PRIMARY KEY (sku),
    CONSTRAINT products_price_nonnegative CHECK (price_amount >= 0),
    CONSTRAINT products_currency_iso CHECK (length(currency) = 3 AND currency = upper(currency)),
    CONSTRAINT products_max_per_order_positive CHECK (max_per_order IS NULL OR max_per_order > 0)
);

-- Journal positions: SQLite has no sequences; one row holds the last position,
-- advanced inside each journal transaction (writes are serialized anyway).
CREATE TABLE journal_head (
    id  INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    CONSTRAINT journal_head_pkey PRIMARY KEY (id),
    CONSTRAINT journal_head_single_row CHECK (id = 1)
);
INSERT INTO journal_head (id, pos) VALUES (1, 0);

CREATE TABLE orders (
    order_id        TEXT    NOT NULL,
    pos             INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    cart_id         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    total_amount    INTEGER NOT NULL,
    currency        TEXT    NOT NULL,
    email           TEXT,
    payment_ref     TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (order_id),
    CONSTRAINT orders_pos_unique UNIQUE (pos),
    CONSTRAINT orders_cart_unique UNIQUE (cart_id),
    CONSTRAINT orders_idempotency_key_unique UNIQUE (idempotency_key),
    CONSTRAINT orders_total_nonnegative CHECK (total_amount >= 0)
);

CREATE TABLE order_lines (
    order_id    TEXT    NOT NULL,
    sku         TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    qty         INTEGER NOT NULL,
    unit_amount INTEGER NOT NULL,
    line_amount INTEGER NOT NULL,
    hold_id     TEXT    NOT NULL,
    CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, sku),
    CONSTRAINT order_lines_order_fkey FOREIGN KEY (order_id) REFERENCES orders (order_id),
    CONSTRAINT order_lines_qty_positive CHECK (qty > 0)
);

CREATE TABLE stock_facts (
    pos      INTEGER NOT NULL,
    sku      TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    qty      INTEGER NOT NULL,
    order_id TEXT,
    hold_id  TEXT,
    epoch    INTEGER NOT NULL,
    CONSTRAINT stock_facts_pkey PRIMARY KEY (sku, pos),
    CONSTRAINT stock_facts_kind_known CHECK (kind IN ('sold', 'restocked', 'total_set')),
    CONSTRAINT stock_facts_sold_has_order CHECK (kind <> 'sold' OR (order_id IS NOT NULL AND hold_id IS NOT NULL)),
    CONSTRAINT stock_facts_qty_nonnegative CHECK (qty >= 0)
);
CREATE INDEX stock_facts_order_idx ON stock_facts (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE snapshots (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    pos        INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT snapshots_pkey PRIMARY KEY (kind, id),
    CONSTRAINT snapshots_kind_known CHECK (kind IN ('sku', 'cart'))
);

CREATE TABLE api_keys (
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    key_sha256 BLOB NOT NULL,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at TEXT,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_key_sha256_unique UNIQUE (key_sha256),
    CONSTRAINT api_keys_role_known CHECK (role IN ('operator', 'admin'))
);
