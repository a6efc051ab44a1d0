-- Bans are read incrementally: each node asks for the rows updated since its
-- last read. A removed ban stays as a row that ends at 0 (a tombstone) so that
-- the removal reaches every node; the hourly prune deletes it later.
ALTER TABLE bans ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX bans_updated_at ON bans(updated_at);
