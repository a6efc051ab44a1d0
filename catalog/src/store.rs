//! Opening the catalog and applying its embedded migrations.

use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use crate::audit_mac::AuditKey;
use crate::error::CatalogError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine holds the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default).
    Sqlite,
    /// A PostgreSQL database, for deployments with several nodes.
    Postgres,
}

/// The catalog: tenants, users, keys, locks, bans, import jobs and audit events.
///
/// Cheap to clone; every clone shares one connection pool. Every query binds
/// its parameters (`$1`, `$2`… work in both dialects), so no SQL text is ever
/// built from input.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// The audit chain's key; without it the trail can be read, not written.
    audit_key: Option<AuditKey>,
}

impl Catalog {
    /// Connects to the catalog at `url` (`sqlite://…` or `postgres://…`),
    /// creating a SQLite file when absent, and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, CatalogError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            // `mode=rwc` creates the file on first start.
            let sep = if rest.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite:{rest}{sep}mode=rwc"))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(CatalogError::UnsupportedUrl);
        };
        let max_connections = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // In WAL mode NORMAL keeps the database consistent
                        // through crashes and only syncs at checkpoints,
                        // instead of once per commit (the audit trail commits often).
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *connection).await?;
                        // Deleted rows are overwritten, not left in free pages: a
                        // purged tenant's wrapped data key leaves the file.
                        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *connection).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets the admin CLI write while the server reads; the mode is
            // stored in the file, so setting it once per open is enough.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend, audit_key: None })
    }

    /// This catalog, writing (and verifying) the audit trail's chain with
    /// `key` (derived from the master key, purpose `audit-chain`).
    #[must_use]
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit_key = Some(key);
        self
    }

    /// The audit chain's key, or why there is none.
    pub(crate) fn audit_key(&self) -> Result<&AuditKey, CatalogError> {
        self.audit_key.as_ref().ok_or(CatalogError::NoAuditKey)
    }

    /// The engine behind this catalog.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time in Unix milliseconds, the catalog's time unit.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
