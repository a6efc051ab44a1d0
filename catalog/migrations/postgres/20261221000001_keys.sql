-- The master key's public identifier (derived one-way from it), recorded
-- when the key is created: a missing or different master key is then
-- refused instead of replaced, since every wrapped key depends on it.
CREATE TABLE master_key (
    singleton   INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Each tenant's data key, wrapped (AES-256-GCM) under the master key. It
-- encrypts the tenant's archived originals and database password; deleting
-- the row destroys it. key_id is random and written in archive headers.
CREATE TABLE tenant_keys (
    tenant      TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    key_id      TEXT NOT NULL UNIQUE,
    wrapped     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The tenant database's password, sealed with the tenant's data key; db_url
-- then holds no password. NULL for SQLite tenant databases (no password).
ALTER TABLE tenants ADD COLUMN db_password_sealed TEXT;
