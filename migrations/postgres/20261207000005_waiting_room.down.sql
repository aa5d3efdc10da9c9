DELETE FROM snapshots WHERE kind = 'queue';
ALTER TABLE snapshots DROP CONSTRAINT snapshots_kind_known;
ALTER TABLE snapshots ADD CONSTRAINT snapshots_kind_known CHECK (kind IN ('sku', 'cart'));
