DELETE FROM snapshots WHERE kind = 'queue';
CREATE TABLE snapshots_old (
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
INSERT INTO snapshots_old (kind, id, pos, epoch, version, state, updated_at)
    SELECT kind, id, pos, epoch, version, state, updated_at FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_old RENAME TO snapshots;
