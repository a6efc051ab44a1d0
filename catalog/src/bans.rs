//! Banned source addresses. A row outlives its ban: `offences` counts how
//! often the address was banned, so that each new ban lasts longer. The
//! server reads the active bans every second; `ban remove` deletes the row.

use serde::Serialize;
use sqlx::Row;

use crate::error::CatalogError;
use crate::store::Catalog;

/// A banned (or formerly banned) source address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ban {
    /// The address, as `IpAddr` prints it (IPv4-mapped IPv6 shown as IPv4).
    pub ip: String,
    /// When the latest ban began, Unix milliseconds.
    pub banned_at: i64,
    /// When it ends, Unix milliseconds.
    pub expires_at: i64,
    /// How many times the address has been banned.
    pub offences: i64,
    /// Why, for people.
    pub reason: String,
}

impl Catalog {
    /// How many times `ip` has been banned before (0 when never).
    pub async fn ban_offences(&self, ip: &str) -> Result<i64, CatalogError> {
        let row = sqlx::query("SELECT offences FROM bans WHERE ip = $1").bind(ip).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => row.try_get("offences")?,
            None => 0,
        })
    }

    /// Records a ban, replacing the previous one of the same address.
    pub async fn upsert_ban(&self, ban: &Ban) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO bans (ip, banned_at, expires_at, offences, reason) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (ip) DO UPDATE SET banned_at = excluded.banned_at, expires_at = excluded.expires_at, \
             offences = excluded.offences, reason = excluded.reason",
        )
        .bind(&ban.ip)
        .bind(ban.banned_at)
        .bind(ban.expires_at)
        .bind(ban.offences)
        .bind(&ban.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bans still in force at `now` (Unix milliseconds), by address.
    pub async fn active_bans(&self, now: i64) -> Result<Vec<Ban>, CatalogError> {
        let rows = sqlx::query(
            "SELECT ip, banned_at, expires_at, offences, reason FROM bans WHERE expires_at > $1 ORDER BY ip",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Ban {
                    ip: row.try_get("ip")?,
                    banned_at: row.try_get("banned_at")?,
                    expires_at: row.try_get("expires_at")?,
                    offences: row.try_get("offences")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Lifts the ban of `ip` and forgets its offences.
    pub async fn remove_ban(&self, ip: &str) -> Result<(), CatalogError> {
        let done = sqlx::query("DELETE FROM bans WHERE ip = $1").bind(ip).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("ban of {ip}")));
        }
        Ok(())
    }

    /// Forgets bans that ended before `before` (Unix milliseconds); returns how many.
    pub async fn prune_bans(&self, before: i64) -> Result<u64, CatalogError> {
        let done = sqlx::query("DELETE FROM bans WHERE expires_at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
