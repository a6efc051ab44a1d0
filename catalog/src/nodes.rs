//! The nodes sharing this catalog: each writes its row with its heartbeat,
//! and its live sessions per login, so that `passerelle node list` shows
//! every node and `limits.max_sessions_per_user` counts cluster-wide.
//!
//! ```text
//!  node A ── every lease_timeout / 3 ──► nodes (state, sessions, heartbeat_at)
//!                                        node_sessions (A, login, n)   (replaced when changed)
//!  node B ── sessions_elsewhere(B) ◄──── node_sessions of nodes heard from within the lease timeout
//! ```

use serde::Serialize;
use sqlx::Row;

use crate::error::CatalogError;
use crate::store::Catalog;

/// What a node is doing, as its row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Serving.
    Running,
    /// Stopping: no new connections, live ones finishing.
    Draining,
    /// Exited cleanly.
    Stopped,
}

impl NodeState {
    /// The name stored in the catalog and shown by `node list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        }
    }
}

/// One node's heartbeat, as it writes it.
#[derive(Clone, Debug)]
pub struct Heartbeat<'a> {
    /// `node.id`.
    pub id: &'a str,
    /// The passerelle version it runs.
    pub version: &'a str,
    /// When it started, Unix milliseconds.
    pub started_at: i64,
    /// When this heartbeat was taken, Unix milliseconds.
    pub at: i64,
    /// What it is doing.
    pub state: NodeState,
    /// Its live (logged-in) sessions.
    pub sessions: i64,
    /// Its listen addresses, for people (e.g. `sftp 10.0.0.1:22, ftps 10.0.0.1:21`).
    pub addresses: &'a str,
}

/// A node as the catalog knows it, with the import jobs it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `node.id`.
    pub id: String,
    /// The passerelle version it runs.
    pub version: String,
    /// When it started.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub started_at: i64,
    /// Its last heartbeat.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub heartbeat_at: i64,
    /// `running`, `draining` or `stopped`, as the node last wrote it.
    pub state: String,
    /// Live sessions at its last heartbeat.
    pub sessions: i64,
    /// Its listen addresses.
    pub addresses: String,
    /// Tenants whose import jobs it runs now (import leases it holds).
    pub running_jobs: i64,
}

impl Catalog {
    /// Writes `beat` as its node's row (created on the first).
    pub async fn node_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO nodes (id, version, started_at, heartbeat_at, state, sessions, addresses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at, state = excluded.state, sessions = excluded.sessions, \
             addresses = excluded.addresses",
        )
        .bind(beat.id)
        .bind(beat.version)
        .bind(beat.started_at)
        .bind(beat.at)
        .bind(beat.state.as_str())
        .bind(beat.sessions)
        .bind(beat.addresses)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces `node`'s live sessions per login with `sessions` (logins
    /// with none left out), in one transaction.
    pub async fn replace_node_sessions(&self, node: &str, sessions: &[(String, i64)]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM node_sessions WHERE node = $1").bind(node).execute(&mut *tx).await?;
        for (login, count) in sessions {
            sqlx::query("INSERT INTO node_sessions (node, login, sessions) VALUES ($1, $2, $3)")
                .bind(node)
                .bind(login)
                .bind(*count)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Live sessions per login on the nodes other than `node` that were
    /// heard from at `alive_since` (Unix ms) or later and have not stopped.
    pub async fn sessions_elsewhere(&self, node: &str, alive_since: i64) -> Result<Vec<(String, i64)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT s.login AS login, CAST(SUM(s.sessions) AS BIGINT) AS sessions \
             FROM node_sessions s JOIN nodes n ON n.id = s.node \
             WHERE s.node <> $1 AND n.heartbeat_at >= $2 AND n.state <> 'stopped' GROUP BY s.login",
        )
        .bind(node)
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("login")?, row.try_get("sessions")?))).collect()
    }

    /// Every node the catalog knows, by id, with the import leases each holds.
    pub async fn nodes(&self) -> Result<Vec<Node>, CatalogError> {
        let rows = sqlx::query(
            "SELECT n.id, n.version, n.started_at, n.heartbeat_at, n.state, n.sessions, n.addresses, \
             CAST(COALESCE(l.jobs, 0) AS BIGINT) AS running_jobs \
             FROM nodes n LEFT JOIN (SELECT node, COUNT(*) AS jobs FROM import_leases GROUP BY node) l \
             ON l.node = n.id ORDER BY n.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Node {
                    id: row.try_get("id")?,
                    version: row.try_get("version")?,
                    started_at: row.try_get("started_at")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                    state: row.try_get("state")?,
                    sessions: row.try_get("sessions")?,
                    addresses: row.try_get("addresses")?,
                    running_jobs: row.try_get("running_jobs")?,
                })
            })
            .collect()
    }
}
