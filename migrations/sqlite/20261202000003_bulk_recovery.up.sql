-- Bulk recovery (start-up at catalog scale) reads the journal's stock facts of
-- every SKU in position order, a page at a time: it walks this index instead of
-- sorting the table once per page.
CREATE INDEX stock_facts_pos_idx ON stock_facts (pos, sku);
