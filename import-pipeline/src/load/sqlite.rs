//! Loading into a tenant's SQLite file: a direct SQLite connection
//! (rusqlite, over the same libsqlite3 as sqlx) on a blocking thread, one
//! prepared multi-row `INSERT` reused for every full batch, fed by
//! validation on a second thread (two cores: reading and checking the file
//! on one, SQLite on the other).
//!
//! ```text
//!  validation thread: rows ─► SqliteBatch (values as bytes, one buffer) ─┐ bounded channel
//!  load thread:       BEGIN, DDL ◄── bind + step the prepared INSERT ◄───┘
//!                     ─► verdict: ledger row, COMMIT | ROLLBACK
//! ```

use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::types::{Null, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Statement, Transaction};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection as _};
use tokio::sync::mpsc;

use super::encode::{write_date, write_timestamp};
use super::{
    Batcher, CHANNEL_BATCHES, Dialect, ImportRef, LEDGER_EARLIER, LEDGER_RECORD, LEDGER_ROWS, LoadError, LoadOutcome,
    Progress, column_list, connect_within, create_ledger_sql, create_table_sql, quote_ident, run_validation,
    upsert_clause,
};
use crate::profile::{Mode, Profile};
use crate::validate::{Row, ValidateError, Value};

/// Most parameters one statement may bind: `SQLITE_MAX_VARIABLE_NUMBER`
/// of the SQLite that libsqlite3-sys bundles (3.51; 32766 since 3.32).
const MAX_BOUND_PARAMETERS: usize = 32_766;
/// Most rows one `INSERT` carries: enough that stepping a statement costs
/// nothing per row, small enough to keep batches in the cache.
const MAX_ROWS_PER_INSERT: usize = 1024;
/// How long to wait for another writer's lock before the database counts as busy.
///
/// A load's transaction starts with a plain (deferred) `BEGIN`: SQLite takes
/// the write lock at its first write, not at `BEGIN`. The pipeline writes a
/// tenant's file from one job at a time, so another writer is a program
/// outside passerelle. While it holds the lock each statement waits up to this
/// long; where waiting could deadlock (both transactions read before they
/// write) SQLite answers busy at once. Either busy answer is
/// [`LoadError::Unavailable`]: the transaction is rolled back and the job is
/// tried again later.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Page cache of a load's connection, in KiB: a load's transaction keeps
/// its dirty pages here instead of spilling them to the WAL every 2 MiB
/// (SQLite's default).
const LOAD_CACHE_KIB: i64 = 64 << 10;

/// Rows per `INSERT` for a profile: as many as fit under
/// [`MAX_BOUND_PARAMETERS`], at most [`MAX_ROWS_PER_INSERT`].
fn rows_per_insert(profile: &Profile) -> usize {
    let per_row = profile.columns().len() + 2;
    (MAX_BOUND_PARAMETERS / per_row).clamp(1, MAX_ROWS_PER_INSERT)
}

/// One value of a batch, ready to bind.
#[derive(Clone, Debug)]
enum Slot {
    Null,
    Integer(i64),
    /// UTF-8 bytes in the batch's buffer.
    Text(Range<usize>),
    /// The job's id (`_import_id`), the same for every row.
    ImportId,
}

/// Rows encoded on the validation thread, their text in one buffer: the
/// rows' own allocations are freed where they were made, and the load
/// thread only binds.
#[derive(Debug, Default)]
struct SqliteBatch {
    rows: usize,
    slots: Vec<Slot>,
    text: Vec<u8>,
}

impl SqliteBatch {
    fn push(&mut self, row: Row) {
        for value in row.values {
            let slot = match value {
                Value::Null => Slot::Null,
                Value::Integer(n) => Slot::Integer(n),
                Value::Boolean(b) => Slot::Integer(i64::from(b)),
                Value::Text(text) | Value::Decimal(text) => {
                    self.text_slot(|out| out.extend_from_slice(text.as_bytes()))
                }
                Value::Date(date) => self.text_slot(|out| write_date(date, out)),
                Value::Timestamp(ts) => self.text_slot(|out| write_timestamp(ts, out)),
            };
            self.slots.push(slot);
        }
        self.slots.push(Slot::ImportId);
        self.slots.push(Slot::Integer(i64::try_from(row.line).unwrap_or(i64::MAX)));
        self.rows += 1;
    }

    fn text_slot(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Slot {
        let start = self.text.len();
        write(&mut self.text);
        Slot::Text(start..self.text.len())
    }
}

/// Batches of one `INSERT`'s worth of rows.
struct SqliteBatches {
    batch: SqliteBatch,
    size: usize,
}

impl Batcher for SqliteBatches {
    type Batch = SqliteBatch;

    fn push(&mut self, row: Row) -> Option<SqliteBatch> {
        self.batch.push(row);
        (self.batch.rows >= self.size).then(|| std::mem::take(&mut self.batch))
    }

    fn finish(&mut self) -> Option<SqliteBatch> {
        (self.batch.rows > 0).then(|| std::mem::take(&mut self.batch))
    }
}

/// The file a tenant database URL names.
fn database_path(url: &str) -> Result<PathBuf, LoadError> {
    let options = SqliteConnectOptions::from_str(url).map_err(LoadError::from_sqlx)?;
    Ok(options.get_filename().to_owned())
}

/// Opens the tenant's file for a load; never creates one (a missing file
/// is an error, not a new empty database). WAL, so that a commit writes the
/// transaction's pages once (to the WAL) instead of twice (rollback journal
/// then file), with `synchronous = FULL`, which in WAL mode syncs the WAL at
/// every commit. A load is one transaction, so that is one sync per file,
/// and a receipt that says "imported" is never written before its rows are
/// on disk: not after a killed process, nor after a power or operating
/// system failure (`NORMAL` would sync only at checkpoints and could forget
/// the last imports). WAL stays the file's journal mode afterwards (SQLite
/// keeps it in the file), which other readers and writers of the file
/// handle unchanged.
fn open_for_load(path: &Path) -> Result<Connection, LoadError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(LoadError::from_sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(LoadError::from_sqlite)?;
    let _mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(LoadError::from_sqlite)?;
    // Temporary data (the statement journal of a multi-row INSERT spills
    // past 64 KiB) stays in memory: it is bounded by one statement's rows,
    // and `serve` may not create files outside the data directory (Landlock).
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA cache_size = {}; PRAGMA temp_store = MEMORY;",
        -LOAD_CACHE_KIB
    ))
    .map_err(LoadError::from_sqlite)?;
    Ok(conn)
}

/// What a load needs on its own thread.
struct Job {
    id: String,
    expected: Option<String>,
    progress: Option<Progress>,
}

pub(super) async fn load<R: Read + Send + 'static>(
    url: &str,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let path = database_path(url)?;
    let profile = profile.clone();
    let job = Job {
        id: import.id.to_owned(),
        expected: import.sha256.map(str::to_owned),
        progress: import.progress.cloned(),
    };
    match tokio::task::spawn_blocking(move || load_blocking(&path, &profile, reader, &job)).await {
        Ok(outcome) => outcome,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(LoadError::Io(io::Error::other("the load was cancelled"))),
    }
}

/// The transaction of a load (as `backend::load_on` on PostgreSQL): ledger,
/// same content before (digest known), table, rows; then, accepted: digest
/// as expected, same content before (digest just computed), ledger row,
/// commit. Anything else rolls back (dropping the transaction).
fn load_blocking<R: Read + Send>(
    path: &Path,
    profile: &Profile,
    reader: R,
    job: &Job,
) -> Result<LoadOutcome, LoadError> {
    let mut conn = open_for_load(path)?;
    let tx = conn.transaction().map_err(LoadError::from_sqlite)?;
    tx.execute_batch(&create_ledger_sql(Dialect::Sqlite)).map_err(LoadError::from_sqlite)?;
    if let Some(expected) = &job.expected
        && let Some(earlier) = ledger_earlier(&tx, profile, expected)?
    {
        return Err(LoadError::AlreadyImported(earlier));
    }
    let table_created = !table_exists(&tx, profile.table())?;
    tx.execute_batch(&create_table_sql(Dialect::Sqlite, profile)).map_err(LoadError::from_sqlite)?;
    let table = quote_ident(profile.table());
    if profile.mode() == Mode::Replace {
        // Inside the transaction: a rollback brings the rows back.
        tx.execute_batch(&format!("DELETE FROM {table}")).map_err(LoadError::from_sqlite)?;
    }

    let (written, validated) = write_rows(&tx, profile, reader, job);
    let report = match validated {
        Ok(report) => report,
        Err(ValidateError::Read(e)) => return Err(LoadError::Io(e)),
        Err(ValidateError::Sink(_)) => {
            return Err(LoadError::from_sqlite(written.err().unwrap_or(rusqlite::Error::ExecuteReturnedResults)));
        }
    };
    let rows = written.map_err(LoadError::from_sqlite)?;
    if !report.is_accepted() {
        return Ok(LoadOutcome { report, rows: 0, table_created });
    }
    // Accepted means read whole, so digested.
    let found = report.sha256_hex().unwrap_or_default();
    match &job.expected {
        Some(expected) if *expected != found => {
            return Err(LoadError::ContentChanged { expected: expected.clone(), found });
        }
        Some(_) => {}
        None => {
            if let Some(earlier) = ledger_earlier(&tx, profile, &found)? {
                return Err(LoadError::AlreadyImported(earlier));
            }
        }
    }
    tx.execute(LEDGER_RECORD, (&job.id, profile.name(), &found, i64::try_from(rows).unwrap_or(i64::MAX)))
        .map_err(LoadError::from_sqlite)?;
    tx.commit().map_err(LoadError::from_sqlite)?;
    Ok(LoadOutcome { report, rows, table_created })
}

/// Validates `reader` on a second thread while this one inserts its rows.
/// Returns how writing ended (rows written) and how validation did.
fn write_rows<R: Read + Send>(
    tx: &Transaction<'_>,
    profile: &Profile,
    reader: R,
    job: &Job,
) -> (rusqlite::Result<u64>, super::Validated) {
    let size = rows_per_insert(profile);
    let (sender, mut receiver) = mpsc::channel(CHANNEL_BATCHES);
    std::thread::scope(|scope| {
        let batcher = SqliteBatches { batch: SqliteBatch::default(), size };
        let progress = job.progress.as_ref();
        let validation = std::thread::Builder::new()
            .name("passerelle-validate".into())
            .spawn_scoped(scope, move || run_validation(reader, profile, batcher, progress, sender));
        let validation = match validation {
            Ok(handle) => handle,
            Err(e) => return (Ok(0), Err(ValidateError::Read(e))),
        };
        let written = insert_batches(tx, profile, size, &job.id, &mut receiver);
        // Unblocks validation if the database failed first.
        drop(receiver);
        let validated = validation.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, validated)
    })
}

/// Inserts every batch that arrives, until the channel closes or the
/// database fails.
fn insert_batches(
    tx: &Transaction<'_>,
    profile: &Profile,
    size: usize,
    import_id: &str,
    batches: &mut mpsc::Receiver<SqliteBatch>,
) -> rusqlite::Result<u64> {
    let table = quote_ident(profile.table());
    let upsert = (profile.mode() == Mode::Upsert).then(|| upsert_clause(profile));
    let mut full = tx.prepare(&insert_sql(&table, profile, size, upsert.as_deref()))?;
    let mut rows = 0u64;
    while let Some(batch) = batches.blocking_recv() {
        let written = if batch.rows == size {
            insert(&mut full, &batch, import_id)?
        } else {
            let mut last = tx.prepare(&insert_sql(&table, profile, batch.rows, upsert.as_deref()))?;
            insert(&mut last, &batch, import_id)?
        };
        rows += written as u64;
    }
    Ok(rows)
}

/// Binds a batch's values to `statement` (made for its number of rows) and runs it.
fn insert(statement: &mut Statement<'_>, batch: &SqliteBatch, import_id: &str) -> rusqlite::Result<usize> {
    for (index, slot) in batch.slots.iter().enumerate() {
        let at = index + 1;
        match slot {
            Slot::Null => statement.raw_bind_parameter(at, Null)?,
            Slot::Integer(n) => statement.raw_bind_parameter(at, n)?,
            Slot::Text(range) => {
                statement.raw_bind_parameter(at, ToSqlOutput::Borrowed(ValueRef::Text(&batch.text[range.clone()])))?;
            }
            Slot::ImportId => statement.raw_bind_parameter(at, import_id)?,
        }
    }
    statement.raw_execute()
}

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows, with
/// the upsert clause if any (validation refuses a key repeated within a
/// file, so one statement never meets its own rows' keys).
fn insert_sql(table: &str, profile: &Profile, rows: usize, upsert: Option<&str>) -> String {
    let one = format!("({})", vec!["?"; profile.columns().len() + 2].join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES {}", column_list(profile), vec![one; rows].join(", "));
    if let Some(upsert) = upsert {
        sql.push(' ');
        sql.push_str(upsert);
    }
    // Identifiers come from a checked Profile and are quoted; values are bound.
    sql
}

fn ledger_earlier(tx: &Transaction<'_>, profile: &Profile, sha256: &str) -> Result<Option<String>, LoadError> {
    tx.query_row(LEDGER_EARLIER, (profile.name(), sha256), |row| row.get(0)).optional().map_err(LoadError::from_sqlite)
}

fn table_exists(tx: &Transaction<'_>, table: &str) -> Result<bool, LoadError> {
    tx.query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(LoadError::from_sqlite)
}

pub(super) async fn committed_import(url: &str, import_id: &str) -> Result<Option<u64>, LoadError> {
    let mut conn = connect(url).await?;
    let rows: Option<i64> = if table_exists_on(&mut conn, "_passerelle_imports").await? {
        sqlx::query_scalar(LEDGER_ROWS).bind(import_id).fetch_optional(&mut conn).await?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(rows.map(|n| u64::try_from(n).unwrap_or(0)))
}

pub(super) async fn rows_with_import_id(url: &str, profile: &Profile, import_id: &str) -> Result<u64, LoadError> {
    let mut conn = connect(url).await?;
    let count = if table_exists_on(&mut conn, profile.table()).await? {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE \"_import_id\" = ?1",
            quote_ident(profile.table())
        )))
        .bind(import_id)
        .fetch_one(&mut conn)
        .await?;
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    };
    let _ = conn.close().await;
    Ok(count)
}

/// Opens the tenant's file for a lookup; never creates one.
async fn connect(url: &str) -> Result<SqliteConnection, LoadError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(LoadError::from_sqlx)?
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    connect_within(SqliteConnection::connect_with(&options)).await
}

/// Whether `table` exists, on a lookup connection.
async fn table_exists_on(conn: &mut SqliteConnection, table: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
        .bind(table)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
