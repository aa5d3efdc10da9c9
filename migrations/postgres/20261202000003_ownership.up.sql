-- Ownership of the store (DESIGN §9): a membership row per process and a lease
-- per shard. A node writes only under leases it holds; every journal batch and
-- snapshot write checks the writer's epochs in its own transaction
-- (`flashcore_fence`), so a stale owner's late write is refused.

-- One row per process start (the Orleans SQL-membership pattern): node id plus a
-- generation new for every start, so a restarted process is never its predecessor.
CREATE TABLE cluster_members (
    node_id      TEXT   NOT NULL,
    generation   BIGINT NOT NULL,
    address      TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT cluster_members_pkey PRIMARY KEY (node_id, generation),
    CONSTRAINT cluster_members_status_known CHECK (status IN ('standby', 'owner', 'left'))
);

-- One lease per shard. `epoch` is the fencing token: every take-over bumps it.
-- A released lease keeps its epoch and has no owner. Rows are created by the
-- first node to take the leases, one per shard of its FLASHCORE_SHARDS.
CREATE TABLE shard_leases (
    shard            INTEGER NOT NULL,
    owner_node       TEXT,
    owner_generation BIGINT,
    epoch            BIGINT  NOT NULL DEFAULT 0,
    expires_at_ms    BIGINT  NOT NULL DEFAULT 0,
    CONSTRAINT shard_leases_pkey PRIMARY KEY (shard),
    CONSTRAINT shard_leases_shard_nonnegative CHECK (shard >= 0),
    CONSTRAINT shard_leases_owner_complete CHECK ((owner_node IS NULL) = (owner_generation IS NULL)),
    CONSTRAINT shard_leases_epoch_nonnegative CHECK (epoch >= 0)
);

-- Lease time is the database's clock, so nodes never compare clocks.
CREATE FUNCTION flashcore_now_ms() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- Raises SQLSTATE FC409 unless the node (`node`, `gen`) holds every lease of
-- `shards` at the matching `epochs`. It first takes the fence lock (advisory
-- key 7380381037653616227, "flash_fc") in shared mode until the calling
-- transaction ends; a take-over takes it exclusively. So a take-over waits for
-- every write in flight to commit (and its recovery, which reads after the
-- take-over, sees them), and a write that waited for a take-over checks the new
-- epochs (the check is a later statement, with a newer snapshot). No lease row
-- is locked or written by a write: the lock is in memory, not in the heap.
-- Expiry is not checked: only a take-over bumps an epoch, and until one does no
-- other node writes.
CREATE FUNCTION flashcore_fence(node TEXT, gen BIGINT, shards INTEGER[], epochs BIGINT[]) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held INTEGER;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7380381037653616227);
    SELECT count(*) INTO held
    FROM shard_leases AS l
    JOIN unnest(shards, epochs) AS x(shard, epoch) ON l.shard = x.shard
    WHERE l.owner_node = node AND l.owner_generation = gen AND l.epoch = x.epoch;
    IF held <> coalesce(cardinality(shards), 0) THEN
        RAISE EXCEPTION 'write fenced: %#% does not hold the leases it writes under', node, gen
            USING ERRCODE = 'FC409';
    END IF;
    RETURN TRUE;
END
$$;
