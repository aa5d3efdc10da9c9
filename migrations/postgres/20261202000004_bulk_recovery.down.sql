DROP INDEX IF EXISTS products_sku_bytes_idx;
DROP INDEX IF EXISTS stock_facts_pos_idx;
