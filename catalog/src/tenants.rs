//! Tenants and their allowed source networks.

use ipnet::IpNet;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::access::bump_revision;
use crate::error::CatalogError;
use crate::keys::StoredDataKey;
use crate::names::TenantName;
use crate::store::{Catalog, now_ms};

/// Where a tenant's own database lives and how its own account reaches it.
#[derive(Clone, Debug)]
pub struct TenantDatabase {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Database name (PostgreSQL) or file path (SQLite).
    pub name: String,
    /// The tenant's own database role (PostgreSQL only).
    pub role: Option<String>,
    /// Connection URL with the tenant's own account. As stored, its password
    /// is taken out into `sealed_password`; with it put back (to connect),
    /// it is secret: never log it.
    pub url: String,
    /// The password of `url`, sealed with the tenant's data key
    /// (`passerelle_keys::DataKey::seal`); `None` for SQLite, or once put back.
    pub sealed_password: Option<String>,
}

/// A tenant as the catalog holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    /// The tenant's name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: i64,
    /// Source networks allowed to log in (empty: any).
    pub allowed_ips: Vec<String>,
    /// The tenant's database, without its credentials.
    pub database_backend: String,
    /// Database name or file.
    pub database_name: String,
    /// Database role, when the backend has roles.
    pub database_role: Option<String>,
    /// The tenant's own quota, overriding the configured defaults.
    pub quota: TenantQuota,
    /// Whether it is a test zone: it receives anonymized copies and is never the source of one.
    pub test_zone: bool,
}

/// A tenant's quota override; `None` in a field: the configuration's `[quotas]` default applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TenantQuota {
    /// Bytes the tenant may store.
    pub bytes: Option<u64>,
    /// Regular files the tenant may store.
    pub files: Option<u64>,
}

impl TenantQuota {
    fn from_row(row: &AnyRow) -> Result<Self, CatalogError> {
        let read = |column: &str| -> Result<Option<u64>, CatalogError> {
            let value: Option<i64> = row.try_get(column)?;
            value.map(|v| u64::try_from(v).map_err(|_| CatalogError::Corrupt(format!("{column} {v}")))).transpose()
        };
        Ok(Self { bytes: read("quota_bytes")?, files: read("quota_files")? })
    }
}

/// A quota as the catalog stores it: BIGINT, so anything beyond `i64::MAX`
/// (8 EiB) is kept as `i64::MAX`, which no tenant reaches either.
fn stored(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Catalog {
    /// Records a new tenant with its data key, in one transaction. Fails with
    /// [`CatalogError::AlreadyExists`] when the name is taken.
    pub async fn add_tenant(
        &self,
        name: &TenantName,
        allowed_ips: &[IpNet],
        database: &TenantDatabase,
        key: &StoredDataKey,
    ) -> Result<(), CatalogError> {
        self.add_tenant_zone(name, allowed_ips, database, key, false).await
    }

    /// [`Catalog::add_tenant`], flagged as a test zone when `test_zone`.
    pub async fn add_tenant_zone(
        &self,
        name: &TenantName,
        allowed_ips: &[IpNet],
        database: &TenantDatabase,
        key: &StoredDataKey,
        test_zone: bool,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (name, created_at, db_backend, db_name, db_role, db_url, db_password_sealed, \
             test_zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(name.as_str())
        .bind(now_ms())
        .bind(&database.backend)
        .bind(&database.name)
        .bind(database.role.as_deref())
        .bind(&database.url)
        .bind(database.sealed_password.as_deref())
        .bind(i64::from(test_zone))
        .execute(&mut *tx)
        .await
        .map_err(|e| CatalogError::on_conflict(e, || format!("tenant {name}")))?;
        sqlx::query("INSERT INTO tenant_keys (tenant, key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name.as_str())
            .bind(&key.key_id)
            .bind(&key.wrapped)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for net in allowed_ips {
            sqlx::query("INSERT INTO tenant_allowed_ips (tenant, cidr) VALUES ($1, $2)")
                .bind(name.as_str())
                .bind(net.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the networks the tenant's users may log in from (empty: any).
    pub async fn set_tenant_allowed_ips(&self, name: &TenantName, allowed_ips: &[IpNet]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT name FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(CatalogError::NotFound(format!("tenant {name}")));
        }
        sqlx::query("DELETE FROM tenant_allowed_ips WHERE tenant = $1").bind(name.as_str()).execute(&mut *tx).await?;
        for net in allowed_ips {
            sqlx::query("INSERT INTO tenant_allowed_ips (tenant, cidr) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(name.as_str())
                .bind(net.to_string())
                .execute(&mut *tx)
                .await?;
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a tenant's quota override: a `Some` field replaces that part of
    /// the override, a `None` field keeps it as it is.
    pub async fn set_tenant_quota(
        &self,
        name: &TenantName,
        bytes: Option<u64>,
        files: Option<u64>,
    ) -> Result<(), CatalogError> {
        let done = sqlx::query(
            "UPDATE tenants SET quota_bytes = COALESCE($2, quota_bytes), quota_files = COALESCE($3, quota_files) \
             WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(stored(bytes))
        .bind(stored(files))
        .execute(&self.pool)
        .await?;
        tenant_touched(done.rows_affected(), name)
    }

    /// Removes a tenant's quota override: the configured defaults apply again.
    pub async fn clear_tenant_quota(&self, name: &TenantName) -> Result<(), CatalogError> {
        let done = sqlx::query("UPDATE tenants SET quota_bytes = NULL, quota_files = NULL WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        tenant_touched(done.rows_affected(), name)
    }

    /// Every tenant's quota override, by tenant name, in one query (what a
    /// running server re-reads every few seconds).
    pub async fn tenant_quotas(&self) -> Result<Vec<(String, TenantQuota)>, CatalogError> {
        let rows = sqlx::query("SELECT name, quota_bytes, quota_files FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("name")?, TenantQuota::from_row(row)?))).collect()
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, CatalogError> {
        let rows = sqlx::query(
            "SELECT name, created_at, db_backend, db_name, db_role, quota_bytes, quota_files, test_zone FROM tenants \
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in rows {
            tenants.push(self.tenant_from_row(&row).await?);
        }
        Ok(tenants)
    }

    /// One tenant, or `None`.
    pub async fn tenant(&self, name: &TenantName) -> Result<Option<Tenant>, CatalogError> {
        let row = sqlx::query(
            "SELECT name, created_at, db_backend, db_name, db_role, quota_bytes, quota_files, test_zone \
             FROM tenants WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.tenant_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// The tenant's database with its credentials, for provisioning and loading.
    pub async fn tenant_database(&self, name: &TenantName) -> Result<TenantDatabase, CatalogError> {
        let row =
            sqlx::query("SELECT db_backend, db_name, db_role, db_url, db_password_sealed FROM tenants WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| CatalogError::NotFound(format!("tenant {name}")))?;
        Ok(TenantDatabase {
            backend: row.try_get("db_backend")?,
            name: row.try_get("db_name")?,
            role: row.try_get("db_role")?,
            url: row.try_get("db_url")?,
            sealed_password: row.try_get("db_password_sealed")?,
        })
    }

    /// Points the tenant at its database where a restore put it (a SQLite file in another data
    /// directory); the backend and role stay as they were.
    pub async fn relocate_tenant_database(
        &self,
        name: &TenantName,
        file_name: &str,
        url: &str,
    ) -> Result<(), CatalogError> {
        let done = sqlx::query("UPDATE tenants SET db_name = $1, db_url = $2 WHERE name = $3")
            .bind(file_name)
            .bind(url)
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        tenant_touched(done.rows_affected(), name)
    }

    /// Replaces how the tenant's database is reached, once its password
    /// was sealed (tenants created before passwords were encrypted).
    pub async fn set_tenant_database_url(
        &self,
        name: &TenantName,
        url: &str,
        sealed_password: &str,
    ) -> Result<(), CatalogError> {
        let done = sqlx::query("UPDATE tenants SET db_url = $2, db_password_sealed = $3 WHERE name = $1")
            .bind(name.as_str())
            .bind(url)
            .bind(sealed_password)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("tenant {name}")));
        }
        Ok(())
    }

    /// Deletes the tenant with its users, keys and data key (audit events
    /// are kept): whatever its data key encrypted, wherever a copy of it is,
    /// can no longer be decrypted.
    pub async fn remove_tenant(&self, name: &TenantName) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tenant_keys WHERE tenant = $1").bind(name.as_str()).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM tenants WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("tenant {name}")));
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenant_from_row(&self, row: &AnyRow) -> Result<Tenant, CatalogError> {
        let name: String = row.try_get("name")?;
        let allowed_ips = sqlx::query("SELECT cidr FROM tenant_allowed_ips WHERE tenant = $1 ORDER BY cidr")
            .bind(&name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("cidr"))
            .collect::<Result<_, _>>()?;
        Ok(Tenant {
            name,
            created_at: row.try_get("created_at")?,
            allowed_ips,
            database_backend: row.try_get("db_backend")?,
            database_name: row.try_get("db_name")?,
            database_role: row.try_get("db_role")?,
            quota: TenantQuota::from_row(row)?,
            test_zone: row.try_get::<i64, _>("test_zone")? != 0,
        })
    }
}

/// `NotFound` when a statement changed no row of tenant `name`.
fn tenant_touched(rows: u64, name: &TenantName) -> Result<(), CatalogError> {
    if rows == 0 { Err(CatalogError::NotFound(format!("tenant {name}"))) } else { Ok(()) }
}
