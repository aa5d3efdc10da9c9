-- Snapshots are written often and read only by recovery. Keep their text as sent
-- (`json` validates it but does not re-encode it, which `jsonb` does for every
-- write) and compress large ones with lz4, several times cheaper than the default
-- pglz for a SKU snapshot holding tens of thousands of holds. A server built
-- without lz4 keeps its default compression.
ALTER TABLE snapshots ALTER COLUMN state TYPE JSON USING state::json;

DO $$
BEGIN
    ALTER TABLE snapshots ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: snapshots keep the default compression';
END
$$;
