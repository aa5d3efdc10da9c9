-- Waiting rooms (DESIGN §12): each SKU's line of tickets is written behind as a
-- snapshot of kind 'queue', beside the SKU's and carts' own, under the same
-- fence (a room lives with its SKU's shard).
ALTER TABLE snapshots DROP CONSTRAINT snapshots_kind_known;
ALTER TABLE snapshots ADD CONSTRAINT snapshots_kind_known CHECK (kind IN ('sku', 'cart', 'queue'));
