//! Loading into a tenant's PostgreSQL database through `COPY ... FROM STDIN`.

use std::io::Read;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::encode::CopyText;
use super::{
    Dialect, ImportRef, LEDGER_EARLIER, LEDGER_RECORD, LEDGER_ROWS, LoadError, LoadOutcome, column_list,
    connect_within, create_ledger_sql, create_table_sql, join_validation, quote_ident, spawn_validation, upsert_clause,
};
use crate::profile::{Mode, Profile};
use crate::validate::ValidateError;

/// The temporary table an upsert copies into, dropped at commit.
const STAGING: &str = "\"_passerelle_staging\"";

pub(super) async fn load<R: Read + Send + 'static>(
    url: &str,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let outcome = load_on(&mut conn, profile, reader, import).await;
    // On error the connection may be mid-COPY or gone: closing it (or
    // dropping it) makes the server roll back whatever was open.
    let _ = conn.close().await;
    outcome
}

async fn load_on<R: Read + Send + 'static>(
    conn: &mut PgConnection,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError> {
    let import_id = import.id;
    let table = quote_ident(profile.table());
    let columns = column_list(profile);
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(AssertSqlSafe(create_ledger_sql(Dialect::Postgres))).execute(&mut *tx).await?;
    let earlier: Option<String> =
        sqlx::query_scalar(LEDGER_EARLIER).bind(profile.name()).bind(import.sha256).fetch_optional(&mut *tx).await?;
    if let Some(earlier) = earlier {
        tx.rollback().await?;
        return Err(LoadError::AlreadyImported(earlier));
    }
    let table_created = !table_exists(&mut tx, profile.table()).await?;
    sqlx::raw_sql(AssertSqlSafe(create_table_sql(Dialect::Postgres, profile))).execute(&mut *tx).await?;
    let target = match profile.mode() {
        Mode::Append => table.clone(),
        Mode::Replace => {
            // Inside the transaction: a rollback brings the rows back.
            sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {table}"))).execute(&mut *tx).await?;
            table.clone()
        }
        Mode::Upsert => {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TEMPORARY TABLE {STAGING} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
            )))
            .execute(&mut *tx)
            .await?;
            STAGING.to_owned()
        }
    };

    let mut copy = tx.copy_in_raw(&format!("COPY {target} ({columns}) FROM STDIN WITH (FORMAT text)")).await?;
    let (mut batches, validation) = spawn_validation(reader, profile, CopyText::new(import_id));
    let mut written = Ok(());
    while let Some(batch) = batches.recv().await {
        if let Err(e) = copy.send(batch).await {
            written = Err(e);
            break;
        }
    }
    // Unblocks the validation thread if the database failed first.
    drop(batches);
    let validated = join_validation(validation).await;
    if let Err(e) = written {
        // The database's error is the cause; the COPY and the transaction
        // are abandoned with the connection.
        return Err(LoadError::from_sqlx(e));
    }
    let report = match validated {
        Ok(report) => report,
        Err(ValidateError::Read(e)) => {
            copy.abort("the file could not be read").await?;
            tx.rollback().await?;
            return Err(LoadError::Io(e));
        }
        Err(ValidateError::Sink(_)) => {
            unreachable!("batches are received until the channel closes")
        }
    };
    if !report.is_accepted() {
        copy.abort("the file was rejected").await?;
        tx.rollback().await?;
        return Ok(LoadOutcome { report, rows: 0, table_created });
    }
    let mut rows = copy.finish().await?;
    if profile.mode() == Mode::Upsert {
        rows = sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGING} {}",
            upsert_clause(profile)
        )))
        .execute(&mut *tx)
        .await?
        .rows_affected();
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
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let rows: Option<i64> = if table_exists(&mut conn, "_passerelle_imports").await? {
        sqlx::query_scalar(LEDGER_ROWS).bind(import_id).fetch_optional(&mut conn).await?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(rows.map(|n| u64::try_from(n).unwrap_or(0)))
}

async fn table_exists(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
         WHERE schemaname = current_schema() AND tablename = $1)",
    )
    .bind(table)
    .fetch_one(conn)
    .await
}

pub(super) async fn rows_with_import_id(url: &str, profile: &Profile, import_id: &str) -> Result<u64, LoadError> {
    let mut conn = connect_within(PgConnection::connect(url)).await?;
    let count = if table_exists(&mut conn, profile.table()).await? {
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
