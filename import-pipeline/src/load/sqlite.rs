//! Loading into a tenant's SQLite file with prepared, bound `INSERT`s.

use std::io::Read;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, SqlSafeStr, SqlStr};

use super::encode::{write_date, write_timestamp};
use super::{
    Batcher, Dialect, ImportRef, LEDGER_EARLIER, LEDGER_RECORD, LEDGER_ROWS, LoadError, LoadOutcome, column_list,
    connect_within, create_ledger_sql, create_table_sql, join_validation, quote_ident, spawn_validation, upsert_clause,
};
use crate::profile::{Mode, Profile};
use crate::validate::{Row, ValidateError, Value};

/// Rows per batch crossing the channel.
const BATCH_ROWS: usize = 1024;
/// How long to wait for another writer's lock before the database counts as busy.
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
    let outcome = load_on(&mut conn, profile, reader, import).await;
    let _ = conn.close().await;
    outcome
}

async fn load_on<R: Read + Send + 'static>(
    conn: &mut SqliteConnection,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let import_id = import.id;
    let table = quote_ident(profile.table());
    // BEGIN IMMEDIATE would be better against concurrent writers; the
    // busy timeout covers them for now.
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(AssertSqlSafe(create_ledger_sql(Dialect::Sqlite))).execute(&mut *tx).await?;
    let earlier: Option<String> =
        sqlx::query_scalar(LEDGER_EARLIER).bind(profile.name()).bind(import.sha256).fetch_optional(&mut *tx).await?;
    if let Some(earlier) = earlier {
        tx.rollback().await?;
        return Err(LoadError::AlreadyImported(earlier));
    }
    let table_created = !table_exists(&mut tx, profile.table()).await?;
    sqlx::raw_sql(AssertSqlSafe(create_table_sql(Dialect::Sqlite, profile))).execute(&mut *tx).await?;
    if profile.mode() == Mode::Replace {
        sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&mut *tx).await?;
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
            let mut query = sqlx::query(insert.clone());
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
            let line = i64::try_from(row.line).unwrap_or(i64::MAX);
            match query.bind(import_id).bind(line).execute(&mut *tx).await {
                Ok(done) => rows += done.rows_affected(),
                Err(e) => {
                    written = Err(e);
                    break 'batches;
                }
            }
        }
    }
    drop(batches);
    let validated = join_validation(validation).await;
    if let Err(e) = written {
        let _ = tx.rollback().await;
        return Err(LoadError::from_sqlx(e));
    }
    let report = match validated {
        Ok(report) => report,
        Err(ValidateError::Read(e)) => {
            tx.rollback().await?;
            return Err(LoadError::Io(e));
        }
        Err(ValidateError::Sink(_)) => {
            unreachable!("batches are received until the channel closes")
        }
    };
    if !report.is_accepted() {
        tx.rollback().await?;
        return Ok(LoadOutcome { report, rows: 0, table_created });
    }
    sqlx::query(LEDGER_RECORD)
        .bind(import_id)
        .bind(profile.name())
        .bind(import.sha256)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(LoadOutcome { report, rows, table_created })
}

pub(super) async fn committed_import(url: &str, import_id: &str) -> Result<Option<u64>, LoadError> {
    let mut conn = connect(url).await?;
    let rows: Option<i64> = if table_exists(&mut conn, "_passerelle_imports").await? {
        sqlx::query_scalar(LEDGER_ROWS).bind(import_id).fetch_optional(&mut conn).await?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(rows.map(|n| u64::try_from(n).unwrap_or(0)))
}

async fn table_exists(conn: &mut SqliteConnection, table: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
        .bind(table)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn rows_with_import_id(url: &str, profile: &Profile, import_id: &str) -> Result<u64, LoadError> {
    let mut conn = connect(url).await?;
    let count = if table_exists(&mut conn, profile.table()).await? {
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
