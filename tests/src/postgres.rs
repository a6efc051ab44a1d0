//! The PostgreSQL server the tests share: reaching it with `psql`, and the
//! databases one installation creates there.
//!
//! PostgreSQL is reached at `TEST_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the test fails: PostgreSQL tests are never skipped.

use std::process::Command;

use crate::tools::Outcome;

/// The PostgreSQL server the tests use, as an administrator URL.
pub fn pg_admin_url() -> String {
    std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs SQL with `psql` against `url`; panics with psql's message on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = psql_result(url, sql);
    assert!(out.success(), "psql {sql:?} failed: {}", out.stderr);
    out.stdout
}

/// Runs SQL with `psql` against `url` and returns what happened.
pub fn psql_result(url: &str, sql: &str) -> Outcome {
    let output = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql must be installed (scripts/test installs it)");
    Outcome::from(output)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("URL with a database");
    format!("{base}/{database}")
}

/// `url` (a `postgres://` URL) with its user replaced by `user` (no password) and its database by `database`.
pub fn pg_url_as(url: &str, user: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host_and_path.split_once('/').map_or(host_and_path, |(host, _)| host);
    format!("{scheme}://{user}@{host}/{database}")
}

/// The databases and roles of one installation on the shared server: a
/// catalog database and tenant databases and roles, all named with a random
/// prefix of its own, so that tests running in parallel never meet. All of
/// them are dropped with it.
#[derive(Debug)]
pub(crate) struct PgNamespace {
    prefix: String,
    catalog_db: String,
}

impl PgNamespace {
    /// Creates the catalog database of a new namespace.
    pub(crate) fn create() -> Self {
        let admin = pg_admin_url();
        let prefix = format!("pt{:012x}_", rand::random::<u64>() & 0xffff_ffff_ffff);
        let catalog_db = format!("{prefix}catalog");
        let reach = psql_result(&admin, "SELECT 1");
        assert!(reach.success(), "PostgreSQL must be reachable at {admin} (set TEST_PG_ADMIN_URL): {}", reach.stderr);
        psql(&admin, &format!("CREATE DATABASE {catalog_db}"));
        Self { prefix, catalog_db }
    }

    /// The configuration that puts an installation's catalog and tenant
    /// databases here, as `PASSERELLE_*` environment variables.
    pub(crate) fn env(&self) -> [(String, String); 4] {
        let admin = pg_admin_url();
        [
            ("PASSERELLE_CATALOG_URL".into(), self.catalog_url()),
            ("PASSERELLE_TENANT_DB_BACKEND".into(), "postgres".into()),
            ("PASSERELLE_TENANT_DB_ADMIN_URL".into(), admin),
            ("PASSERELLE_TENANT_DB_NAME_PREFIX".into(), self.prefix.clone()),
        ]
    }

    /// The catalog database's URL.
    pub(crate) fn catalog_url(&self) -> String {
        with_database(&pg_admin_url(), &self.catalog_db)
    }

    /// The tenant database name prefix (tenant `t`'s database and role are `<prefix>t`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for PgNamespace {
    fn drop(&mut self) {
        // Leave no databases or roles behind on the shared server.
        let admin = pg_admin_url();
        let pattern = format!("{}%", self.prefix);
        let names = psql_result(&admin, &format!("SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'"));
        for name in names.stdout.lines().filter(|n| !n.is_empty()) {
            let _ = psql_result(&admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
        let roles = psql_result(&admin, &format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{pattern}'"));
        for role in roles.stdout.lines().filter(|n| !n.is_empty()) {
            let _ = psql_result(&admin, &format!("DROP ROLE IF EXISTS \"{role}\""));
        }
        let _ = psql_result(&admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.catalog_db));
    }
}
