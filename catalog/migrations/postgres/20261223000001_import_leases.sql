-- Several nodes share one catalog: a tenant's import jobs run on the node
-- holding the tenant's lease, one job at a time cluster-wide. The node
-- renews its leases with its heartbeat; a lease past `expires_at` (its node
-- died) may be taken over by another node, which resumes the job.
CREATE TABLE import_leases (
    tenant TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    job_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX import_leases_node ON import_leases(node);
