//! Loading into a tenant's PostgreSQL database through `COPY ... FROM STDIN`.

use std::io::Read;

use sqlx::postgres::Postgres;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Transaction};

use super::backend::{Backend, Written, load_on, settle};
use super::encode::CopyBinary;
use super::{
    Dialect, ImportRef, LEDGER_ROWS, LoadError, LoadOutcome, column_list, connect_within, quote_ident,
    spawn_validation, upsert_clause,
};
use crate::profile::{Mode, Profile};

/// The temporary table an upsert copies into, dropped at commit.
const STAGING: &str = "\"_passerelle_staging\"";

pub(super) async fn load<R: Read + Send + 'static>(
    url: &str,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let outcome = load_on::<Postgres, R>(&mut conn, profile, reader, import).await;
    // On error the connection may be mid-COPY or gone: closing it (or
    // dropping it) makes the server roll back whatever was open.
    let _ = conn.close().await;
    outcome
}

impl Backend for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    async fn table_exists(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = $1)",
        )
        .bind(table)
        .fetch_one(conn)
        .await
    }

    async fn write_rows<R: Read + Send + 'static>(
        conn: &mut PgConnection,
        profile: &Profile,
        reader: R,
        import: ImportRef<'_>,
    ) -> Result<Written, LoadError> {
        let table = quote_ident(profile.table());
        let columns = column_list(profile);
        let target = match profile.mode() {
            Mode::Append => table.clone(),
            Mode::Replace => {
                // Inside the transaction: a rollback brings the rows back.
                sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {table}"))).execute(&mut *conn).await?;
                table.clone()
            }
            // An empty table (a new one) has no key a row could meet, and
            // validation refuses a key repeated within a file: the rows go
            // straight in, with no staging table to merge.
            Mode::Upsert if is_empty(conn, &table).await? => table.clone(),
            Mode::Upsert => {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE TEMPORARY TABLE {STAGING} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                )))
                .execute(&mut *conn)
                .await?;
                STAGING.to_owned()
            }
        };

        let mut copy = conn.copy_in_raw(&format!("COPY {target} ({columns}) FROM STDIN WITH (FORMAT binary)")).await?;
        let (mut batches, validation) = spawn_validation(reader, profile, CopyBinary::new(import.id), import.progress);
        let mut written = Ok(());
        while let Some(batch) = batches.recv().await {
            if let Err(e) = copy.send(batch).await {
                written = Err(e);
                break;
            }
        }
        let report = match settle(batches, validation, written).await {
            Ok(report) => report,
            Err(ended) => {
                match &ended {
                    Written::Unreadable(_) => copy.abort("the file could not be read").await?,
                    Written::Rejected(_) => copy.abort("the file was rejected").await?,
                    // The database's error is the cause: the COPY is
                    // abandoned with the connection.
                    Written::Failed(_) | Written::Accepted { .. } => {}
                }
                return Ok(ended);
            }
        };
        let mut rows = copy.finish().await?;
        if target == STAGING {
            rows = sqlx::raw_sql(AssertSqlSafe(format!(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGING} {}",
                upsert_clause(profile)
            )))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        Ok(Written::Accepted { report, rows })
    }

    /// Nothing is sent: the connection may be mid-`COPY`; the transaction
    /// is abandoned with it.
    async fn abandon(_tx: Transaction<'_, Self>) {}
}

/// Whether `table` (quoted) has no row.
async fn is_empty(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"))).fetch_one(conn).await
}

pub(super) async fn committed_import(url: &str, import_id: &str) -> Result<Option<u64>, LoadError> {
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let rows: Option<i64> = if Postgres::table_exists(&mut conn, "_passerelle_imports").await? {
        sqlx::query_scalar(LEDGER_ROWS).bind(import_id).fetch_optional(&mut conn).await?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(rows.map(|n| u64::try_from(n).unwrap_or(0)))
}

pub(super) async fn rows_with_import_id(url: &str, profile: &Profile, import_id: &str) -> Result<u64, LoadError> {
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let count = if Postgres::table_exists(&mut conn, profile.table()).await? {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE \"_import_id\" = $1",
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
