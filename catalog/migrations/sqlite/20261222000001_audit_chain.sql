-- Tamper-evident audit trail: each row carries an HMAC-SHA-256 (hex)
-- chaining it to the row before it, and `audit_chain` (one row) holds where
-- the chain starts (a checkpoint, sealed with its own MAC) and its head
-- (the last row's id and MAC). Rows present now predate the chain: the first
-- chained write declares them so (legacy_until) and seals the checkpoint;
-- until then `seal` is empty. Ids are given by the writers (head + 1).
ALTER TABLE audit_events ADD COLUMN mac TEXT;

CREATE TABLE audit_chain (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    legacy_until  BIGINT NOT NULL,
    start_id      BIGINT NOT NULL,
    start_mac     TEXT NOT NULL,
    seal          TEXT NOT NULL,
    head_id       BIGINT NOT NULL,
    head_mac      TEXT NOT NULL
);
INSERT INTO audit_chain (id, legacy_until, start_id, start_mac, seal, head_id, head_mac)
SELECT 1, COALESCE(MAX(id), 0), COALESCE(MAX(id), 0), '', '', COALESCE(MAX(id), 0), '' FROM audit_events;
