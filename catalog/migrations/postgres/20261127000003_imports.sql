-- Import pipeline: each tenant's profile file, and what the job runner needs
-- to find open jobs and earlier imports of the same content quickly.
CREATE TABLE import_profiles (
    tenant      TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
ALTER TABLE import_jobs ADD COLUMN bytes BIGINT;
ALTER TABLE import_jobs ADD COLUMN finished_at BIGINT;
CREATE INDEX import_jobs_content ON import_jobs(tenant, profile, sha256);
CREATE INDEX import_jobs_received ON import_jobs(received_at);
