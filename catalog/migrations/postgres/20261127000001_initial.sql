-- passerelle catalog, PostgreSQL dialect. Times are Unix milliseconds (BIGINT) so
-- that one set of queries serves SQLite and PostgreSQL alike.

CREATE TABLE tenants (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL,
    db_backend  TEXT NOT NULL,
    db_name     TEXT NOT NULL,
    db_role     TEXT,
    -- Connection URL of the tenant's own database, with its own credentials.
    db_url      TEXT NOT NULL
);

CREATE TABLE tenant_allowed_ips (
    tenant  TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    cidr    TEXT NOT NULL,
    PRIMARY KEY (tenant, cidr)
);

CREATE TABLE users (
    login          TEXT PRIMARY KEY NOT NULL,
    tenant         TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    password_hash  TEXT,
    admin_locked   BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT
);
CREATE INDEX users_tenant ON users(tenant);

CREATE TABLE user_allowed_ips (
    login  TEXT NOT NULL REFERENCES users(login) ON DELETE CASCADE,
    cidr   TEXT NOT NULL,
    PRIMARY KEY (login, cidr)
);

CREATE TABLE ssh_keys (
    login        TEXT NOT NULL REFERENCES users(login) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (login, fingerprint)
);

CREATE TABLE bans (
    ip          TEXT PRIMARY KEY NOT NULL,
    banned_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    offences    BIGINT NOT NULL DEFAULT 1,
    reason      TEXT NOT NULL
);

CREATE TABLE import_jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant       TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    sha256       TEXT,
    profile      TEXT,
    status       TEXT NOT NULL,
    rows_loaded  BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_try_at  BIGINT,
    error        TEXT,
    received_at  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX import_jobs_tenant_status ON import_jobs(tenant, status);

CREATE TABLE audit_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    tenant       TEXT,
    login        TEXT,
    ip           TEXT,
    protocol     TEXT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    path         TEXT,
    bytes        BIGINT,
    duration_ms  BIGINT,
    detail       TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_tenant_at ON audit_events(tenant, at);
