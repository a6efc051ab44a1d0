//! Loading a file into its tenant's own database, in one transaction.
//!
//! ```text
//!  reader ─► validate (blocking thread) ─► RowSink ─► bounded channel ─┐
//!                                                                      ▼
//!  tenant DB (tenant's own account) ◄── one transaction: CREATE TABLE IF NOT EXISTS,
//!                                        [DELETE/TRUNCATE], rows, [merge], COMMIT
//!                                        only when the report is accepted
//! ```
//!
//! The file is read once, by [`validate`](crate::validate), on a blocking
//! thread; valid rows cross a bounded channel (a few batches: memory stays
//! bounded whatever the file's size) to the task that writes them:
//!
//! - PostgreSQL: rows are encoded on the validation thread into `COPY`
//!   binary format (values as the server stores them: it parses nothing)
//!   and streamed with `COPY ... FROM STDIN` into the table (append,
//!   replace after `TRUNCATE`, upsert into an empty table) or into a
//!   temporary table merged with `INSERT ... ON CONFLICT (key) DO UPDATE`
//!   (upsert).
//! - SQLite: rows are encoded on the validation thread into batches (their
//!   text in one buffer) and bound, on a blocking thread with a direct
//!   SQLite connection (rusqlite: no async round trip per statement), to
//!   multi-row `INSERT`s, up to 1024 rows each (under SQLite's limit of
//!   32766 bound values), one prepared statement reused for every full
//!   batch (`ON CONFLICT (key) DO UPDATE` for upsert, after `DELETE FROM`
//!   for replace); the load's connection uses WAL with `synchronous = FULL`
//!   (one sync of the WAL per file, at its commit). Tables have no index
//!   but an upsert profile's primary key, which `ON CONFLICT` needs while
//!   rows arrive (an `integer` key is SQLite's rowid: no separate index).
//!
//! Rows reach the database before the verdict is known (an error on the last
//! line): the transaction is committed only when
//! [`ValidationReport::is_accepted`], and rolled back otherwise, so a file
//! lands whole or not at all.
//!
//! Every table gets `_import_id` (the job's id, so a later run can see what a
//! job already wrote: [`rows_with_import_id`]) and `_line` (the record's
//! first line in the file).
//!
//! Each tenant database also keeps a ledger, `_passerelle_imports`: one row
//! per committed import (id, profile, SHA-256 of the content, rows), written
//! in the same transaction as the rows. It is what makes imports exactly
//! once: after a crash, [`committed_import`] tells whether a job's
//! transaction committed, and content already in the ledger for the same
//! profile is refused with [`LoadError::AlreadyImported`] before any row is
//! written.
//!
//! Non-features: an existing table is used as it is (a table whose columns
//! differ from the profile fails the load with [`LoadError::Database`]); no
//! schema migration; no connection pooling (one connection per load).

mod backend;
mod encode;
mod postgres;
mod progress;
mod sqlite;

use std::io::{self, Read};
use std::time::Duration;

use passerelle_catalog::TenantDatabase;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::profile::{ColumnType, Mode, Profile};
use crate::validate::{Row, RowSink, ValidateError, ValidationReport, validate};

pub use progress::Progress;

/// How long connecting to a tenant database may take before it counts as
/// unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Batches in flight between validation and the database writer.
const CHANNEL_BATCHES: usize = 4;

/// What a load did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOutcome {
    /// What validation found; the file was committed exactly when
    /// [`ValidationReport::is_accepted`].
    pub report: ValidationReport,
    /// Rows written by the committed transaction (inserted or, for upsert,
    /// inserted or updated); 0 when the file was rejected.
    pub rows: u64,
    /// Whether the table did not exist before this load (it was created,
    /// and kept only when the file was committed).
    pub table_created: bool,
}

impl LoadOutcome {
    /// Whether the file's rows were committed.
    pub fn is_imported(&self) -> bool {
        self.report.is_accepted()
    }
}

/// Why a load did not reach a verdict. Nothing was committed in any case.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The tenant database could not be reached, or went away during the
    /// load, or is busy: wait and retry later.
    #[error("tenant database unavailable: {0}")]
    Unavailable(#[source] DatabaseError),
    /// The tenant database refused a statement (permissions, a table with
    /// other columns, ...): retrying will not help until someone acts.
    #[error("tenant database: {0}")]
    Database(#[source] DatabaseError),
    /// The file could not be read.
    #[error("reading the file: {0}")]
    Io(#[source] io::Error),
    /// The same content was imported with the same profile before, by the
    /// job named here; nothing was committed.
    #[error("the same content was imported before (import {0})")]
    AlreadyImported(String),
    /// The file's content is not the one [`ImportRef::sha256`] names;
    /// nothing was committed.
    #[error("the file's SHA-256 is {found}, not {expected} as expected")]
    ContentChanged {
        /// The digest the content was expected to have.
        expected: String,
        /// The digest of what was read.
        found: String,
    },
    /// The [`TenantDatabase`] names a backend this build does not know.
    #[error("tenant database backend {0:?} is not supported (expected sqlite or postgres)")]
    UnsupportedBackend(String),
}

/// What a tenant database answered, from either driver: sqlx
/// (PostgreSQL, and SQLite lookups) or the direct SQLite connection of a
/// SQLite load.
#[derive(Debug, Error)]
pub enum DatabaseError {
    /// Through sqlx.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Through the direct SQLite connection.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl LoadError {
    /// Classifies a database error: unreachable / gone / busy, or a refusal.
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        if is_unavailable(&error) { Self::Unavailable(error.into()) } else { Self::Database(error.into()) }
    }

    /// Classifies an error of a direct SQLite connection: busy, locked and
    /// disk full may pass; anything else is a refusal.
    pub(crate) fn from_sqlite(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull};
        match error.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked | DiskFull) => Self::Unavailable(error.into()),
            _ => Self::Database(error.into()),
        }
    }

    /// Whether waiting and retrying may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Io(_))
    }
}

impl From<sqlx::Error> for LoadError {
    fn from(error: sqlx::Error) -> Self {
        Self::from_sqlx(error)
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite: BUSY (5), LOCKED (6) and FULL (13: its disk is),
                // with their extended codes.
                code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 13))
            } else {
                // PostgreSQL: class 08 connection exception, 57P01-57P03
                // (shutdown, crash shutdown, cannot connect now), 53300 too
                // many connections, 53100 disk full, 40001/40P01 serialization
                // failure, deadlock.
                code.starts_with("08")
                    || matches!(&*code, "57P01" | "57P02" | "57P03" | "53100" | "53300" | "40001" | "40P01")
            }
        }
        _ => false,
    }
}

/// Which import a load is: its id (the job's), the SHA-256 of the file
/// when known before reading it, and where to count progress.
#[derive(Clone, Copy, Debug)]
pub struct ImportRef<'a> {
    /// Goes into every row's `_import_id` and into the ledger.
    pub id: &'a str,
    /// SHA-256 the content must have, lower-case hex, when it is known
    /// before reading (an upload's seal, an earlier run): content already
    /// imported is then refused before any row is written, and a file whose
    /// digest differs is refused ([`LoadError::ContentChanged`]). `None`:
    /// the load's own pass computes it, and the ledger is asked just before
    /// the commit.
    pub sha256: Option<&'a str>,
    /// Counts rows and bytes as the load goes.
    pub progress: Option<&'a Progress>,
}

impl<'a> ImportRef<'a> {
    /// Import `id`, content not known in advance, progress not watched.
    pub fn new(id: &'a str) -> Self {
        Self { id, sha256: None, progress: None }
    }
}

/// Validates `reader` against `profile` and loads its rows into the
/// profile's table in `database`, in one transaction, connecting with the
/// tenant's own credentials (`database.url`).
///
/// The table is created from the profile when absent. The file is read
/// once, on a blocking thread, and never held in memory. The transaction is
/// committed, with the import's ledger row, only when the report is
/// accepted; otherwise it is rolled back and the outcome carries the report
/// with `rows == 0`. Content already in the ledger for this profile is
/// [`LoadError::AlreadyImported`].
pub async fn load<R>(
    database: &TenantDatabase,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError>
where
    R: Read + Send + 'static,
{
    match database.backend.as_str() {
        "postgres" => postgres::load(&database.url, profile, reader, import).await,
        "sqlite" => sqlite::load(&database.url, profile, reader, import).await,
        other => Err(LoadError::UnsupportedBackend(other.to_owned())),
    }
}

/// The rows of import `import_id` if its transaction committed (it is in
/// the ledger), `None` if it did not (or never ran).
pub async fn committed_import(database: &TenantDatabase, import_id: &str) -> Result<Option<u64>, LoadError> {
    match database.backend.as_str() {
        "postgres" => postgres::committed_import(&database.url, import_id).await,
        "sqlite" => sqlite::committed_import(&database.url, import_id).await,
        other => Err(LoadError::UnsupportedBackend(other.to_owned())),
    }
}

/// Name of the ledger table in every tenant database, as a literal for `concat!`.
macro_rules! ledger {
    () => {
        "\"_passerelle_imports\""
    };
}

/// Name of the ledger table in every tenant database.
pub(crate) const LEDGER: &str = ledger!();

// Ledger statements, the same text for both dialects (SQLite numbers `$n`
// parameters in order of appearance, as they appear here).
/// The import that already loaded this profile and content: `$1` profile, `$2` SHA-256.
pub(crate) const LEDGER_EARLIER: &str =
    concat!("SELECT import_id FROM ", ledger!(), " WHERE profile = $1 AND sha256 = $2");
/// Records a committed import: `$1` id, `$2` profile, `$3` SHA-256, `$4` rows.
pub(crate) const LEDGER_RECORD: &str =
    concat!("INSERT INTO ", ledger!(), " (import_id, profile, sha256, rows) VALUES ($1, $2, $3, $4)");
/// The rows of a committed import: `$1` id.
pub(crate) const LEDGER_ROWS: &str = concat!("SELECT rows FROM ", ledger!(), " WHERE import_id = $1");

/// `CREATE TABLE IF NOT EXISTS` for the ledger.
pub(crate) fn create_ledger_sql(dialect: Dialect) -> String {
    let at = match dialect {
        Dialect::Postgres => "timestamptz NOT NULL DEFAULT now()",
        Dialect::Sqlite => "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {LEDGER} (import_id TEXT PRIMARY KEY NOT NULL, profile TEXT NOT NULL, \
         sha256 TEXT NOT NULL, rows BIGINT NOT NULL, imported_at {at}, UNIQUE (profile, sha256))"
    )
}

/// How many rows of the profile's table carry `import_id` (0 when the table
/// does not exist): what an interrupted or finished job already committed.
pub async fn rows_with_import_id(
    database: &TenantDatabase,
    profile: &Profile,
    import_id: &str,
) -> Result<u64, LoadError> {
    match database.backend.as_str() {
        "postgres" => postgres::rows_with_import_id(&database.url, profile, import_id).await,
        "sqlite" => sqlite::rows_with_import_id(&database.url, profile, import_id).await,
        other => Err(LoadError::UnsupportedBackend(other.to_owned())),
    }
}

/// `"name"`, with any `"` doubled. Profile identifiers are
/// `[a-z_][a-z0-9_]*` already; quoting makes keywords (`order`) usable.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The two dialects' DDL differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    fn sql_type(self, column_type: &ColumnType) -> &'static str {
        match (self, column_type) {
            (Self::Postgres, ColumnType::Text | ColumnType::Email) => "text",
            (Self::Postgres, ColumnType::Integer) => "bigint",
            (Self::Postgres, ColumnType::Decimal { .. }) => "numeric",
            (Self::Postgres, ColumnType::Boolean) => "boolean",
            (Self::Postgres, ColumnType::Date(_)) => "date",
            (Self::Postgres, ColumnType::Timestamp(_)) => "timestamp",
            (Self::Sqlite, ColumnType::Integer | ColumnType::Boolean) => "INTEGER",
            (Self::Sqlite, _) => "TEXT",
        }
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the profile: declared columns typed per
/// dialect, `_import_id`, `_line`, and a primary key on the key columns for
/// upsert profiles.
pub(crate) fn create_table_sql(dialect: Dialect, profile: &Profile) -> String {
    let mut parts: Vec<String> = profile
        .columns()
        .iter()
        .map(|c| {
            let not_null = if profile.key().iter().any(|k| k == c.name()) { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote_ident(c.name()), dialect.sql_type(c.column_type()))
        })
        .collect();
    parts.push("\"_import_id\" TEXT NOT NULL".to_owned());
    parts.push("\"_line\" BIGINT NOT NULL".to_owned());
    if profile.mode() == Mode::Upsert {
        parts.push(format!("PRIMARY KEY ({})", key_list(profile)));
    }
    format!("CREATE TABLE IF NOT EXISTS {} ({})", quote_ident(profile.table()), parts.join(", "))
}

/// The quoted declared columns then `_import_id`, `_line`: the order rows are written in.
pub(crate) fn column_list(profile: &Profile) -> String {
    let mut names: Vec<String> = profile.columns().iter().map(|c| quote_ident(c.name())).collect();
    names.push("\"_import_id\"".to_owned());
    names.push("\"_line\"".to_owned());
    names.join(", ")
}

/// The quoted key columns.
pub(crate) fn key_list(profile: &Profile) -> String {
    profile.key().iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")
}

/// `ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...` for every non-key
/// column, `_import_id` and `_line` included.
pub(crate) fn upsert_clause(profile: &Profile) -> String {
    let sets: Vec<String> = profile
        .columns()
        .iter()
        .map(|c| c.name())
        .filter(|name| !profile.key().iter().any(|k| k == name))
        .chain(["_import_id", "_line"])
        .map(|name| {
            let q = quote_ident(name);
            format!("{q} = excluded.{q}")
        })
        .collect();
    format!("ON CONFLICT ({}) DO UPDATE SET {}", key_list(profile), sets.join(", "))
}

/// Turns rows into batches for the database writer.
pub(crate) trait Batcher: Send + 'static {
    /// What crosses the channel.
    type Batch: Send + 'static;

    /// Adds a row; returns a full batch to send, if any.
    fn push(&mut self, row: Row) -> Option<Self::Batch>;

    /// The last, partial batch.
    fn finish(&mut self) -> Option<Self::Batch>;
}

/// The writer stopped taking batches (it failed; its error is reported).
#[derive(Debug, Error)]
#[error("the database writer stopped")]
pub(crate) struct WriterGone;

/// A [`RowSink`] that batches rows into a bounded channel, counting the
/// rows of each batch sent into the load's [`Progress`].
struct ChannelSink<B: Batcher> {
    batcher: B,
    sender: mpsc::Sender<B::Batch>,
    progress: Option<Progress>,
    /// Rows pushed since the last batch was sent.
    unsent: u64,
}

impl<B: Batcher> ChannelSink<B> {
    fn send(&mut self, batch: B::Batch) -> Result<(), WriterGone> {
        self.sender.blocking_send(batch).map_err(|_| WriterGone)?;
        if let Some(progress) = &self.progress {
            progress.add_rows(self.unsent);
        }
        self.unsent = 0;
        Ok(())
    }
}

impl<B: Batcher> RowSink for ChannelSink<B> {
    type Error = WriterGone;

    fn accept(&mut self, row: Row) -> Result<(), WriterGone> {
        self.unsent += 1;
        match self.batcher.push(row) {
            Some(batch) => self.send(batch),
            None => Ok(()),
        }
    }
}

/// What the validation thread ends with.
type Validated = Result<ValidationReport, ValidateError<WriterGone>>;

/// Validates `reader`, sending batches of valid rows to `sender` (the last,
/// partial batch only when the file is accepted) and counting progress.
fn run_validation<R: Read, B: Batcher>(
    reader: R,
    profile: &Profile,
    batcher: B,
    progress: Option<&Progress>,
    sender: mpsc::Sender<B::Batch>,
) -> Validated {
    let mut sink = ChannelSink { batcher, sender, progress: progress.cloned(), unsent: 0 };
    let report = match progress {
        Some(progress) => validate(progress.counting(reader), profile, &mut sink)?,
        None => validate(reader, profile, &mut sink)?,
    };
    if report.is_accepted()
        && let Some(batch) = sink.batcher.finish()
    {
        sink.send(batch).map_err(ValidateError::Sink)?;
    }
    Ok(report)
}

/// Starts validation on a blocking thread; batches of valid rows arrive on
/// the returned receiver, which closes when validation ends (the last
/// partial batch is sent only when the file is accepted).
fn spawn_validation<R, B>(
    reader: R,
    profile: &Profile,
    batcher: B,
    progress: Option<&Progress>,
) -> (mpsc::Receiver<B::Batch>, tokio::task::JoinHandle<Validated>)
where
    R: Read + Send + 'static,
    B: Batcher,
{
    let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
    let profile = profile.clone();
    let progress = progress.cloned();
    let handle =
        tokio::task::spawn_blocking(move || run_validation(reader, &profile, batcher, progress.as_ref(), sender));
    (receiver, handle)
}

/// Waits for the validation thread (after the receiver is dropped or drained).
async fn join_validation(handle: tokio::task::JoinHandle<Validated>) -> Validated {
    match handle.await {
        Ok(validated) => validated,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(ValidateError::Read(io::Error::other("validation was cancelled"))),
    }
}

/// Connects within [`CONNECT_TIMEOUT`]; a timeout is [`LoadError::Unavailable`].
async fn connect_within<T>(connecting: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, LoadError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => connected.map_err(LoadError::from_sqlx),
        Err(_) => Err(LoadError::Unavailable(sqlx::Error::PoolTimedOut.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profiles;

    fn profile(mode: &str, key: &str) -> Profile {
        let text = format!(
            r#"
[[import]]
name = "orders"
match = "*.csv"
table = "order"
mode = "{mode}"
{key}
  [[import.columns]]
  name = "select"
  type = "integer"
  [[import.columns]]
  name = "amount"
  type = "decimal"
  [[import.columns]]
  name = "day"
  type = "date"
"#
        );
        Profiles::parse(&text).unwrap().iter().next().unwrap().clone()
    }

    #[test]
    fn ddl_quotes_keywords_and_types_columns() {
        let append = profile("append", "");
        assert_eq!(
            create_table_sql(Dialect::Postgres, &append),
            "CREATE TABLE IF NOT EXISTS \"order\" (\"select\" bigint, \"amount\" numeric, \"day\" date, \
             \"_import_id\" TEXT NOT NULL, \"_line\" BIGINT NOT NULL)"
        );
        let upsert = profile("upsert", "key = [\"select\"]");
        assert_eq!(
            create_table_sql(Dialect::Sqlite, &upsert),
            "CREATE TABLE IF NOT EXISTS \"order\" (\"select\" INTEGER NOT NULL, \"amount\" TEXT, \"day\" TEXT, \
             \"_import_id\" TEXT NOT NULL, \"_line\" BIGINT NOT NULL, PRIMARY KEY (\"select\"))"
        );
        assert_eq!(
            upsert_clause(&upsert),
            "ON CONFLICT (\"select\") DO UPDATE SET \"amount\" = excluded.\"amount\", \"day\" = excluded.\"day\", \
             \"_import_id\" = excluded.\"_import_id\", \"_line\" = excluded.\"_line\""
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
