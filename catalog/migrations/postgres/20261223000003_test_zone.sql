-- Tenants flagged as test zones (`passerelle tenant add NAME --test-zone`):
-- they receive anonymized copies (`tenant copy-anonymized`) and are never the
-- source of one. 0 or 1.
ALTER TABLE tenants ADD COLUMN test_zone BIGINT NOT NULL DEFAULT 0;
