//! PostgreSQL copies with `pg_dump -Fc` and restores with `pg_restore`. A dump is taken inside a
//! repeatable-read transaction whose snapshot `pg_dump --snapshot` shares, so the row counts written
//! in the manifest are exactly those of the dump. Connection settings and the password reach the
//! tools through `PG*` environment variables, never their command line.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use percent_encoding::percent_decode_str;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tokio::process::Command;
use url::Url;

use super::BackupError;

/// A PostgreSQL database reached with a URL that may hold a password. Never printed whole.
pub(super) struct PgDatabase {
    url: Url,
}

fn pg_error(what: &str, e: &sqlx::Error) -> BackupError {
    BackupError::Database(format!("{what}: {e}"))
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgDatabase {
    /// The database of `url` (`postgres://` or `postgresql://`).
    pub(super) fn parse(url: &str) -> Result<Self, BackupError> {
        let url = Url::parse(url).map_err(|e| BackupError::Invalid(format!("database URL: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(BackupError::Invalid("database URL: not a postgres:// URL".into()));
        }
        Ok(Self { url })
    }

    /// The database's name (the URL's path).
    pub(super) fn name(&self) -> String {
        percent_decode_str(self.url.path().trim_start_matches('/')).decode_utf8_lossy().into_owned()
    }

    /// The role the URL logs in as.
    pub(super) fn user(&self) -> String {
        percent_decode_str(self.url.username()).decode_utf8_lossy().into_owned()
    }

    /// The same server and account, database `name`.
    pub(super) fn with_name(&self, name: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        Self { url }
    }

    async fn connect(&self) -> Result<PgConnection, BackupError> {
        PgConnection::connect(self.url.as_str()).await.map_err(|e| pg_error(&format!("database {}", self.name()), &e))
    }

    /// A `pg_dump`/`pg_restore` command reaching this database through `PG*` variables.
    fn tool(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        if let Some(host) = self.url.host_str() {
            command.env("PGHOST", host.trim_start_matches('[').trim_end_matches(']'));
        }
        if let Some(port) = self.url.port() {
            command.env("PGPORT", port.to_string());
        }
        if !self.url.username().is_empty() {
            command.env("PGUSER", self.user());
        }
        match self.url.password() {
            Some(password) => command.env("PGPASSWORD", decode(password)),
            None => command.env_remove("PGPASSWORD"),
        };
        command.env("PGDATABASE", self.name());
        for (key, value) in self.url.query_pairs() {
            let variable = match key.as_ref() {
                "host" => "PGHOST",
                "port" => "PGPORT",
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "connect_timeout" => "PGCONNECT_TIMEOUT",
                "application_name" => "PGAPPNAME",
                _ => continue,
            };
            command.env(variable, value.as_ref());
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    /// Dumps the database into `file` (`pg_dump -Fc`); returns the rows of each table in the dump.
    pub(super) async fn dump(&self, file: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
        let what = format!("database {}", self.name());
        let mut connection = self.connect().await?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut connection)
            .await
            .map_err(|e| pg_error(&what, &e))?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut connection)
            .await
            .map_err(|e| pg_error(&what, &e))?;
        let rows = count_rows(&mut connection, &what).await?;
        let output = self
            .tool("pg_dump")
            .arg("--format=custom")
            .arg(format!("--snapshot={snapshot}"))
            .arg("--file")
            .arg(file)
            .output()
            .await
            .map_err(|source| BackupError::Spawn { program: "pg_dump", source })?;
        // Read-only: nothing to commit, only the snapshot to let go.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut connection).await;
        let _ = connection.close().await;
        if !output.status.success() {
            return Err(BackupError::Tool {
                what: format!("pg_dump of {what}"),
                message: super::restic::tail(&output.stderr),
            });
        }
        Ok(rows)
    }

    /// Restores the dump `file` into this (existing, empty) database, its objects owned by the role
    /// of the URL.
    pub(super) async fn restore(&self, file: &Path) -> Result<(), BackupError> {
        let output = self
            .tool("pg_restore")
            .args(["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", "--dbname"])
            .arg(self.name())
            .arg(file)
            .output()
            .await
            .map_err(|source| BackupError::Spawn { program: "pg_restore", source })?;
        if !output.status.success() {
            return Err(BackupError::Tool {
                what: format!("pg_restore into database {}", self.name()),
                message: super::restic::tail(&output.stderr),
            });
        }
        Ok(())
    }

    /// Rows of each table of this database.
    pub(super) async fn row_counts(&self) -> Result<BTreeMap<String, u64>, BackupError> {
        let mut connection = self.connect().await?;
        let rows = count_rows(&mut connection, &format!("database {}", self.name())).await;
        let _ = connection.close().await;
        rows
    }

    /// Whether database `name` exists on this server.
    pub(super) async fn database_exists(&self, name: &str) -> Result<bool, BackupError> {
        let mut connection = self.connect().await?;
        let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut connection)
            .await
            .map_err(|e| pg_error("pg_database", &e));
        let _ = connection.close().await;
        exists
    }

    /// Creates database `name` owned by `owner` (through this administrator's connection).
    pub(super) async fn create_database(&self, name: &str, owner: &str) -> Result<(), BackupError> {
        let statement = format!("CREATE DATABASE {} OWNER {}", quoted(name), quoted(owner));
        self.execute(statement, name).await
    }

    /// Drops database `name` if it exists, ending its sessions.
    pub(super) async fn drop_database(&self, name: &str) -> Result<(), BackupError> {
        self.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name)), name).await
    }

    async fn execute(&self, statement: String, name: &str) -> Result<(), BackupError> {
        let mut connection = self.connect().await?;
        // DDL takes no parameters: `name` and the owner are quoted identifiers.
        let done = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut connection).await;
        let _ = connection.close().await;
        done.map(drop).map_err(|e| pg_error(&format!("database {name}"), &e))
    }
}

/// Rows of each user table visible on `connection`, as `schema.table`.
async fn count_rows(connection: &mut PgConnection, what: &str) -> Result<BTreeMap<String, u64>, BackupError> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| pg_error(what, &e))?;
    let mut rows = BTreeMap::new();
    for (schema, table) in tables {
        // Names read from pg_tables, quoted as identifiers.
        let sql = format!("SELECT count(*) FROM {}.{}", quoted(&schema), quoted(&table));
        let count: i64 =
            sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *connection).await.map_err(|e| pg_error(what, &e))?;
        rows.insert(format!("{schema}.{table}"), u64::try_from(count).unwrap_or(0));
    }
    Ok(rows)
}
