//! The master key's public identifier and the tenants' wrapped data keys.
//! The catalog stores only what the keys crate produced (text); it never
//! sees a key in clear.

use sqlx::Row;

use crate::error::CatalogError;
use crate::names::TenantName;
use crate::store::{Catalog, now_ms};

/// A tenant's data key as stored: wrapped under the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDataKey {
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its random public identifier, written in archive headers.
    pub key_id: String,
    /// The key wrapped under the master key (`passerelle_keys::WrappedKey` text).
    pub wrapped: String,
}

impl Catalog {
    /// The identifier of the master key this catalog's keys are wrapped
    /// under, once one was recorded.
    pub async fn master_key_id(&self) -> Result<Option<String>, CatalogError> {
        Ok(sqlx::query_scalar("SELECT key_id FROM master_key WHERE singleton = 1").fetch_optional(&self.pool).await?)
    }

    /// Records `key_id` as the master key when none is recorded yet, and
    /// returns the recorded one (another process may have been first).
    pub async fn record_master_key_id(&self, key_id: &str) -> Result<String, CatalogError> {
        sqlx::query("INSERT INTO master_key (singleton, key_id, created_at) VALUES (1, $1, $2) ON CONFLICT DO NOTHING")
            .bind(key_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        self.master_key_id().await?.ok_or_else(|| CatalogError::NotFound("master key record".into()))
    }

    /// Stores a tenant's new data key. A tenant has one: a second is
    /// [`CatalogError::AlreadyExists`].
    pub async fn add_tenant_key(&self, key: &StoredDataKey) -> Result<(), CatalogError> {
        sqlx::query("INSERT INTO tenant_keys (tenant, key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.tenant)
            .bind(&key.key_id)
            .bind(&key.wrapped)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| CatalogError::on_conflict(e, || format!("data key of tenant {}", key.tenant)))?;
        Ok(())
    }

    /// A tenant's data key, if it has one.
    pub async fn tenant_key(&self, tenant: &TenantName) -> Result<Option<StoredDataKey>, CatalogError> {
        let row = sqlx::query("SELECT tenant, key_id, wrapped FROM tenant_keys WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| stored_key(&row)).transpose()
    }

    /// The data key with identifier `key_id` (from an archive header), if it
    /// still exists.
    pub async fn tenant_key_by_id(&self, key_id: &str) -> Result<Option<StoredDataKey>, CatalogError> {
        let row = sqlx::query("SELECT tenant, key_id, wrapped FROM tenant_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| stored_key(&row)).transpose()
    }

    /// Every tenant's data key, by tenant.
    pub async fn tenant_keys(&self) -> Result<Vec<StoredDataKey>, CatalogError> {
        let rows = sqlx::query("SELECT tenant, key_id, wrapped FROM tenant_keys ORDER BY tenant")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_key).collect()
    }

    /// Replaces every wrapped data key and the master key's identifier in one
    /// transaction: either all keys are wrapped under the new master key, or
    /// none is. `rewrapped` must hold every key of [`Catalog::tenant_keys`]
    /// with the same identifiers; a key added or removed meanwhile aborts the
    /// whole change ([`CatalogError::Conflict`]), so that none is left behind
    /// under the old master key.
    pub async fn rewrap_tenant_keys(
        &self,
        old_master_key_id: &str,
        new_master_key_id: &str,
        rewrapped: &[StoredDataKey],
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query("UPDATE master_key SET key_id = $1 WHERE singleton = 1 AND key_id = $2")
            .bind(new_master_key_id)
            .bind(old_master_key_id)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Err(CatalogError::Conflict("the recorded master key changed meanwhile".into()));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenant_keys").fetch_one(&mut *tx).await?;
        if usize::try_from(count).ok() != Some(rewrapped.len()) {
            return Err(CatalogError::Conflict("a tenant was added or removed meanwhile".into()));
        }
        for key in rewrapped {
            let done = sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE tenant = $2 AND key_id = $3")
                .bind(&key.wrapped)
                .bind(&key.tenant)
                .bind(&key.key_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(CatalogError::Conflict(format!("the data key of tenant {} changed meanwhile", key.tenant)));
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn stored_key(row: &sqlx::any::AnyRow) -> Result<StoredDataKey, CatalogError> {
    Ok(StoredDataKey {
        tenant: row.try_get("tenant")?,
        key_id: row.try_get("key_id")?,
        wrapped: row.try_get("wrapped")?,
    })
}
