-- Waiting rooms (DESIGN §12): each SKU's line of tickets is written behind as a
-- snapshot of kind 'queue'. SQLite cannot alter a CHECK constraint, so the table
-- is rebuilt with the same columns and constraint names.
CREATE TABLE snapshots_new (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    pos        INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT snapshots_pkey PRIMARY KEY (kind, id),
    CONSTRAINT snapshots_kind_known CHECK (kind IN ('sku', 'cart', 'queue'))
);
INSERT INTO snapshots_new (kind, id, pos, epoch, version, state, updated_at)
    SELECT kind, id, pos, epoch, version, state, updated_at FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_new RENAME TO snapshots;
