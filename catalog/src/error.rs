//! Errors of the catalog.

use thiserror::Error;

/// A name (tenant or login) that is not a strict identifier.
#[derive(Debug, Error)]
#[error("invalid {what}: {reason}")]
pub struct NameError {
    pub(crate) what: &'static str,
    pub(crate) reason: String,
}

/// Why a catalog operation failed.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The catalog URL is not `sqlite:` or `postgres:`.
    #[error("catalog URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    /// The database could not be reached or answered with an error.
    #[error("catalog database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("catalog migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A row the operation needs does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A row with the same key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Rows changed under a multi-row update, which was abandoned whole.
    #[error("catalog changed meanwhile: {0}; run the command again")]
    Conflict(String),
    /// A stored value this build cannot read (written by a newer version?).
    #[error("catalog holds an unknown {0}")]
    Corrupt(String),
    /// The audit trail is chained, and this process was given no key to chain it with.
    #[error("the audit trail cannot be written or verified without its key (derived from keys.master_key_file)")]
    NoAuditKey,
    /// The audit chain is sealed with another key than this process's: the
    /// master key was rotated since it loaded it (or the checkpoint was changed).
    #[error(
        "the audit chain is sealed with another key than this process's: restart it if the master key was \
         rotated, else run `passerelle audit verify`"
    )]
    AuditKeyStale,
    /// The audit chain is broken: the operation would hide it, so it is refused.
    #[error("audit chain broken: {0}")]
    AuditChain(crate::audit_check::ChainBreak),
}

impl CatalogError {
    /// Maps a unique-constraint violation to [`CatalogError::AlreadyExists`].
    pub(crate) fn on_conflict(err: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::AlreadyExists(what()),
            _ => Self::Database(err),
        }
    }
}
