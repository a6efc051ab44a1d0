//! Failed-login counts behind account locks, kept in the catalog so that
//! parallel connections and every node share one count.
//!
//! Each failure is one `UPDATE … RETURNING`: the database serialises the
//! writes to a row (SQLite one writer, PostgreSQL a row lock, after which
//! the statement sees the row as the other writer left it), so no failure is
//! lost and exactly one of them reaches the threshold and sets the lock.
//! The count lives in a fixed window that opens at the first failure counted
//! and lasts the observation time; reaching the threshold locks the user and
//! empties the count, a successful login or `user unlock` empties it too.

use sqlx::Row;

use crate::error::CatalogError;
use crate::names::Login;
use crate::store::Catalog;

/// When failed logins lock an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPolicy {
    /// Failures within the window that lock the account (at least 1).
    pub max_failures: u32,
    /// Length of the window that opens at the first failure counted, milliseconds.
    pub window_ms: i64,
    /// Length of the lock, milliseconds.
    pub lock_ms: i64,
}

/// What counting one failed login did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCount {
    /// Counted: this many failures in the current window, below the threshold.
    Counted(i64),
    /// This failure reached the threshold: the user is locked until this
    /// time (Unix milliseconds) and the count starts again from zero.
    Locked(i64),
    /// Not counted: no such user, or it is locked already (failures that
    /// were under way when the lock came do not start the next count).
    NotCounted,
}

/// The count after this failure (`$2` now, `$3` the window): a new window
/// when none is open or the open one has passed. A macro, so that the
/// statement stays one static string.
macro_rules! next_count {
    () => {
        "(CASE WHEN failures_since IS NULL OR failures_since <= $2 - $3 THEN 1 ELSE failed_logins + 1 END)"
    };
}

/// Counts one failure of a user not locked, and locks at the threshold
/// (`$1` login, `$4` the threshold, `$5` the end of a lock that starts now).
const COUNT_FAILURE: &str = concat!(
    "UPDATE users SET locked_until = CASE WHEN ",
    next_count!(),
    " >= $4 THEN $5 ELSE locked_until END, failures_since = CASE WHEN ",
    next_count!(),
    " >= $4 THEN NULL WHEN ",
    next_count!(),
    " = 1 THEN $2 ELSE failures_since END, failed_logins = CASE WHEN ",
    next_count!(),
    " >= $4 THEN 0 ELSE ",
    next_count!(),
    " END WHERE login = $1 AND admin_locked = 0 AND (locked_until IS NULL OR locked_until <= $2) \
     RETURNING failed_logins, locked_until"
);

impl Catalog {
    /// Counts one failed login of `login` at `now` (Unix milliseconds) and
    /// locks the user, in the same statement, when the count reaches
    /// `policy.max_failures`.
    pub async fn count_login_failure(
        &self,
        login: &Login,
        policy: LockPolicy,
        now: i64,
    ) -> Result<FailureCount, CatalogError> {
        let until = now.saturating_add(policy.lock_ms);
        let row = sqlx::query(COUNT_FAILURE)
            .bind(login.as_str())
            .bind(now)
            .bind(policy.window_ms)
            .bind(i64::from(policy.max_failures))
            .bind(until)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(FailureCount::NotCounted) };
        let failures: i64 = row.try_get("failed_logins")?;
        let locked_until: Option<i64> = row.try_get("locked_until")?;
        Ok(match locked_until {
            Some(locked) if failures == 0 && locked == until => FailureCount::Locked(until),
            _ => FailureCount::Counted(failures),
        })
    }

    /// Forgets the failed logins counted for `login` (after a successful login).
    pub async fn clear_login_failures(&self, login: &Login) -> Result<(), CatalogError> {
        sqlx::query(
            "UPDATE users SET failed_logins = 0, failures_since = NULL WHERE login = $1 AND failed_logins <> 0",
        )
        .bind(login.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
