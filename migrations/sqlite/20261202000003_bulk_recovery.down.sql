DROP INDEX IF EXISTS stock_facts_pos_idx;
