//! The audit trail: who did what, when, from where. Metadata only: never a
//! password, never file contents.

use serde::Serialize;

use crate::error::CatalogError;
use crate::store::{Catalog, now_ms};

/// One audit event.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditEvent {
    /// When it happened, Unix milliseconds; `None` means when it is stored.
    pub at: Option<i64>,
    /// Who acted: a login, or `admin:<os user>` for the CLI.
    pub actor: String,
    /// The tenant concerned.
    pub tenant: Option<String>,
    /// The login concerned.
    pub login: Option<String>,
    /// Source IP address.
    pub ip: Option<String>,
    /// `sftp`, `ftps`, `cli`, `pipeline`…
    pub protocol: String,
    /// What happened (`login`, `upload`, `tenant_add`…).
    pub action: String,
    /// `ok`, `denied`, `failed`…
    pub outcome: String,
    /// The tenant-relative path concerned.
    pub path: Option<String>,
    /// Bytes moved.
    pub bytes: Option<i64>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Extra facts (key fingerprint, reason…), free text.
    pub detail: Option<String>,
}

impl Catalog {
    /// Appends an event to the audit trail.
    pub async fn record(&self, event: &AuditEvent) -> Result<(), CatalogError> {
        self.record_all(std::slice::from_ref(event)).await
    }

    /// Appends events in one transaction: all of them or none.
    pub async fn record_all(&self, events: &[AuditEvent]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        for event in events {
            insert(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert(tx: &mut sqlx::Transaction<'_, sqlx::Any>, event: &AuditEvent) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO audit_events (at, actor, tenant, login, ip, protocol, action, outcome, path, bytes, duration_ms, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event.at.unwrap_or_else(now_ms))
    .bind(&event.actor)
    .bind(event.tenant.as_deref())
    .bind(event.login.as_deref())
    .bind(event.ip.as_deref())
    .bind(&event.protocol)
    .bind(&event.action)
    .bind(&event.outcome)
    .bind(event.path.as_deref())
    .bind(event.bytes)
    .bind(event.duration_ms)
    .bind(event.detail.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
