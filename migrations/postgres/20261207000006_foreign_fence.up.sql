-- Cross-node checkouts (DESIGN §9): a node journals an order whose cart it owns
-- but which sells stock a hold on another node's SKU kept, prepared there under
-- that node's lease. The write relies on that lease: it may commit only while
-- the other node (the same process: node and generation) still holds the shard
-- at the epoch the hold was prepared under, and before the hold's deadline
-- (after which its owner may settle the prepared hold on its own).

-- Raises SQLSTATE FC410 unless, for every i, `nodes[i]`#`gens[i]` holds the
-- lease of `shards[i]` at `epochs[i]` and the database's clock is before
-- `until_ms[i]`. Called after `flashcore_fence` in the same statement (a stale
-- writer is FC409 first); it takes the same fence lock shared, so a take-over
-- (which takes it exclusively) comes wholly before or after the write, and the
-- check, a later statement than the lock, reads the epochs as they are then.
-- No foreign claim (the common batch): nothing to check and no lock taken here.
CREATE FUNCTION flashcore_fence_foreign(shards INTEGER[], epochs BIGINT[], nodes TEXT[], gens BIGINT[],
                                        until_ms BIGINT[]) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    wanted INTEGER := coalesce(cardinality(shards), 0);
    now_ms BIGINT;
    held INTEGER;
BEGIN
    IF wanted = 0 THEN
        RETURN TRUE;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(7380381037653616227);
    now_ms := flashcore_now_ms();
    SELECT count(*) INTO held
    FROM shard_leases AS l
    JOIN unnest(shards, epochs, nodes, gens, until_ms) AS x(shard, epoch, node, gen, deadline) ON l.shard = x.shard
    WHERE l.owner_node = x.node AND l.owner_generation = x.gen AND l.epoch = x.epoch AND now_ms < x.deadline;
    IF held <> wanted THEN
        RAISE EXCEPTION 'write moved: a shard it relies on is no longer held as it was prepared (or its deadline passed)'
            USING ERRCODE = 'FC410';
    END IF;
    RETURN TRUE;
END
$$;
