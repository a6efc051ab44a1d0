//! Writing a copy: the target tenant database or a new SQLite file, in one
//! transaction; rows in batches (`COPY` text format on PostgreSQL, multi-row
//! `INSERT`s on SQLite).

use std::fmt::Write as _;
use std::str::FromStr as _;

use passerelle_catalog::TenantDatabase;
use sqlx::postgres::PgCopyIn;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::replace::Cell;
use crate::load::{Dialect, column_list, create_table_sql, quote_ident};
use crate::profile::Profile;

/// Bytes of `COPY` data sent at once.
const COPY_CHUNK: usize = 1 << 20;
/// Most rows of one SQLite `INSERT` (and fewer when the columns are many:
/// SQLite binds at most 32766 values per statement).
const ROWS_PER_INSERT: usize = 500;
const MAX_BOUND_PARAMETERS: usize = 32_766;

/// The database a copy writes, inside one transaction until [`Target::commit`].
pub(super) enum Target {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Target {
    /// Connects to a tenant database with its own account and begins the transaction.
    pub(super) async fn open(database: &TenantDatabase) -> Result<Self, sqlx::Error> {
        let mut target = match database.backend.as_str() {
            "postgres" => Self::Postgres(PgConnection::connect(&database.url).await?),
            _ => Self::Sqlite(SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&database.url)?).await?),
        };
        target.execute("BEGIN").await?;
        Ok(target)
    }

    /// Opens an existing, empty SQLite file and begins the transaction. It
    /// keeps a rollback journal: once the copy is closed it is one file, with
    /// no `-wal` or `-shm` beside it.
    pub(super) async fn open_file(path: &std::path::Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new().filename(path).journal_mode(SqliteJournalMode::Delete);
        let mut target = Self::Sqlite(SqliteConnection::connect_with(&options).await?);
        target.execute("BEGIN").await?;
        Ok(target)
    }

    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Self::Sqlite(conn) => sqlx::raw_sql(sql).execute(conn).await.map(drop),
            Self::Postgres(conn) => sqlx::raw_sql(sql).execute(conn).await.map(drop),
        }
    }

    /// Drops the profile's table if it exists and creates it again from the
    /// profile, as the import pipeline would.
    pub(super) async fn recreate(&mut self, profile: &Profile) -> Result<(), sqlx::Error> {
        let dialect = match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        };
        self.execute(&format!("DROP TABLE IF EXISTS {}", quote_ident(profile.table()))).await?;
        self.execute(&create_table_sql(dialect, profile)).await
    }

    /// A writer of the profile's table rows.
    pub(super) async fn writer<'c>(&'c mut self, profile: &Profile) -> Result<Writer<'c>, sqlx::Error> {
        let columns = column_list(profile);
        let table = quote_ident(profile.table());
        Ok(match self {
            Self::Postgres(conn) => {
                let copy = conn.copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT text)")).await?;
                Writer::Postgres { copy, buffer: Vec::with_capacity(COPY_CHUNK + 4096) }
            }
            Self::Sqlite(conn) => {
                let per_row = profile.columns().len() + 2;
                let size = (MAX_BOUND_PARAMETERS / per_row).clamp(1, ROWS_PER_INSERT);
                Writer::Sqlite { conn, table, columns, per_row, size, rows: Vec::with_capacity(size) }
            }
        })
    }

    /// Commits everything the copy wrote.
    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.execute("COMMIT").await?;
        let _ = match self {
            Self::Sqlite(conn) => conn.close().await,
            Self::Postgres(conn) => conn.close().await,
        };
        Ok(())
    }
}

/// Rows on their way into one table.
pub(super) enum Writer<'c> {
    Postgres {
        copy: PgCopyIn<&'c mut PgConnection>,
        buffer: Vec<u8>,
    },
    Sqlite {
        conn: &'c mut SqliteConnection,
        table: String,
        columns: String,
        per_row: usize,
        size: usize,
        rows: Vec<Vec<Cell>>,
    },
}

impl Writer<'_> {
    /// Adds a row (declared columns, `_import_id`, `_line`).
    pub(super) async fn push(&mut self, row: Vec<Cell>) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres { copy, buffer } => {
                encode_copy_text(&row, buffer);
                if buffer.len() >= COPY_CHUNK {
                    copy.send(std::mem::take(buffer)).await?;
                    buffer.reserve(COPY_CHUNK + 4096);
                }
            }
            Self::Sqlite { rows, size, .. } => {
                rows.push(row);
                if rows.len() >= *size {
                    self.flush_sqlite().await?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is left and ends the table.
    pub(super) async fn finish(mut self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres { mut copy, buffer } => {
                if !buffer.is_empty() {
                    copy.send(buffer).await?;
                }
                copy.finish().await?;
            }
            Self::Sqlite { .. } => self.flush_sqlite().await?,
        }
        Ok(())
    }

    async fn flush_sqlite(&mut self) -> Result<(), sqlx::Error> {
        let Self::Sqlite { conn, table, columns, per_row, rows, .. } = self else { return Ok(()) };
        if rows.is_empty() {
            return Ok(());
        }
        let one = format!("({})", vec!["?"; *per_row].join(", "));
        // Identifiers come from a checked Profile and are quoted; values are bound.
        let sql = format!("INSERT INTO {table} ({columns}) VALUES {}", vec![one; rows.len()].join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for cell in rows.drain(..).flatten() {
            query = match cell {
                Cell::Null => query.bind(None::<i64>),
                Cell::Int(n) => query.bind(n),
                Cell::Bool(b) => query.bind(b),
                Cell::Text(text) => query.bind(text),
            };
        }
        query.execute(&mut **conn).await?;
        Ok(())
    }
}

/// One row in `COPY` text format: tab-separated, `\N` for NULL, backslash,
/// tab and line ends escaped.
fn encode_copy_text(row: &[Cell], out: &mut Vec<u8>) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Null => out.extend_from_slice(b"\\N"),
            Cell::Int(n) => {
                let mut text = String::new();
                let _ = write!(text, "{n}");
                out.extend_from_slice(text.as_bytes());
            }
            Cell::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Cell::Text(text) => {
                for byte in text.bytes() {
                    match byte {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        other => out.push(other),
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_end_a_field() {
        let mut out = Vec::new();
        let row = [Cell::Text("a\tb\\c\nd".into()), Cell::Null, Cell::Int(-3), Cell::Bool(true)];
        encode_copy_text(&row, &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\t\\N\t-3\tt\n");
    }
}
