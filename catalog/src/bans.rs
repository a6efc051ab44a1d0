//! Banned sources: addresses, or networks (an IPv6 source is a network of
//! `defender.ipv6_prefix`). A row outlives its ban: `offences` counts how
//! often the source was banned, so that each new ban lasts longer.
//!
//! The server reads the rows updated since its previous read every second
//! (`updated_at`, stamped by every write) and all active bans now and then.
//! `ban remove` turns the row into a tombstone (no offences, ended at 0)
//! rather than deleting it, so that incremental reads see the removal;
//! [`Catalog::prune_bans`] deletes old rows and tombstones.

use serde::Serialize;
use sqlx::Row;

use crate::error::CatalogError;
use crate::store::{Catalog, now_ms};

/// A banned (or formerly banned) source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ban {
    /// The address, as `IpAddr` prints it (IPv4-mapped IPv6 shown as IPv4),
    /// or the network in CIDR notation (`2001:db8:1:2::/64`).
    pub ip: String,
    /// When the latest ban began, Unix milliseconds.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub banned_at: i64,
    /// When it ends, Unix milliseconds.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub expires_at: i64,
    /// How many times the source has been banned (0 once `ban remove` lifted it).
    pub offences: i64,
    /// Why, for people.
    pub reason: String,
}

impl Catalog {
    /// How many times `ip` (an address or a network) has been banned before (0 when never).
    pub async fn ban_offences(&self, ip: &str) -> Result<i64, CatalogError> {
        let row = sqlx::query("SELECT offences FROM bans WHERE ip = $1").bind(ip).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => row.try_get("offences")?,
            None => 0,
        })
    }

    /// Records a ban, replacing the previous one of the same source.
    pub async fn upsert_ban(&self, ban: &Ban) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO bans (ip, banned_at, expires_at, offences, reason, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (ip) DO UPDATE SET banned_at = excluded.banned_at, expires_at = excluded.expires_at, \
             offences = excluded.offences, reason = excluded.reason, updated_at = excluded.updated_at",
        )
        .bind(&ban.ip)
        .bind(ban.banned_at)
        .bind(ban.expires_at)
        .bind(ban.offences)
        .bind(&ban.reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bans still in force at `now` (Unix milliseconds), by source.
    pub async fn active_bans(&self, now: i64) -> Result<Vec<Ban>, CatalogError> {
        let rows = sqlx::query(
            "SELECT ip, banned_at, expires_at, offences, reason FROM bans WHERE expires_at > $1 ORDER BY ip",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ban).collect()
    }

    /// Every row written after `since` (Unix milliseconds, as stamped by the
    /// writer's clock): new and renewed bans, and tombstones of removed ones
    /// (`expires_at` 0), oldest write first.
    pub async fn bans_updated_since(&self, since: i64) -> Result<Vec<Ban>, CatalogError> {
        let rows = sqlx::query(
            "SELECT ip, banned_at, expires_at, offences, reason FROM bans WHERE updated_at > $1 \
             ORDER BY updated_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ban).collect()
    }

    /// Lifts the ban of `ip` (an address or a network, as stored) and
    /// forgets its offences.
    pub async fn remove_ban(&self, ip: &str) -> Result<(), CatalogError> {
        let done =
            sqlx::query("UPDATE bans SET expires_at = 0, offences = 0, updated_at = $2 WHERE ip = $1 AND offences > 0")
                .bind(ip)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("ban of {ip}")));
        }
        Ok(())
    }

    /// Forgets bans that ended before `before` (Unix milliseconds), and
    /// tombstones written before it; returns how many.
    pub async fn prune_bans(&self, before: i64) -> Result<u64, CatalogError> {
        let done = sqlx::query("DELETE FROM bans WHERE expires_at < $1 AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn ban(row: &sqlx::any::AnyRow) -> Result<Ban, CatalogError> {
    Ok(Ban {
        ip: row.try_get("ip")?,
        banned_at: row.try_get("banned_at")?,
        expires_at: row.try_get("expires_at")?,
        offences: row.try_get("offences")?,
        reason: row.try_get("reason")?,
    })
}
