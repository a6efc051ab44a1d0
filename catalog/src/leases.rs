//! Import leases: which node runs a tenant's import jobs.
//!
//! Several nodes may share one catalog. A tenant's jobs run one at a time
//! cluster-wide, in arrival order, on the node holding the tenant's lease:
//!
//! ```text
//!  node A: claim(tenant, job) ─► lease row (node A, expires now + timeout) ─► run the job
//!          renew every timeout / 3                                           └► release
//!  node B: claim(tenant, …) refused while A's lease lives; taken over once it expired (A died)
//! ```
//!
//! A claim is one atomic upsert, so two nodes never both win a tenant; the
//! node that takes over an expired lease resumes the job from the catalog
//! and the tenant database's ledger, as after a crash.

use crate::error::CatalogError;
use crate::names::TenantName;
use crate::store::Catalog;

/// Takes the lease when it is free, expired, or held by the claimant
/// already (a node restarted under the same id); one statement, so that of
/// two nodes claiming at once only one row update happens.
const CLAIM: &str = "INSERT INTO import_leases (tenant, node, job_id, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant) DO UPDATE SET node = excluded.node, job_id = excluded.job_id, \
                     expires_at = excluded.expires_at \
                     WHERE import_leases.expires_at < $5 OR import_leases.node = excluded.node";

impl Catalog {
    /// Claims `tenant`'s lease for `node` to run `job_id` until `expires_at`
    /// (Unix ms), unless another node holds a lease still alive at `now`.
    /// Returns whether `node` holds it now.
    pub async fn claim_import_lease(
        &self,
        tenant: &TenantName,
        node: &str,
        job_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query(CLAIM)
            .bind(tenant.as_str())
            .bind(node)
            .bind(job_id)
            .bind(expires_at)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends every lease `node` holds to `expires_at`; returns how many it holds.
    pub async fn renew_import_leases(&self, node: &str, expires_at: i64) -> Result<u64, CatalogError> {
        let done = sqlx::query("UPDATE import_leases SET expires_at = $1 WHERE node = $2")
            .bind(expires_at)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Gives `tenant`'s lease back, if `node` holds it.
    pub async fn release_import_lease(&self, tenant: &TenantName, node: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM import_leases WHERE tenant = $1 AND node = $2")
            .bind(tenant.as_str())
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back every lease `node` holds (it stops): other nodes take the
    /// jobs over at once instead of after the lease timeout.
    pub async fn release_import_leases(&self, node: &str) -> Result<u64, CatalogError> {
        let done = sqlx::query("DELETE FROM import_leases WHERE node = $1").bind(node).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
