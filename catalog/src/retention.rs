//! Retention: finished import jobs older than the configured time are
//! deleted, a bounded batch per statement, so that a large backlog never
//! holds the database (and the transfers that write to it) for long. Audit
//! events are pruned the same way, from the front of their chain
//! (`audit_chain`).

use crate::error::CatalogError;
use crate::store::Catalog;

impl Catalog {
    /// Deletes at most `batch` import jobs that reached their verdict
    /// (imported, rejected, duplicate) before `before` (Unix milliseconds);
    /// jobs still under way or waiting are never touched. Returns how many went.
    pub async fn prune_import_jobs(&self, before: i64, batch: u32) -> Result<u64, CatalogError> {
        let done = sqlx::query(
            "DELETE FROM import_jobs WHERE id IN \
             (SELECT id FROM import_jobs WHERE updated_at < $1 \
              AND status IN ('imported', 'rejected', 'duplicate') ORDER BY updated_at LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
