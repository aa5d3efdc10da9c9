-- Ownership of the store (DESIGN §9), as on Postgres: a membership row per
-- process and a lease per shard. SQLite serializes writers, so the fence check
-- inside a journal or snapshot write transaction (BEGIN IMMEDIATE) is atomic
-- with the write: a second process on the same file is refused just the same.

CREATE TABLE cluster_members (
    node_id      TEXT    NOT NULL,
    generation   INTEGER NOT NULL,
    address      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    started_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT cluster_members_pkey PRIMARY KEY (node_id, generation),
    CONSTRAINT cluster_members_status_known CHECK (status IN ('standby', 'owner', 'left'))
);

CREATE TABLE shard_leases (
    shard            INTEGER NOT NULL,
    owner_node       TEXT,
    owner_generation INTEGER,
    epoch            INTEGER NOT NULL DEFAULT 0,
    expires_at_ms    INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT shard_leases_pkey PRIMARY KEY (shard),
    CONSTRAINT shard_leases_shard_nonnegative CHECK (shard >= 0),
    CONSTRAINT shard_leases_owner_complete CHECK ((owner_node IS NULL) = (owner_generation IS NULL)),
    CONSTRAINT shard_leases_epoch_nonnegative CHECK (epoch >= 0)
);
