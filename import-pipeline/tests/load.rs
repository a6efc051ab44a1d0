//! Loading files into tenant databases, on SQLite and on PostgreSQL.
//!
//! The PostgreSQL tests need a server: `TEST_PG_ADMIN_URL`, or
//! `postgres://postgres@127.0.0.1:5432/postgres` (what `scripts/test` sets
//! up). They fail, never skip, when it cannot be reached.

use std::io::{self, Cursor, Read};
use std::path::Path;

use passerelle_catalog::{TenantDatabase, TenantName};
use passerelle_import::{
    ImportRef, LoadError, LoadOutcome, Profile, Profiles, Progress, TenantDbProvisioner, committed_import, load,
    rows_with_import_id,
};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row as _, SqliteConnection};

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every column type; the table and a column are SQL keywords.
const ORDERS: &str = r#"
[[import]]
name = "orders"
match = "orders/*.csv"
table = "order"
delimiter = ";"
mode = "append"
  [[import.columns]]
  name = "id"
  type = "integer"
  required = true
  [[import.columns]]
  name = "select"
  type = "text"
  [[import.columns]]
  name = "email"
  type = "email"
  [[import.columns]]
  name = "amount"
  type = "decimal"
  decimal_separator = ","
  [[import.columns]]
  name = "day"
  type = "date"
  format = "%d/%m/%Y"
  [[import.columns]]
  name = "at"
  type = "timestamp"
  format = "%d/%m/%Y %H:%M:%S"
  [[import.columns]]
  name = "active"
  type = "boolean"
"#;

const HEADER: &str = "id;select;email;amount;day;at;active\n";

fn orders(mode: &str) -> Profile {
    let mut text = ORDERS.replace("mode = \"append\"", &format!("mode = \"{mode}\""));
    if mode == "upsert" {
        text = text.replace("mode = \"upsert\"", "mode = \"upsert\"\nkey = [\"id\"]");
    }
    Profiles::parse(&text).unwrap().iter().next().unwrap().clone()
}

fn file(text: &str) -> Cursor<Vec<u8>> {
    Cursor::new(text.as_bytes().to_vec())
}

/// `rows` good rows (ids 1..=rows), then optionally a last line with a bad date.
fn many_rows(rows: u64, bad_last_line: bool) -> Cursor<Vec<u8>> {
    let mut text = String::from(HEADER);
    for id in 1..=rows {
        text.push_str(&format!(
            "{id};name {id} with some padding text;user{id}@example.com;{id},25;01/02/2026;01/02/2026 10:11:12;yes\n"
        ));
    }
    if bad_last_line {
        text.push_str("999999;bad;bad@example.com;1,00;31/02/2026;01/02/2026 10:11:12;no\n");
    }
    Cursor::new(text.into_bytes())
}

// ------------------------------------------------------------ backends

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A provisioner for the backend; the temporary directory lives as long as the test.
fn provisioner(backend: Backend, dir: &Path) -> TenantDbProvisioner {
    match backend {
        Backend::Sqlite => TenantDbProvisioner::Sqlite { dir: dir.join("tenant-db") },
        Backend::Postgres => {
            let admin = std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.into());
            let prefix = format!("plt{}_", hex::encode(rand::random::<[u8; 4]>()));
            TenantDbProvisioner::postgres(&admin, &prefix).unwrap()
        }
    }
}

/// Provisions the named tenants, runs `body` with their databases, then
/// destroys them whether the body passed or panicked.
async fn with_tenants<F, Fut>(backend: Backend, names: &[&str], body: F)
where
    F: FnOnce(Vec<TenantDatabase>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let provisioner = provisioner(backend, dir.path());
    let mut databases = Vec::new();
    for name in names {
        let created = provisioner.create(&TenantName::parse(name).unwrap()).await;
        databases.push(
            created.unwrap_or_else(|e| panic!("provisioning {name} on {backend:?} (is PostgreSQL running?): {e}")),
        );
    }
    let result = tokio::spawn(body(databases.clone())).await;
    for database in &databases {
        provisioner.destroy(database).await.unwrap();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs a query with the tenant's own credentials; every column as text.
async fn dump(database: &TenantDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    let sql = AssertSqlSafe(sql.to_owned());
    let rows: Vec<Vec<Option<String>>> = match database.backend.as_str() {
        "postgres" => {
            let mut conn = PgConnection::connect(&database.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
        }
        _ => {
            let mut conn = SqliteConnection::connect(&database.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
        }
    };
    rows
}

/// `(_line, id, select, amount, _import_id)` of every row, by id.
async fn rows(database: &TenantDatabase) -> Vec<(String, String, Option<String>, Option<String>, String)> {
    dump(
        database,
        "SELECT CAST(\"_line\" AS TEXT), CAST(\"id\" AS TEXT), \"select\", CAST(\"amount\" AS TEXT), \"_import_id\" \
         FROM \"order\" ORDER BY \"id\", \"_import_id\"",
    )
    .await
    .into_iter()
    .map(|mut r| {
        let import_id = r.pop().unwrap().unwrap();
        let amount = r.pop().unwrap();
        let select = r.pop().unwrap();
        let id = r.pop().unwrap().unwrap();
        let line = r.pop().unwrap().unwrap();
        (line, id, select, amount, import_id)
    })
    .collect()
}

async fn table_exists(database: &TenantDatabase) -> bool {
    let sql = match database.backend.as_str() {
        "postgres" => "SELECT tablename::text FROM pg_tables WHERE tablename = 'order'",
        _ => "SELECT name FROM sqlite_master WHERE name = 'order'",
    };
    !dump(database, sql).await.is_empty()
}

fn row(
    line: u64,
    id: i64,
    select: Option<&str>,
    amount: Option<&str>,
    import_id: &str,
) -> (String, String, Option<String>, Option<String>, String) {
    (line.to_string(), id.to_string(), select.map(str::to_owned), amount.map(str::to_owned), import_id.to_owned())
}

/// An import whose content digest the load computes.
fn job(id: &str) -> ImportRef<'_> {
    ImportRef::new(id)
}

fn imported(outcome: Result<LoadOutcome, LoadError>) -> LoadOutcome {
    let outcome = outcome.unwrap();
    assert!(outcome.is_imported(), "rejected: {:?}", outcome.report.errors);
    outcome
}

// ------------------------------------------------------------ append

async fn append_loads_exact_rows_with_their_lines(backend: Backend) {
    with_tenants(backend, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let profile = orders("append");
        // A blank line and a quoted value over two lines: `_line` is the
        // line each record starts on. Tabs, backslashes and `\N` are data.
        let text = format!(
            "{HEADER}1;plain;a@example.com;1,50;31/12/2026;31/12/2026 23:59:58;true\n\n\
             2;\"two\nlines\";;;;;\n3;tab\there \\N back\\slash;;-0,25;;;no\n"
        );
        let outcome = imported(load(db, &profile, file(&text), job("job-1")).await);
        assert_eq!(outcome.rows, 3);
        assert!(outcome.table_created);
        assert_eq!(outcome.report.delivered, 3);
        assert_eq!(
            rows(db).await,
            [
                row(2, 1, Some("plain"), Some("1.50"), "job-1"),
                row(4, 2, Some("two\nlines"), None, "job-1"),
                row(6, 3, Some("tab\there \\N back\\slash"), Some("-0.25"), "job-1"),
            ]
        );

        // A second file is added to the first.
        let outcome = imported(load(db, &profile, file(&format!("{HEADER}1;again;;;;;\n")), job("job-2")).await);
        assert_eq!(outcome.rows, 1);
        assert!(!outcome.table_created);
        assert_eq!(rows(db).await.len(), 4);
        assert_eq!(rows_with_import_id(db, &profile, "job-1").await.unwrap(), 3);
        assert_eq!(rows_with_import_id(db, &profile, "job-2").await.unwrap(), 1);
        assert_eq!(rows_with_import_id(db, &profile, "job-3").await.unwrap(), 0);

        // The ledger knows what committed, and refuses the same content
        // twice: found by the load's own digest before its commit, or before
        // any row when the digest is known in advance.
        assert_eq!(committed_import(db, "job-1").await.unwrap(), Some(3));
        assert_eq!(committed_import(db, "job-3").await.unwrap(), None);
        let digest = sha256_hex(&text);
        for known in [None, Some(digest.as_str())] {
            let again = ImportRef { id: "job-3", sha256: known, progress: None };
            match load(db, &profile, file(&text), again).await {
                Err(LoadError::AlreadyImported(earlier)) => assert_eq!(earlier, "job-1"),
                other => panic!("expected AlreadyImported, got {other:?}"),
            }
            assert_eq!(rows(db).await.len(), 4, "a refused duplicate writes nothing");
            assert_eq!(committed_import(db, "job-3").await.unwrap(), None);
        }

        // Content that is not what its digest says is refused, nothing committed.
        let other = format!("{HEADER}9;other;;;;;\n");
        let elsewhere = sha256_hex("some other content");
        let wrong = ImportRef { id: "job-4", sha256: Some(&elsewhere), progress: None };
        match load(db, &profile, file(&other), wrong).await {
            Err(LoadError::ContentChanged { expected, found }) => {
                assert_eq!((expected, found), (elsewhere.clone(), sha256_hex(&other)));
            }
            other => panic!("expected ContentChanged, got {other:?}"),
        }
        assert_eq!(rows(db).await.len(), 4);
        assert_eq!(committed_import(db, "job-4").await.unwrap(), None);

        // Progress counts every row and byte of the file.
        let progress = Progress::new();
        let third = format!("{HEADER}7;seven;;;;;\n8;eight;;;;;\n");
        let watched = ImportRef { id: "job-5", sha256: None, progress: Some(&progress) };
        assert_eq!(imported(load(db, &profile, file(&third), watched).await).rows, 2);
        assert_eq!((progress.rows(), progress.bytes()), (2, third.len() as u64));
    })
    .await;
}

#[tokio::test]
async fn sqlite_append_loads_exact_rows_with_their_lines() {
    append_loads_exact_rows_with_their_lines(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_append_loads_exact_rows_with_their_lines() {
    append_loads_exact_rows_with_their_lines(Backend::Postgres).await;
}

// ------------------------------------------------------------ upsert

async fn upsert_updates_existing_keys(backend: Backend) {
    with_tenants(backend, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let profile = orders("upsert");
        let first = format!("{HEADER}1;one;;1,00;;;\n2;two;;2,00;;;\n");
        assert_eq!(imported(load(db, &profile, file(&first), job("job-1")).await).rows, 2);
        let second = format!("{HEADER}2;TWO;;20,00;;;\n3;three;;;;;\n");
        assert_eq!(imported(load(db, &profile, file(&second), job("job-2")).await).rows, 2);
        assert_eq!(
            rows(db).await,
            [
                row(2, 1, Some("one"), Some("1.00"), "job-1"),
                row(2, 2, Some("TWO"), Some("20.00"), "job-2"),
                row(3, 3, Some("three"), None, "job-2"),
            ]
        );
        assert_eq!(rows_with_import_id(db, &profile, "job-1").await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn sqlite_upsert_updates_existing_keys() {
    upsert_updates_existing_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_upsert_updates_existing_keys() {
    upsert_updates_existing_keys(Backend::Postgres).await;
}

// ------------------------------------------------------------ replace

async fn replace_replaces_and_a_rejected_file_keeps_the_old_rows(backend: Backend) {
    with_tenants(backend, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let profile = orders("replace");
        let first = format!("{HEADER}1;one;;;;;\n2;two;;;;;\n3;three;;;;;\n");
        assert_eq!(imported(load(db, &profile, file(&first), job("job-1")).await).rows, 3);
        let second = format!("{HEADER}7;seven;;;;;\n");
        assert_eq!(imported(load(db, &profile, file(&second), job("job-2")).await).rows, 1);
        assert_eq!(rows(db).await, [row(2, 7, Some("seven"), None, "job-2")]);

        // The table was emptied inside the transaction; a rejected file
        // rolls that back too.
        let outcome = load(db, &profile, many_rows(20_000, true), job("job-3")).await.unwrap();
        assert!(!outcome.is_imported());
        assert_eq!(outcome.rows, 0);
        assert_eq!(outcome.report.delivered, 20_000);
        assert_eq!(rows(db).await, [row(2, 7, Some("seven"), None, "job-2")]);
    })
    .await;
}

#[tokio::test]
async fn sqlite_replace_replaces_and_a_rejected_file_keeps_the_old_rows() {
    replace_replaces_and_a_rejected_file_keeps_the_old_rows(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_replace_replaces_and_a_rejected_file_keeps_the_old_rows() {
    replace_replaces_and_a_rejected_file_keeps_the_old_rows(Backend::Postgres).await;
}

// ------------------------------------------------------------ all or nothing

async fn a_bad_last_line_loads_zero_rows(backend: Backend) {
    with_tenants(backend, &["acme"], |dbs| async move {
        let db = &dbs[0];
        for mode in ["append", "upsert"] {
            let profile = orders(mode);
            // 20,000 rows (~1.5 MB, many batches) reach the database before
            // the last line is found bad.
            let outcome = load(db, &profile, many_rows(20_000, true), job("job-bad")).await.unwrap();
            assert!(!outcome.is_imported(), "{mode}");
            assert_eq!(outcome.rows, 0);
            assert_eq!(outcome.report.delivered, 20_000, "rows were streamed before the verdict");
            assert_eq!(outcome.report.errors.len(), 1);
            assert_eq!(outcome.report.errors[0].line, Some(20_002));
            assert_eq!(outcome.report.errors[0].column.as_deref(), Some("day"));
            // Even the table created by this load is gone.
            assert!(outcome.table_created);
            assert!(!table_exists(db).await, "{mode}");
            assert_eq!(rows_with_import_id(db, &profile, "job-bad").await.unwrap(), 0);
        }
        // The same rows without the bad line load whole.
        let outcome = imported(load(db, &orders("append"), many_rows(20_000, false), job("job-good")).await);
        assert_eq!(outcome.rows, 20_000);
        assert_eq!(rows(db).await.len(), 20_000);
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_bad_last_line_loads_zero_rows() {
    a_bad_last_line_loads_zero_rows(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_bad_last_line_loads_zero_rows() {
    a_bad_last_line_loads_zero_rows(Backend::Postgres).await;
}

/// Yields `good` bytes, then fails.
struct FailingReader {
    good: Cursor<Vec<u8>>,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.good.read(buf)? {
            0 => Err(io::Error::other("disk on fire")),
            n => Ok(n),
        }
    }
}

async fn a_read_error_is_io_and_loads_nothing(backend: Backend) {
    with_tenants(backend, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let reader = FailingReader { good: many_rows(20_000, false) };
        match load(db, &orders("append"), reader, job("job-io")).await {
            Err(e @ LoadError::Io(_)) => assert!(e.is_retryable()),
            other => panic!("expected LoadError::Io, got {other:?}"),
        }
        assert!(!table_exists(db).await);
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_read_error_is_io_and_loads_nothing() {
    a_read_error_is_io_and_loads_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_read_error_is_io_and_loads_nothing() {
    a_read_error_is_io_and_loads_nothing(Backend::Postgres).await;
}

// ------------------------------------------------------------ types

#[tokio::test]
async fn postgres_values_land_with_their_sql_types() {
    with_tenants(Backend::Postgres, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let text = format!("{HEADER}1;x;a@example.com;-1234,5600;29/02/2028;31/12/2026 23:59:58;YES\n2;;;;;;0\n");
        imported(load(db, &orders("append"), file(&text), job("job-1")).await);
        let types = dump(
            db,
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_name = 'order' ORDER BY ordinal_position",
        )
        .await;
        let expected = [
            ("id", "bigint", "YES"),
            ("select", "text", "YES"),
            ("email", "text", "YES"),
            ("amount", "numeric", "YES"),
            ("day", "date", "YES"),
            ("at", "timestamp without time zone", "YES"),
            ("active", "boolean", "YES"),
            ("_import_id", "text", "NO"),
            ("_line", "bigint", "NO"),
        ];
        let expected: Vec<Vec<Option<String>>> = expected
            .iter()
            .map(|(a, b, c)| vec![Some(a.to_string()), Some(b.to_string()), Some(c.to_string())])
            .collect();
        assert_eq!(types, expected);
        // Typed comparisons, not text: the values are numbers, dates, booleans.
        let checks = dump(
            db,
            "SELECT CAST(\"amount\" = -1234.56 AS TEXT), CAST(\"day\" = DATE '2028-02-29' AS TEXT), \
             CAST(\"at\" = TIMESTAMP '2026-12-31 23:59:58' AS TEXT), CAST(\"active\" AS TEXT), \
             CAST(\"amount\" AS TEXT), CAST(\"id\" + 1 AS TEXT) FROM \"order\" ORDER BY \"id\"",
        )
        .await;
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            checks,
            [
                vec![some("true"), some("true"), some("true"), some("true"), some("-1234.5600"), some("2")],
                vec![None, None, None, some("false"), None, some("3")],
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn sqlite_values_land_with_their_storage_classes() {
    with_tenants(Backend::Sqlite, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let text = format!("{HEADER}1;x;a@example.com;-1234,5600;29/02/2028;31/12/2026 23:59:58;YES\n");
        imported(load(db, &orders("append"), file(&text), job("job-1")).await);
        let got = dump(
            db,
            "SELECT typeof(\"id\"), typeof(\"amount\"), \"amount\", \"day\", \"at\", typeof(\"active\"), \
             CAST(\"active\" AS TEXT), typeof(\"_line\") FROM \"order\"",
        )
        .await;
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            got,
            [vec![
                some("integer"),
                some("text"),
                some("-1234.5600"),
                some("2028-02-29"),
                some("2026-12-31 23:59:58"),
                some("integer"),
                some("1"),
                some("integer"),
            ]]
        );
    })
    .await;
}

// ------------------------------------------------------------ SQLite batches

/// Rows of the orders profile in one SQLite `INSERT` (9 bound values a row:
/// 32766 / 9 is more than the loader's cap of 1024 rows).
const SQLITE_BATCH_ROWS: u64 = 1024;

/// `rows` good rows (ids 1..=rows) except a bad date on the row with id `bad`, if any.
fn rows_with_a_bad_one(rows: u64, bad: Option<u64>) -> Cursor<Vec<u8>> {
    let mut text = String::from(HEADER);
    for id in 1..=rows {
        let day = if Some(id) == bad { "31/02/2026" } else { "01/02/2026" };
        text.push_str(&format!("{id};name {id};user{id}@example.com;{id},25;{day};01/02/2026 10:11:12;yes\n"));
    }
    Cursor::new(text.into_bytes())
}

#[tokio::test]
async fn sqlite_batch_boundaries_keep_every_row_and_a_bad_row_in_a_later_batch_loads_nothing() {
    with_tenants(Backend::Sqlite, &["acme"], |dbs| async move {
        let db = &dbs[0];
        let profile = orders("append");
        // Two full batches and a partial one.
        let total = 2 * SQLITE_BATCH_ROWS + 452;
        // The bad row is in the third batch, after two full INSERTs reached the database.
        let bad = 2 * SQLITE_BATCH_ROWS + 100;
        let outcome = load(db, &profile, rows_with_a_bad_one(total, Some(bad)), job("job-bad")).await.unwrap();
        assert!(!outcome.is_imported());
        assert_eq!(outcome.rows, 0);
        assert_eq!(outcome.report.errors.len(), 1);
        assert_eq!(outcome.report.errors[0].line, Some(bad + 1));
        assert!(outcome.table_created);
        assert!(!table_exists(db).await, "the rows of the first batches were rolled back with the table");
        assert_eq!(committed_import(db, "job-bad").await.unwrap(), None);

        let outcome = imported(load(db, &profile, rows_with_a_bad_one(total, None), job("job-good")).await);
        assert_eq!(outcome.rows, total);
        assert_eq!(committed_import(db, "job-good").await.unwrap(), Some(total));
        let loaded = rows(db).await;
        assert_eq!(loaded.len(), usize::try_from(total).unwrap());
        // Every row once, in its place, with its own line, across the batch boundaries.
        for (i, (line, id, select, _, import_id)) in loaded.iter().enumerate() {
            let id_expected = i as u64 + 1;
            assert_eq!(id, &id_expected.to_string());
            assert_eq!(line, &(id_expected + 1).to_string());
            assert_eq!(select.as_deref(), Some(format!("name {id_expected}").as_str()));
            assert_eq!(import_id, "job-good");
        }
    })
    .await;
}

// ------------------------------------------------------------ isolation

#[tokio::test]
async fn postgres_a_tenant_cannot_reach_another_tenants_database() {
    with_tenants(Backend::Postgres, &["tenant-a", "tenant-b"], |dbs| async move {
        let (a, b) = (&dbs[0], &dbs[1]);
        let profile = orders("append");
        imported(load(a, &profile, file(&format!("{HEADER}1;secret;;;;;\n")), job("job-a")).await);

        // B's own credentials pointed at A's database: refused by the server.
        let mut forged_url = url::Url::parse(&b.url).unwrap();
        forged_url.set_path(&format!("/{}", a.name));
        match PgConnection::connect(forged_url.as_str()).await {
            Err(sqlx::Error::Database(e)) => {
                assert_eq!(e.code().as_deref(), Some("42501"), "{e}");
                assert!(e.message().contains("permission denied"), "{e}");
            }
            Err(e) => panic!("expected permission denied, got {e}"),
            Ok(_) => panic!("tenant B's role opened tenant A's database"),
        }
        // And so is a load with such a forged TenantDatabase: a refusal, not "retry later".
        let forged = TenantDatabase {
            backend: "postgres".into(),
            name: a.name.clone(),
            role: b.role.clone(),
            url: forged_url.into(),
            sealed_password: None,
        };
        match load(&forged, &profile, file(&format!("{HEADER}2;intruder;;;;;\n")), job("job-b")).await {
            Err(e @ LoadError::Database(_)) => assert!(!e.is_retryable()),
            other => panic!("expected LoadError::Database, got {other:?}"),
        }
        assert_eq!(rows(a).await, [row(2, 1, Some("secret"), None, "job-a")]);
        // B's own load lands in B's database only.
        imported(load(b, &profile, file(&format!("{HEADER}9;b;;;;;\n")), job("job-b")).await);
        assert_eq!(rows(b).await, [row(2, 9, Some("b"), None, "job-b")]);
        assert_eq!(rows(a).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_tenant_cannot_reach_another_tenants_database() {
    with_tenants(Backend::Sqlite, &["tenant-a", "tenant-b"], |dbs| async move {
        let (a, b) = (&dbs[0], &dbs[1]);
        let profile = orders("append");
        imported(load(a, &profile, file(&format!("{HEADER}1;secret;;;;;\n")), job("job-a")).await);
        // Distinct files; B's URL names B's file only, and opens nothing else.
        assert_ne!(a.name, b.name);
        assert_ne!(std::fs::canonicalize(&a.name).unwrap(), std::fs::canonicalize(&b.name).unwrap());
        assert!(b.url.ends_with(&b.name) && !b.url.contains(&a.name));
        assert!(!table_exists(b).await);
        assert_eq!(rows_with_import_id(b, &profile, "job-a").await.unwrap(), 0);
        imported(load(b, &profile, file(&format!("{HEADER}9;b;;;;;\n")), job("job-b")).await);
        assert_eq!(rows(a).await, [row(2, 1, Some("secret"), None, "job-a")]);
        assert_eq!(rows(b).await, [row(2, 9, Some("b"), None, "job-b")]);
        // A load never creates a database file: a URL to a missing file is refused.
        let missing = TenantDatabase {
            backend: "sqlite".into(),
            name: format!("{}-missing", b.name),
            role: None,
            url: format!("{}-missing", b.url),
            sealed_password: None,
        };
        match load(&missing, &profile, file(&format!("{HEADER}1;x;;;;;\n")), job("job-x")).await {
            Err(LoadError::Database(_)) => {}
            other => panic!("expected LoadError::Database, got {other:?}"),
        }
        assert!(!Path::new(&missing.name).exists());
    })
    .await;
}

// ------------------------------------------------------------ availability

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Nothing listens on port 1.
    let database = TenantDatabase {
        backend: "postgres".into(),
        name: "nobody".into(),
        role: Some("nobody".into()),
        url: "postgres://nobody:secret@127.0.0.1:1/nobody".into(),
        sealed_password: None,
    };
    match load(&database, &orders("append"), file(HEADER), job("job")).await {
        Err(e @ LoadError::Unavailable(_)) => {
            assert!(e.is_retryable());
            assert!(!e.to_string().contains("secret"));
        }
        other => panic!("expected LoadError::Unavailable, got {other:?}"),
    }
    let unknown = TenantDatabase { backend: "mysql".into(), ..database };
    assert!(matches!(
        load(&unknown, &orders("append"), file(HEADER), job("job")).await,
        Err(LoadError::UnsupportedBackend(_))
    ));
}

/// SHA-256 of `text`, lower-case hex, as a load computes it.
fn sha256_hex(text: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()))
}
