-- Admin changes reach live sessions on every node: each change that can
-- withdraw a logged-in user's right (lock, removal, password, keys,
-- allowlists, tenant removal) bumps this one-row counter in its own
-- transaction; every server polls it each second and, when it moved,
-- checks its live sessions against the catalog again.
CREATE TABLE catalog_revision (
    id        BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    revision  BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 0);

-- Set by `tenant remove` before it takes the tenant apart, so that live
-- sessions end with that reason.
ALTER TABLE tenants ADD COLUMN removing BIGINT NOT NULL DEFAULT 0;

-- Retention: finished import jobs are pruned by the time of their verdict.
CREATE INDEX import_jobs_updated ON import_jobs(updated_at);
