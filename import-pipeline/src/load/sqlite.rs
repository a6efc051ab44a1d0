//! Loading into a tenant's SQLite file with prepared, bound multi-row `INSERT`s.

use std::io::Read;
use std::str::FromStr;
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, SqlSafeStr, SqlStr, Transaction};

use super::backend::{Backend, Written, load_on, settle};
use super::encode::{write_date, write_timestamp};
use super::{
    Batcher, Dialect, ImportRef, LEDGER_ROWS, LoadError, LoadOutcome, column_list, connect_within, quote_ident,
    spawn_validation, upsert_clause,
};
use crate::profile::{Mode, Profile};
use crate::validate::{Row, Value};

/// Most parameters one statement may bind: `SQLITE_MAX_VARIABLE_NUMBER`
/// of the SQLite that libsqlite3-sys bundles (3.51; 32766 since 3.32).
const MAX_BOUND_PARAMETERS: usize = 32_766;
/// Most rows one `INSERT` carries. Beyond a few hundred rows a longer
/// statement saves nothing measurable (the round trip to sqlx's worker
/// thread is already a small part of the time) and only costs memory.
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

/// Rows travel as they are, one `INSERT`'s worth per batch; binding happens
/// on the writer's side.
struct RowBatches {
    rows: Vec<Row>,
    size: usize,
}

impl RowBatches {
    fn new(size: usize) -> Self {
        Self { rows: Vec::with_capacity(size), size }
    }
}

impl Batcher for RowBatches {
    type Batch = Vec<Row>;

    fn push(&mut self, row: Row) -> Option<Vec<Row>> {
        self.rows.push(row);
        (self.rows.len() >= self.size).then(|| std::mem::replace(&mut self.rows, Vec::with_capacity(self.size)))
    }

    fn finish(&mut self) -> Option<Vec<Row>> {
        (!self.rows.is_empty()).then(|| std::mem::take(&mut self.rows))
    }
}

/// Opens the tenant's file; never creates one (a missing file is an error,
/// not a new empty database).
async fn connect(url: &str) -> Result<SqliteConnection, LoadError> {
    connect_with(options(url)?).await
}

/// The options every connection to a tenant's file uses.
fn options(url: &str) -> Result<SqliteConnectOptions, LoadError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(LoadError::Database)?
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT))
}

async fn connect_with(options: SqliteConnectOptions) -> Result<SqliteConnection, LoadError> {
    connect_within(SqliteConnection::connect_with(&options)).await
}

/// Opens the tenant's file for a load: WAL, so that a commit writes the
/// transaction's pages once (to the WAL) instead of twice (rollback journal
/// then file), with `synchronous = FULL`, which in WAL mode syncs the WAL at
/// every commit. A load is one transaction, so that is one sync per file,
/// and a receipt that says "imported" is never written before its rows are
/// on disk: not after a killed process, nor after a power or operating
/// system failure (`NORMAL` would sync only at checkpoints and could forget
/// the last imports). WAL stays the file's journal mode afterwards (SQLite
/// keeps it in the file), which other readers and writers of the file
/// handle unchanged.
async fn connect_for_load(url: &str) -> Result<SqliteConnection, LoadError> {
    let options = options(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("cache_size", (-LOAD_CACHE_KIB).to_string());
    connect_with(options).await
}

pub(super) async fn load<R: Read + Send + 'static>(
    url: &str,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let mut conn = connect_for_load(url).await?;
    let outcome = load_on::<Sqlite, R>(&mut conn, profile, reader, import).await;
    let _ = conn.close().await;
    outcome
}

impl Backend for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn table_exists(conn: &mut SqliteConnection, table: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_optional(conn)
            .await?;
        Ok(found.is_some())
    }

    async fn write_rows<R: Read + Send + 'static>(
        conn: &mut SqliteConnection,
        profile: &Profile,
        reader: R,
        import: ImportRef<'_>,
    ) -> Result<Written, LoadError> {
        let table = quote_ident(profile.table());
        if profile.mode() == Mode::Replace {
            sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&mut *conn).await?;
        }
        let upsert = (profile.mode() == Mode::Upsert).then(|| upsert_clause(profile));
        let size = rows_per_insert(profile);
        // One statement text for every full batch: sqlx prepares it once and
        // reuses it from the connection's statement cache.
        let full = insert_sql(&table, profile, size, upsert.as_deref());

        let (mut batches, validation) = spawn_validation(reader, profile, RowBatches::new(size), import.progress);
        let mut rows = 0u64;
        let mut written = Ok(());
        while let Some(batch) = batches.recv().await {
            let sql = if batch.len() == size {
                full.clone()
            } else {
                insert_sql(&table, profile, batch.len(), upsert.as_deref())
            };
            let mut query = sqlx::query(sql);
            for row in batch {
                query = bind_row(query, row, import.id);
            }
            match query.execute(&mut *conn).await {
                Ok(done) => rows += done.rows_affected(),
                Err(e) => {
                    written = Err(e);
                    break;
                }
            }
        }
        Ok(match settle(batches, validation, written).await {
            Ok(report) => Written::Accepted { report, rows },
            Err(ended) => ended,
        })
    }

    async fn abandon(tx: Transaction<'_, Self>) {
        let _ = tx.rollback().await;
    }
}

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows, with
/// the upsert clause if any (validation refuses a key repeated within a
/// file, so one statement never meets its own rows' keys).
fn insert_sql(table: &str, profile: &Profile, rows: usize, upsert: Option<&str>) -> SqlStr {
    let one = format!("({})", vec!["?"; profile.columns().len() + 2].join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES {}", column_list(profile), vec![one; rows].join(", "));
    if let Some(upsert) = upsert {
        sql.push(' ');
        sql.push_str(upsert);
    }
    // Identifiers come from a checked Profile and are quoted; values are bound.
    AssertSqlSafe(sql).into_sql_str()
}

/// Binds a row's values, then its `_import_id` and `_line`, to the `INSERT`.
fn bind_row<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments>,
    row: Row,
    import_id: &'q str,
) -> Query<'q, Sqlite, SqliteArguments> {
    for value in row.values {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Text(text) | Value::Decimal(text) => query.bind(text),
            Value::Integer(n) => query.bind(n),
            Value::Boolean(b) => query.bind(i64::from(b)),
            Value::Date(date) => {
                let mut out = Vec::with_capacity(10);
                write_date(date, &mut out);
                query.bind(String::from_utf8_lossy(&out).into_owned())
            }
            Value::Timestamp(ts) => {
                let mut out = Vec::with_capacity(26);
                write_timestamp(ts, &mut out);
                query.bind(String::from_utf8_lossy(&out).into_owned())
            }
        };
    }
    query.bind(import_id).bind(i64::try_from(row.line).unwrap_or(i64::MAX))
}

pub(super) async fn committed_import(url: &str, import_id: &str) -> Result<Option<u64>, LoadError> {
    let mut conn = connect(url).await?;
    let rows: Option<i64> = if Sqlite::table_exists(&mut conn, "_passerelle_imports").await? {
        sqlx::query_scalar(LEDGER_ROWS).bind(import_id).fetch_optional(&mut conn).await?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(rows.map(|n| u64::try_from(n).unwrap_or(0)))
}

pub(super) async fn rows_with_import_id(url: &str, profile: &Profile, import_id: &str) -> Result<u64, LoadError> {
    let mut conn = connect(url).await?;
    let count = if Sqlite::table_exists(&mut conn, profile.table()).await? {
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
