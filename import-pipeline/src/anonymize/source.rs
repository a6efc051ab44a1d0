//! Reading a tenant database's tables for a copy: rows as [`Cell`]s, streamed.

use std::str::FromStr as _;

use futures_util::TryStreamExt as _;
use passerelle_catalog::TenantDatabase;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ColumnIndex, Connection as _, Decode, PgConnection, Row, Type};

use super::copy::Rows;
use super::replace::Cell;
use crate::load::quote_ident;
use crate::profile::{ColumnType, Profile};

/// How a column's values are read.
#[derive(Clone, Copy)]
enum ReadAs {
    Int,
    Bool,
    Text,
}

/// The database a copy reads from, opened with the tenant's own account
/// (read-only for SQLite).
pub(super) enum Source {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Source {
    /// Connects to `database`; PostgreSQL writes dates and timestamps in ISO form from then on.
    pub(super) async fn open(database: &TenantDatabase) -> Result<Self, sqlx::Error> {
        match database.backend.as_str() {
            "postgres" => {
                let mut conn = PgConnection::connect(&database.url).await?;
                sqlx::raw_sql("SET DateStyle TO ISO, YMD").execute(&mut conn).await?;
                Ok(Self::Postgres(conn))
            }
            _ => {
                let options = SqliteConnectOptions::from_str(&database.url)?.read_only(true);
                Ok(Self::Sqlite(SqliteConnection::connect_with(&options).await?))
            }
        }
    }

    /// The tables of the database, passerelle's own (`_passerelle*`) left out.
    pub(super) async fn tables(&mut self) -> Result<Vec<String>, sqlx::Error> {
        let tables: Vec<String> =
            match self {
                Self::Sqlite(conn) => sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )
                .fetch_all(conn)
                .await?,
                Self::Postgres(conn) => sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1",
                )
                .fetch_all(conn)
                .await?,
            };
        Ok(tables.into_iter().filter(|t| !t.starts_with("_passerelle")).collect())
    }

    /// How many rows `table` has.
    pub(super) async fn count(&mut self, table: &str) -> Result<u64, sqlx::Error> {
        let sql = AssertSqlSafe(format!("SELECT count(*) FROM {}", quote_ident(table)));
        let n: i64 = match self {
            Self::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await?,
            Self::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Streams every row of the profile's table into `writer`, in declared
    /// column order then `_import_id`, `_line`.
    pub(super) async fn pump(&mut self, profile: &Profile, sink: &mut Rows<'_, '_>) -> Result<(), super::CopyError> {
        let reads = reads(profile);
        let sql = select_sql(profile, matches!(self, Self::Postgres(_)));
        match self {
            Self::Sqlite(conn) => {
                let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(conn);
                while let Some(row) = rows.try_next().await? {
                    sink.push(decode(&row, &reads)?).await?;
                }
            }
            Self::Postgres(conn) => {
                let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(conn);
                while let Some(row) = rows.try_next().await? {
                    sink.push(decode(&row, &reads)?).await?;
                }
            }
        }
        Ok(())
    }

    /// Closes the connection.
    pub(super) async fn close(self) {
        let _ = match self {
            Self::Sqlite(conn) => conn.close().await,
            Self::Postgres(conn) => conn.close().await,
        };
    }
}

fn reads(profile: &Profile) -> Vec<ReadAs> {
    let mut reads: Vec<ReadAs> = profile
        .columns()
        .iter()
        .map(|c| match c.column_type() {
            ColumnType::Integer => ReadAs::Int,
            ColumnType::Boolean => ReadAs::Bool,
            _ => ReadAs::Text,
        })
        .collect();
    reads.extend([ReadAs::Text, ReadAs::Int]);
    reads
}

/// `SELECT` of the declared columns then `_import_id`, `_line`; on
/// PostgreSQL, decimals, dates and timestamps as text (ISO forms).
fn select_sql(profile: &Profile, postgres: bool) -> String {
    let mut exprs: Vec<String> = profile
        .columns()
        .iter()
        .map(|c| {
            let name = quote_ident(c.name());
            match c.column_type() {
                ColumnType::Decimal { .. } | ColumnType::Date(_) | ColumnType::Timestamp(_) if postgres => {
                    format!("{name}::text")
                }
                ColumnType::Decimal { .. } | ColumnType::Date(_) | ColumnType::Timestamp(_) => {
                    format!("CAST({name} AS TEXT)")
                }
                _ => name,
            }
        })
        .collect();
    exprs.extend(["\"_import_id\"".to_owned(), "\"_line\"".to_owned()]);
    // Identifiers come from a checked Profile and are quoted.
    format!("SELECT {} FROM {}", exprs.join(", "), quote_ident(profile.table()))
}

fn decode<R>(row: &R, reads: &[ReadAs]) -> Result<Vec<Cell>, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    reads
        .iter()
        .enumerate()
        .map(|(i, read)| {
            Ok(match read {
                ReadAs::Int => row.try_get::<Option<i64>, _>(i)?.map_or(Cell::Null, Cell::Int),
                ReadAs::Bool => row.try_get::<Option<bool>, _>(i)?.map_or(Cell::Null, Cell::Bool),
                ReadAs::Text => row.try_get::<Option<String>, _>(i)?.map_or(Cell::Null, Cell::Text),
            })
        })
        .collect()
}
