-- Nodes sharing a data directory may all see a file another program placed
-- in an inbox: the one whose job row claims the file's identity (tenant,
-- path, inode, modification time, size) takes it, the others leave it.
CREATE TABLE intake_claims (
    claim TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE
);
CREATE INDEX intake_claims_job ON intake_claims(job_id);
