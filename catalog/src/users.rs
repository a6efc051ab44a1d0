//! Users, their password hashes, locks, allowed source networks and SSH public keys.

use ipnet::IpNet;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::access::bump_revision;
use crate::error::CatalogError;
use crate::names::{Login, TenantName};
use crate::store::{Catalog, now_ms};

/// A user as listed to administrators (never with the password hash).
#[derive(Clone, Debug, Serialize)]
pub struct User {
    /// The login, unique across tenants.
    pub login: String,
    /// The tenant the user belongs to.
    pub tenant: String,
    /// Creation time, Unix milliseconds.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: i64,
    /// Whether a password is set.
    pub has_password: bool,
    /// Locked by an administrator until `user unlock`.
    pub admin_locked: bool,
    /// Temporarily locked until this time (Unix milliseconds), after failed logins.
    #[serde(serialize_with = "crate::timestamp::serialize_option")]
    pub locked_until: Option<i64>,
    /// How many SSH public keys the user has.
    pub key_count: i64,
    /// Source networks the user may log in from (empty: any); the tenant's list applies too.
    pub allowed_ips: Vec<String>,
}

/// Whether a user's logins are refused because of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Not locked.
    Unlocked,
    /// Locked by an administrator until `user unlock`.
    ByAdmin,
    /// Locked after failed logins until this time (Unix milliseconds).
    Until(i64),
}

impl User {
    /// The user's lock at `now` (Unix milliseconds): an administrator's lock
    /// wins over a temporary one, which ends by itself.
    pub fn lock_state(&self, now: i64) -> LockState {
        match self.locked_until {
            _ if self.admin_locked => LockState::ByAdmin,
            Some(until) if until > now => LockState::Until(until),
            _ => LockState::Unlocked,
        }
    }
}

/// An SSH public key registered for a user.
#[derive(Clone, Debug, Serialize)]
pub struct StoredKey {
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The OpenSSH public-key line.
    pub public_key: String,
    /// When it was added, Unix milliseconds.
    pub added_at: i64,
}

/// `SELECT` of every [`User`] column followed by the rest of the statement,
/// as one static string.
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT u.login, u.tenant, u.created_at, \
             CAST(CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_password, \
             u.admin_locked, u.locked_until, \
             (SELECT COUNT(*) FROM ssh_keys k WHERE k.login = u.login) AS key_count \
             FROM users u ",
            $rest
        )
    };
}

impl Catalog {
    /// Adds a user to an existing tenant, with an optional argon2id hash.
    pub async fn add_user(
        &self,
        tenant: &TenantName,
        login: &Login,
        password_hash: Option<&str>,
    ) -> Result<(), CatalogError> {
        if self.tenant(tenant).await?.is_none() {
            return Err(CatalogError::NotFound(format!("tenant {tenant}")));
        }
        sqlx::query("INSERT INTO users (login, tenant, created_at, password_hash) VALUES ($1, $2, $3, $4)")
            .bind(login.as_str())
            .bind(tenant.as_str())
            .bind(now_ms())
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .map_err(|e| CatalogError::on_conflict(e, || format!("login {login}")))?;
        Ok(())
    }

    /// Users, all or of one tenant, by login.
    pub async fn users(&self, tenant: Option<&TenantName>) -> Result<Vec<User>, CatalogError> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query(select_users!("WHERE u.tenant = $1 ORDER BY u.login"))
                    .bind(t.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(select_users!("ORDER BY u.login")).fetch_all(&self.pool).await?,
        };
        let mut users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        for user in &mut users {
            user.allowed_ips = self.allowed_ips_of(&user.login).await?;
        }
        Ok(users)
    }

    /// One user, or `None`.
    pub async fn user(&self, login: &Login) -> Result<Option<User>, CatalogError> {
        let row =
            sqlx::query(select_users!("WHERE u.login = $1")).bind(login.as_str()).fetch_optional(&self.pool).await?;
        let Some(mut user) = row.as_ref().map(user_from_row).transpose()? else { return Ok(None) };
        user.allowed_ips = self.allowed_ips_of(&user.login).await?;
        Ok(Some(user))
    }

    /// Replaces the networks `login` may log in from (empty: any).
    pub async fn set_user_allowed_ips(&self, login: &Login, allowed_ips: &[IpNet]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT login FROM users WHERE login = $1")
            .bind(login.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(CatalogError::NotFound(format!("login {login}")));
        }
        sqlx::query("DELETE FROM user_allowed_ips WHERE login = $1").bind(login.as_str()).execute(&mut *tx).await?;
        for net in allowed_ips {
            sqlx::query("INSERT INTO user_allowed_ips (login, cidr) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(login.as_str())
                .bind(net.to_string())
                .execute(&mut *tx)
                .await?;
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn allowed_ips_of(&self, login: &str) -> Result<Vec<String>, CatalogError> {
        sqlx::query("SELECT cidr FROM user_allowed_ips WHERE login = $1 ORDER BY cidr")
            .bind(login)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("cidr").map_err(CatalogError::from))
            .collect()
    }

    /// The user's argon2id hash, when the user exists and has a password.
    pub async fn password_hash(&self, login: &Login) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE login = $1")
            .bind(login.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("password_hash")?,
            None => None,
        })
    }

    /// Removes a user and their keys.
    pub async fn remove_user(&self, login: &Login) -> Result<(), CatalogError> {
        self.withdraw(login, sqlx::query("DELETE FROM users WHERE login = $1").bind(login.as_str())).await
    }

    /// Replaces the user's password hash.
    pub async fn set_password_hash(&self, login: &Login, hash: &str) -> Result<(), CatalogError> {
        self.withdraw(
            login,
            sqlx::query("UPDATE users SET password_hash = $2 WHERE login = $1").bind(login.as_str()).bind(hash),
        )
        .await
    }

    /// Locks (`true`) or unlocks (`false`) the user. Either also lifts a
    /// temporary lock from failed logins and forgets the failures counted.
    pub async fn set_admin_lock(&self, login: &Login, locked: bool) -> Result<(), CatalogError> {
        self.withdraw(
            login,
            sqlx::query(
                "UPDATE users SET admin_locked = $2, locked_until = NULL, failed_logins = 0, failures_since = NULL \
                 WHERE login = $1",
            )
            .bind(login.as_str())
            .bind(i64::from(locked)),
        )
        .await
    }

    /// Registers an SSH public key for a user.
    pub async fn add_key(&self, login: &Login, fingerprint: &str, public_key: &str) -> Result<(), CatalogError> {
        if self.user(login).await?.is_none() {
            return Err(CatalogError::NotFound(format!("login {login}")));
        }
        sqlx::query("INSERT INTO ssh_keys (login, fingerprint, public_key, added_at) VALUES ($1, $2, $3, $4)")
            .bind(login.as_str())
            .bind(fingerprint)
            .bind(public_key)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| CatalogError::on_conflict(e, || format!("key {fingerprint} of {login}")))?;
        Ok(())
    }

    /// The user's SSH public keys, oldest first.
    pub async fn keys(&self, login: &Login) -> Result<Vec<StoredKey>, CatalogError> {
        if self.user(login).await?.is_none() {
            return Err(CatalogError::NotFound(format!("login {login}")));
        }
        let rows = sqlx::query(
            "SELECT fingerprint, public_key, added_at FROM ssh_keys WHERE login = $1 ORDER BY added_at, fingerprint",
        )
        .bind(login.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    fingerprint: row.try_get("fingerprint")?,
                    public_key: row.try_get("public_key")?,
                    added_at: row.try_get("added_at")?,
                })
            })
            .collect()
    }

    /// Removes one key of a user, by fingerprint.
    pub async fn remove_key(&self, login: &Login, fingerprint: &str) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM ssh_keys WHERE login = $1 AND fingerprint = $2")
            .bind(login.as_str())
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("key {fingerprint} of {login}")));
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs a change of `login` that may withdraw its right to stay logged
    /// in, with the change marker, in one transaction.
    async fn withdraw(
        &self,
        login: &Login,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("login {login}")));
        }
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, CatalogError> {
    Ok(User {
        login: row.try_get("login")?,
        tenant: row.try_get("tenant")?,
        created_at: row.try_get("created_at")?,
        has_password: row.try_get::<i64, _>("has_password")? != 0,
        admin_locked: row.try_get::<i64, _>("admin_locked")? != 0,
        locked_until: row.try_get("locked_until")?,
        key_count: row.try_get("key_count")?,
        allowed_ips: Vec::new(),
    })
}
