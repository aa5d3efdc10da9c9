-- The fence checks as a join of the claims against the lease table (as before).

CREATE OR REPLACE FUNCTION flashcore_fence(node TEXT, gen BIGINT, shards INTEGER[], epochs BIGINT[]) RETURNS BOOLEAN
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
