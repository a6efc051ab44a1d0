//! Periodic duties (retention, backups, audit chain checks): each runs on
//! one node at a time, the node holding its row. The holder renews its rows
//! with its heartbeat; a row past `expires_at` (its node died) goes to the
//! next node asking, and a node stopping cleanly gives its rows back.

use crate::error::CatalogError;
use crate::store::Catalog;

/// Takes the duty when it is free, expired, or held by the claimant
/// already; one statement, so that of two nodes claiming at once only one
/// wins.
const CLAIM: &str = "INSERT INTO cluster_duties (name, node, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at \
                     WHERE cluster_duties.expires_at < $4 OR cluster_duties.node = excluded.node";

impl Catalog {
    /// Claims duty `name` for `node` until `expires_at` (Unix ms), unless
    /// another node holds it still at `now`; returns whether `node` holds it.
    pub async fn claim_duty(&self, name: &str, node: &str, expires_at: i64, now: i64) -> Result<bool, CatalogError> {
        let done = sqlx::query(CLAIM).bind(name).bind(node).bind(expires_at).bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends every duty `node` holds to `expires_at`.
    pub async fn renew_duties(&self, node: &str, expires_at: i64) -> Result<(), CatalogError> {
        sqlx::query("UPDATE cluster_duties SET expires_at = $1 WHERE node = $2")
            .bind(expires_at)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back every duty `node` holds (it stops): another node takes
    /// them at its next round instead of after the lease timeout.
    pub async fn release_duties(&self, node: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM cluster_duties WHERE node = $1").bind(node).execute(&self.pool).await?;
        Ok(())
    }
}
