//! The transaction of a load through sqlx (PostgreSQL), around the part
//! that is the backend's own (how rows are written). SQLite loads run the
//! same steps on a direct connection of their own (`sqlite.rs`), for speed:
//!
//! ```text
//!  BEGIN ─► ledger table ─► same content before? (digest known) ─► profile's table
//!        ─► Backend::write_rows ─► rejected / unreadable: ROLLBACK
//!                                  accepted: digest as expected? same content
//!                                  before? (digest just computed) ─► ledger row, COMMIT
//! ```

use std::io::{self, Read};

use sqlx::{
    AssertSqlSafe, ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Transaction, Type,
};
use tokio::sync::mpsc;

use super::{
    Dialect, ImportRef, LEDGER_EARLIER, LEDGER_RECORD, LoadError, LoadOutcome, Validated, create_ledger_sql,
    create_table_sql, join_validation,
};
use crate::profile::Profile;
use crate::validate::{ValidateError, ValidationReport};

/// What a tenant database engine brings to a load.
pub(super) trait Backend: Database {
    /// Its DDL.
    const DIALECT: Dialect;

    /// Whether `table` exists in the database `conn` is connected to.
    fn table_exists(conn: &mut Self::Connection, table: &str)
    -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Prepares the profile's table for its mode, then writes the rows of
    /// `reader` as validation yields them. Returns once validation has ended
    /// and the backend has nothing of its own left open in `conn` (an error
    /// abandons the transaction).
    fn write_rows<R: Read + Send + 'static>(
        conn: &mut Self::Connection,
        profile: &Profile,
        reader: R,
        import: ImportRef<'_>,
    ) -> impl Future<Output = Result<Written, LoadError>> + Send;

    /// Gives up a transaction after the database failed while rows were written.
    fn abandon(tx: Transaction<'_, Self>) -> impl Future<Output = ()> + Send;
}

/// How writing a file's rows ended.
pub(super) enum Written {
    /// The file is accepted and all its rows are in the transaction.
    Accepted {
        /// What validation found.
        report: ValidationReport,
        /// Rows written, as the ledger records them.
        rows: u64,
    },
    /// Validation rejected the file.
    Rejected(ValidationReport),
    /// The file could not be read.
    Unreadable(io::Error),
    /// The database failed while rows were written.
    Failed(sqlx::Error),
}

/// Loads `reader` in one transaction on `conn`: see the module documentation.
pub(super) async fn load_on<B, R>(
    conn: &mut B::Connection,
    profile: &Profile,
    reader: R,
    import: ImportRef<'_>,
) -> Result<LoadOutcome, LoadError>
where
    B: Backend,
    R: Read + Send + 'static,
    // What the shared ledger statements need from the driver.
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    B::Arguments: IntoArguments<B>,
    usize: ColumnIndex<B::Row>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    i64: for<'q> Encode<'q, B> + Type<B>,
    String: for<'r> Decode<'r, B> + Type<B>,
{
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(AssertSqlSafe(create_ledger_sql(B::DIALECT))).execute(&mut *tx).await?;
    // Content known in advance: a duplicate is refused before any row is written.
    if let Some(sha256) = import.sha256
        && let Some(earlier) = ledger_earlier::<B>(&mut tx, profile, sha256).await?
    {
        tx.rollback().await?;
        return Err(LoadError::AlreadyImported(earlier));
    }
    let table_created = !B::table_exists(&mut tx, profile.table()).await?;
    sqlx::raw_sql(AssertSqlSafe(create_table_sql(B::DIALECT, profile))).execute(&mut *tx).await?;

    let (report, rows) = match B::write_rows(&mut tx, profile, reader, import).await? {
        Written::Accepted { report, rows } => (report, rows),
        Written::Rejected(report) => {
            tx.rollback().await?;
            return Ok(LoadOutcome { report, rows: 0, table_created });
        }
        Written::Unreadable(e) => {
            tx.rollback().await?;
            return Err(LoadError::Io(e));
        }
        Written::Failed(e) => {
            B::abandon(tx).await;
            return Err(LoadError::from_sqlx(e));
        }
    };
    // Accepted means read whole, so digested.
    let found = report.sha256_hex().unwrap_or_default();
    let refused = match import.sha256 {
        Some(expected) if expected != found => {
            Some(LoadError::ContentChanged { expected: expected.to_owned(), found: found.clone() })
        }
        Some(_) => None,
        None => ledger_earlier::<B>(&mut tx, profile, &found).await?.map(LoadError::AlreadyImported),
    };
    if let Some(refused) = refused {
        tx.rollback().await?;
        return Err(refused);
    }
    sqlx::query(LEDGER_RECORD)
        .bind(import.id)
        .bind(profile.name())
        .bind(found.as_str())
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(LoadOutcome { report, rows, table_created })
}

/// The import that loaded `sha256` with this profile before, per the ledger.
async fn ledger_earlier<B>(
    tx: &mut Transaction<'_, B>,
    profile: &Profile,
    sha256: &str,
) -> Result<Option<String>, sqlx::Error>
where
    B: Backend,
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    B::Arguments: IntoArguments<B>,
    usize: ColumnIndex<B::Row>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    String: for<'r> Decode<'r, B> + Type<B>,
{
    sqlx::query_scalar(LEDGER_EARLIER).bind(profile.name()).bind(sha256).fetch_optional(&mut **tx).await
}

/// Once the writer has stopped (it took every batch, or the database failed
/// with `written`), waits for validation: the report of a file whose rows
/// may be kept, or how the writing ended otherwise.
pub(super) async fn settle<T>(
    batches: mpsc::Receiver<T>,
    validation: tokio::task::JoinHandle<Validated>,
    written: Result<(), sqlx::Error>,
) -> Result<ValidationReport, Written> {
    // Unblocks the validation thread if the database failed first.
    drop(batches);
    let validated = join_validation(validation).await;
    if let Err(e) = written {
        return Err(Written::Failed(e));
    }
    match validated {
        Ok(report) if report.is_accepted() => Ok(report),
        Ok(report) => Err(Written::Rejected(report)),
        Err(ValidateError::Read(e)) => Err(Written::Unreadable(e)),
        Err(ValidateError::Sink(_)) => unreachable!("batches are received until the channel closes"),
    }
}
