//! What `tenant remove --purge` destroyed: printed by its `--json`, kept in
//! the audit trail (metadata only: names, counts, paths, the data key's
//! public id; never a secret, never file content), and shown again by
//! `tenant purge-report NAME`.

use passerelle_catalog::{AuditFilter, Catalog, TenantName};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, usage};

/// The audit action of a purge; its detail is the report, as JSON.
pub(crate) const PURGE_ACTION: &str = "tenant_remove";

/// How many of a tenant's newest audit events are searched for its purge.
const SEARCHED_EVENTS: u32 = 10_000;

/// Everything a purge destroyed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PurgeReport {
    /// The tenant.
    pub(crate) tenant: String,
    /// When the purge ended (RFC 3339, UTC).
    pub(crate) purged_at: String,
    /// Who purged it (`admin:<name>`).
    pub(crate) actor: String,
    /// Directories removed with everything under them: tree, spool, archive.
    pub(crate) directories: Vec<String>,
    /// Regular files in them (archived originals included).
    pub(crate) files: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Archived originals among `files`, unreadable anywhere without the data key.
    pub(crate) archived_originals: u64,
    /// The tenant database dropped (`postgres NAME` or `sqlite FILE`).
    pub(crate) database: String,
    /// Its database account dropped (PostgreSQL).
    pub(crate) database_role: Option<String>,
    /// Public id of the data key destroyed (`None`: the tenant had none yet).
    pub(crate) data_key: Option<String>,
    /// Logins removed with their keys and passwords.
    pub(crate) users: Vec<String>,
    /// What left the catalog.
    pub(crate) catalog_rows: String,
    /// What remains elsewhere, and until when.
    pub(crate) backups: String,
}

/// What the catalog deletes with a tenant.
pub(crate) const CATALOG_ROWS: &str = "the tenant, its allowed networks, users (passwords, SSH keys, networks), \
     import profiles, import jobs and data key; its audit events stay, as audit.retention_days says";

/// What remains after a purge.
pub(crate) const BACKUPS: &str = "backups taken before the purge still hold the tenant's files and catalog rows \
     until they age out within your backup retention; its archived originals in them cannot be decrypted, since \
     their data key existed only wrapped in the catalog, and no catalog made after the purge holds it";

impl PurgeReport {
    /// The report for people, one fact a line.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("tenant:             {}", self.tenant),
            format!("purged at:          {}", self.purged_at),
            format!("by:                 {}", self.actor),
        ];
        for dir in &self.directories {
            lines.push(format!("removed directory:  {dir}"));
        }
        lines.push(format!("files:              {} ({} bytes)", self.files, self.bytes));
        lines.push(format!("archived originals: {}", self.archived_originals));
        lines.push(format!("database dropped:   {}", self.database));
        if let Some(role) = &self.database_role {
            lines.push(format!("db account dropped: {role}"));
        }
        lines.push(format!("data key destroyed: {}", self.data_key.as_deref().unwrap_or("none (no archive yet)")));
        lines.push(format!(
            "users removed:      {}",
            if self.users.is_empty() { "none".into() } else { self.users.join(", ") }
        ));
        lines.push(format!("catalog rows:       {}", self.catalog_rows));
        lines.push(format!("backups:            {}", self.backups));
        lines
    }

    /// The report of the latest purge of `tenant` in the audit trail.
    pub(crate) async fn latest(catalog: &Catalog, tenant: &TenantName) -> Result<Self, CliError> {
        let filter = AuditFilter { tenant: Some(tenant.to_string()), limit: SEARCHED_EVENTS, ..AuditFilter::default() };
        let events = catalog.audit_events(&filter).await?;
        events
            .iter()
            .rev()
            .filter(|event| event.action == PURGE_ACTION)
            .find_map(|event| serde_json::from_str(event.detail.as_deref()?).ok())
            .ok_or_else(|| usage(format!("no purge of tenant {tenant} in the audit trail")))
    }
}
