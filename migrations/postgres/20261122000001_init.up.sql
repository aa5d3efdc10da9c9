-- flashcore schema v1 (Postgres). Constraint names are mapped to API errors.

CREATE TABLE products (
    sku               TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    price_amount      BIGINT  NOT NULL,
    currency          TEXT    NOT NULL,
    max_per_order     INTEGER,
    sale_starts_at_ms BIGINT,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_pkey PRIMARY KEY (sku),
    CONSTRAINT products_price_nonnegative CHECK (price_amount >= 0),
    CONSTRAINT products_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_max_per_order_positive CHECK (max_per_order IS NULL OR max_per_order > 0)
);

-- Journal positions, assigned in commit order by the single group-commit writer.
CREATE SEQUENCE journal_pos_seq AS BIGINT START WITH 1;

CREATE TABLE orders (
    order_id        UUID    NOT NULL,
    pos             BIGINT  NOT NULL,
    epoch           BIGINT  NOT NULL,
    cart_id         UUID    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    total_amount    BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    email           TEXT,
    payment_ref     TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (order_id),
    CONSTRAINT orders_pos_unique UNIQUE (pos),
    CONSTRAINT orders_cart_unique UNIQUE (cart_id),
    CONSTRAINT orders_idempotency_key_unique UNIQUE (idempotency_key),
    CONSTRAINT orders_total_nonnegative CHECK (total_amount >= 0)
);

CREATE TABLE order_lines (
    order_id    UUID    NOT NULL,
    sku         TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    qty         INTEGER NOT NULL,
    unit_amount BIGINT  NOT NULL,
    line_amount BIGINT  NOT NULL,
    hold_id     UUID    NOT NULL,
    CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, sku),
    CONSTRAINT order_lines_order_fkey FOREIGN KEY (order_id) REFERENCES orders (order_id),
    CONSTRAINT order_lines_qty_positive CHECK (qty > 0)
);

-- Every durable change of a SKU's stock: sold units (one per order line) and
-- operator restocks / totals. `sold` of a SKU is derived from these.
CREATE TABLE stock_facts (
    pos      BIGINT NOT NULL,
    sku      TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    qty      BIGINT NOT NULL,
    order_id UUID,
    hold_id  UUID,
    epoch    BIGINT NOT NULL,
    CONSTRAINT stock_facts_pkey PRIMARY KEY (sku, pos),
    CONSTRAINT stock_facts_kind_known CHECK (kind IN ('sold', 'restocked', 'total_set')),
    CONSTRAINT stock_facts_sold_has_order CHECK (kind <> 'sold' OR (order_id IS NOT NULL AND hold_id IS NOT NULL)),
    CONSTRAINT stock_facts_qty_nonnegative CHECK (qty >= 0)
);
CREATE INDEX stock_facts_order_idx ON stock_facts (order_id) WHERE order_id IS NOT NULL;

-- Latest write-behind state per entity; `version` only moves forward.
CREATE TABLE snapshots (
    kind       TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    pos        BIGINT NOT NULL,
    epoch      BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    state      JSONB  NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (kind, id),
    CONSTRAINT snapshots_kind_known CHECK (kind IN ('sku', 'cart'))
);

-- Operator API keys, stored as SHA-256 of the key (the key itself is never stored).
CREATE TABLE api_keys (
    id         UUID   NOT NULL,
    name       TEXT   NOT NULL,
    key_sha256 BYTEA  NOT NULL,
    role       TEXT   NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_key_sha256_unique UNIQUE (key_sha256),
    CONSTRAINT api_keys_role_known CHECK (role IN ('operator', 'admin'))
);
