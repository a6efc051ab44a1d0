-- Several nodes share one catalog. Each writes its row of `nodes` with its
-- heartbeat (every third of cluster.lease_timeout); a row whose heartbeat is
-- older than the lease timeout is a gone node. `state`: running, draining
-- (SIGTERM: no new connections, live ones finishing), stopped (clean exit).
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    addresses TEXT NOT NULL
);

-- Live sessions per login on each node, replaced with each heartbeat: what
-- makes limits.max_sessions_per_user cluster-wide (within a heartbeat).
CREATE TABLE node_sessions (
    node TEXT NOT NULL,
    login TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    PRIMARY KEY (node, login)
);

-- Periodic work (retention, backups, audit chain checks) runs on one node at
-- a time: the node holding the duty's row, renewed with its heartbeat; a row
-- past `expires_at` (its node died or stopped) goes to the next node asking.
CREATE TABLE cluster_duties (
    name TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
