-- The fence checks look each claimed shard up by its key instead of joining the
-- claims against the whole lease table. Same rules, same errors (FC409, FC410);
-- only the plan changes. A function's plan is made once per connection, often
-- before the lease table has statistics, and the join was then planned as a
-- nested loop that read every lease row once per claim: a journal batch of
-- orders from many carts claims many shards, and the check ran inside every
-- batch. A lookup per claim through the primary key has no other plan.

CREATE OR REPLACE FUNCTION flashcore_fence(node TEXT, gen BIGINT, shards INTEGER[], epochs BIGINT[]) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held INTEGER;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7380381037653616227);
    -- A claim counts when its shard's row is held by (node, gen) at its epoch
    -- (a missing row or a released lease gives NULL: not counted).
    SELECT count(*) INTO held
    FROM unnest(shards, epochs) AS x(shard, epoch)
    WHERE (SELECT l.owner_node = node AND l.owner_generation = gen AND l.epoch = x.epoch
           FROM shard_leases AS l WHERE l.shard = x.shard);
    IF held <> coalesce(cardinality(shards), 0) THEN
        RAISE EXCEPTION 'write fenced: %#% does not hold the leases it writes under', node, gen
            USING ERRCODE = 'FC409';
    END IF;
    RETURN TRUE;
END
$$;

CREATE OR REPLACE FUNCTION flashcore_fence_foreign(shards INTEGER[], epochs BIGINT[], nodes TEXT[], gens BIGINT[],
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
    FROM unnest(shards, epochs, nodes, gens, until_ms) AS x(shard, epoch, node, gen, deadline)
    WHERE now_ms < x.deadline
      AND (SELECT l.owner_node = x.node AND l.owner_generation = x.gen AND l.epoch = x.epoch
           FROM shard_leases AS l WHERE l.shard = x.shard);
    IF held <> wanted THEN
        RAISE EXCEPTION 'write moved: a shard it relies on is no longer held as it was prepared (or its deadline passed)'
            USING ERRCODE = 'FC410';
    END IF;
    RETURN TRUE;
END
$$;
