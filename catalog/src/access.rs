//! What a live session's right to stay connected rests on, and the change
//! marker that tells every server node to look at it again.
//!
//! ```text
//!  admin CLI ─► change (lock, passwd, key remove, allowlist, removal,
//!               profile set)
//!                  └─► catalog_revision + 1   (same transaction)
//!  server node ─► revision() every second ─► moved? ─► access(login) per live session
//!                                                └─► sessions read the profiles again
//! ```

use sqlx::Row;

use crate::error::CatalogError;
use crate::names::{Login, TenantName};
use crate::store::Catalog;

/// Everything a logged-in session of one login depends on, as the catalog
/// holds it now. Holds the password hash: never log or show it.
pub struct Access {
    /// The user's tenant.
    pub tenant: String,
    /// `tenant remove` is taking the tenant apart.
    pub tenant_removing: bool,
    /// Locked by an administrator (temporary locks after failed logins do
    /// not end sessions: an attacker could otherwise end them at will).
    pub admin_locked: bool,
    /// The user's argon2id hash, when it has a password.
    pub password_hash: Option<String>,
    /// Fingerprints (`SHA256:…`) of the user's SSH keys.
    pub key_fingerprints: Vec<String>,
    /// Networks the user may log in from (empty: any).
    pub user_allowed_ips: Vec<String>,
    /// Networks the tenant's users may log in from (empty: any).
    pub tenant_allowed_ips: Vec<String>,
}

impl Catalog {
    /// The change marker: it grows with every change that can withdraw a
    /// logged-in user's right to stay connected, and with every change of
    /// a tenant's import profiles.
    pub async fn revision(&self) -> Result<i64, CatalogError> {
        let row = sqlx::query("SELECT revision FROM catalog_revision WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get("revision")?)
    }

    /// What the sessions of `login` rest on now; `None` when the user no
    /// longer exists.
    pub async fn access(&self, login: &Login) -> Result<Option<Access>, CatalogError> {
        let row = sqlx::query(
            "SELECT u.tenant, t.removing, u.admin_locked, u.password_hash \
             FROM users u JOIN tenants t ON t.name = u.tenant WHERE u.login = $1",
        )
        .bind(login.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let tenant: String = row.try_get("tenant")?;
        let column = |sql: &'static str, key: String| {
            let pool = &self.pool;
            async move {
                sqlx::query(sql)
                    .bind(key)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0).map_err(CatalogError::from))
                    .collect::<Result<Vec<_>, _>>()
            }
        };
        Ok(Some(Access {
            tenant_removing: row.try_get::<i64, _>("removing")? != 0,
            admin_locked: row.try_get::<i64, _>("admin_locked")? != 0,
            password_hash: row.try_get("password_hash")?,
            key_fingerprints: column("SELECT fingerprint FROM ssh_keys WHERE login = $1", login.to_string()).await?,
            user_allowed_ips: column("SELECT cidr FROM user_allowed_ips WHERE login = $1", login.to_string()).await?,
            tenant_allowed_ips: column("SELECT cidr FROM tenant_allowed_ips WHERE tenant = $1", tenant.clone()).await?,
            tenant,
        }))
    }

    /// Marks the tenant as being removed (its live sessions end, saying so).
    pub async fn mark_tenant_removing(&self, name: &TenantName) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE tenants SET removing = 1 WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("tenant {name}")));
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Moves the change marker, inside the transaction of the change itself, so
/// that a node never sees the new revision without the change.
pub(crate) async fn bump_revision(connection: &mut sqlx::AnyConnection) -> Result<(), CatalogError> {
    sqlx::query("UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1").execute(connection).await?;
    Ok(())
}
