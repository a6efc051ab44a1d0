//! Loading into a tenant's SQLite file with prepared, bound `INSERT`s.

use std::io::Read;
use std::str::FromStr;
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, SqlSafeStr, SqlStr, Transaction};

use super::backend::{Backend, Written, load_on, settle};
use super::encode::{write_date, write_timestamp};
use super::{
    Batcher, Dialect, ImportRef, LEDGER_ROWS, LoadError, LoadOutcome, column_list, connect_within, quote_ident,
    spawn_validation, upsert_clause,
};
use crate::profile::{Mode, Profile};
use crate::validate::{Row, Value};

/// Rows per batch crossing the channel.
const BATCH_ROWS: usize = 1024;
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

/// Rows travel as they are; binding happens on the writer's side.
struct RowBatches(Vec<Row>);

impl Batcher for RowBatches {
    type Batch = Vec<Row>;

    fn push(&mut self, row: Row) -> Option<Vec<Row>> {
        self.0.push(row);
        (self.0.len() >= BATCH_ROWS).then(|| std::mem::replace(&mut self.0, Vec::with_capacity(BATCH_ROWS)))
    }

    fn finish(&mut self) -> Option<Vec<Row>> {
        (!self.0.is_empty()).then(|| std::mem::take(&mut self.0))
    }
}

/// Opens the tenant's file; never creates one (a missing file is an error,
/// not a new empty database).
async fn connect(url: &str) -> Result<SqliteConnection, LoadError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(LoadError::Database)?
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    connect_within(SqliteConnection::connect_with(&options)).await
}

pub(super) async fn load<R: Read + Send + 'static>(
    url: &str,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let mut conn = connect(url).await?;
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
        let placeholders = vec!["?"; profile.columns().len() + 2].join(", ");
        let mut insert = format!("INSERT INTO {table} ({}) VALUES ({placeholders})", column_list(profile));
        if profile.mode() == Mode::Upsert {
            insert.push(' ');
            insert.push_str(&upsert_clause(profile));
        }
        // Identifiers come from a checked Profile and are quoted; values are bound.
        let insert: SqlStr = AssertSqlSafe(insert).into_sql_str();

        let (mut batches, validation) = spawn_validation(reader, profile, RowBatches(Vec::with_capacity(BATCH_ROWS)));
        let mut rows = 0u64;
        let mut written = Ok(());
        'batches: while let Some(batch) = batches.recv().await {
            for row in batch {
                match bind_row(sqlx::query(insert.clone()), row, import.id).execute(&mut *conn).await {
                    Ok(done) => rows += done.rows_affected(),
                    Err(e) => {
                        written = Err(e);
                        break 'batches;
                    }
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
