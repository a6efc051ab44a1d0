-- Account locks: failed logins are counted in the catalog, one atomic
-- UPDATE per failure, so that parallel connections and several nodes share
-- one count. `failures_since` starts the observation window (Unix
-- milliseconds, NULL when nothing is counted).
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failures_since BIGINT;
