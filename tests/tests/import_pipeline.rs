//! The import pipeline end to end: a CSV uploaded over SFTP becomes rows in
//! its tenant's own database (SQLite and PostgreSQL) and a receipt in
//! `/outbox`; the same content twice is a duplicate; bad files get precise
//! receipts and load nothing; files placed by other means are taken too;
//! one tenant's files never reach another tenant's database.

use std::path::Path;

use passerelle_tests::{Fixture, Passerelle, Setup, psql, sqlite3, with_database};
use serde_json::Value;

/// The demo tenant's profile (`serve --demo`): employees/*.csv, upsert by
/// employee_id, `;`/`,` detected, dates %d/%m/%Y, decimals with `,`.
const PROFILE: &str = passerelle_tests::DEMO_PROFILE;

/// The users log in with their keys.
const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

const GOOD: &str = "employee_id;email;hired_on;salary\n\
                    1;ada@example.com;10/12/2025;4200,50\n\
                    2;grace@example.com;09/12/2025;3900\n\
                    3;;01/01/2026;\n";

/// A running server whose tenants have the demo profile and an `employees` inbox directory.
fn installation(p: Passerelle, tenants: &[(&str, &str)]) -> Fixture {
    let mut setup = Setup::on(p);
    for (tenant, login) in tenants {
        setup = setup.user(tenant, login, PASSWORD).profile(tenant, PROFILE).inbox_dirs(tenant, &["employees"]);
    }
    setup.serve()
}

fn sqlite_rows(p: &Passerelle, tenant: &str) -> String {
    sqlite3(
        &p.layout().tenant_db(tenant),
        "SELECT employee_id, email, hired_on, salary FROM employees ORDER BY employee_id",
    )
}

fn files_under(dir: &Path) -> Vec<String> {
    passerelle_tests::tree(dir).iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn an_sftp_upload_becomes_rows_and_a_receipt_on_sqlite() {
    let app = installation(Passerelle::new(), &[("acme", "alice"), ("globex", "gina")]);
    app.upload("alice", "employees/2026-11.csv", GOOD.as_bytes());
    let receipt = app.receipt("alice", "employees/2026-11.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["file"], "employees/2026-11.csv");
    assert_eq!(receipt["profile"], "employees");
    assert_eq!(receipt["rows"], 3);
    assert_eq!(receipt["errors"], serde_json::json!([]));
    assert_eq!(receipt["sha256"].as_str().unwrap().len(), 64);
    let import_id = receipt["import_id"].as_str().unwrap().to_owned();
    assert_eq!(
        sqlite_rows(&app.p, "acme"),
        "1|ada@example.com|2025-12-10|4200.50\n2|grace@example.com|2025-12-09|3900\n3||2026-01-01|\n"
    );
    // The original left the inbox for the archive (outside every tenant tree).
    assert_eq!(files_under(&app.inbox("acme")), ["employees"]);
    assert_eq!(app.p.archived_original("acme", &import_id), GOOD.as_bytes());

    // The same content again: a duplicate, nothing loaded twice.
    app.upload("alice", "employees/again.csv", GOOD.as_bytes());
    let receipt = app.receipt("alice", "employees/again.csv");
    assert_eq!(receipt["status"], "duplicate", "{receipt}");
    assert_eq!(receipt["duplicate_of"], import_id.as_str());
    assert_eq!(receipt["rows"], 0);
    assert_eq!(sqlite_rows(&app.p, "acme").lines().count(), 3);

    // Another tenant's database never saw any of it.
    let globex = app.p.layout().tenant_db("globex");
    assert_eq!(sqlite3(&globex, "SELECT count(*) FROM sqlite_master WHERE name = 'employees'"), "0\n");

    let jobs = app.jobs();
    let statuses: Vec<&str> = jobs.iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["imported", "duplicate"]);
    let shown = app.p.ok(&["import", "show", &import_id]);
    assert!(shown.contains("imported"), "{shown}");
    // Every transition is in the audit trail.
    let audit = app.p.ok(&["audit", "--tenant", "acme", "--json"]);
    let outcomes: Vec<String> = serde_json::from_str::<Value>(&audit)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "import" && e["detail"].as_str().unwrap_or("").starts_with(&format!("job {import_id}"))
        })
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["received", "loading", "imported"], "validation and load are one pass");
    drop(app.server);
}

#[test]
fn an_sftp_upload_becomes_rows_in_the_tenants_postgresql_database() {
    let p = Passerelle::with_postgres();
    let prefix = p.pg_prefix().unwrap();
    let app = installation(p, &[("acme", "alice"), ("globex", "gina")]);
    app.upload("alice", "employees/2026-11.csv", GOOD.as_bytes());
    let receipt = app.receipt("alice", "employees/2026-11.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["rows"], 3);
    let acme = with_database(&passerelle_tests::pg_admin_url(), &format!("{prefix}acme"));
    let rows = psql(&acme, "SELECT employee_id, email, hired_on, salary FROM employees ORDER BY employee_id");
    assert_eq!(rows, "1|ada@example.com|2025-12-10|4200.50\n2|grace@example.com|2025-12-09|3900\n3||2026-01-01|\n");
    let owner = psql(&acme, "SELECT tableowner FROM pg_tables WHERE tablename = 'employees'");
    assert_eq!(owner.trim(), format!("{prefix}acme"), "loaded with the tenant's own account");
    let globex = with_database(&passerelle_tests::pg_admin_url(), &format!("{prefix}globex"));
    assert_eq!(psql(&globex, "SELECT count(*) FROM pg_tables WHERE tablename = 'employees'").trim(), "0");
    drop(app.server);
}

#[test]
fn a_file_placed_in_the_inbox_by_other_means_is_taken_and_temporaries_are_not() {
    let app = installation(Passerelle::new(), &[("acme", "alice")]);
    let inbox = app.inbox("acme").join("employees");
    std::fs::write(inbox.join("copied.csv.part"), GOOD).unwrap();
    std::fs::write(inbox.join(".hidden.csv"), GOOD).unwrap();
    std::fs::write(inbox.join("copied.csv"), GOOD).unwrap();
    let receipt = app.receipt("alice", "employees/copied.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    // A client-side rename into place (WinSCP's way) is taken as well.
    std::fs::rename(inbox.join("copied.csv.part"), inbox.join("renamed.csv")).unwrap();
    let receipt = app.receipt("alice", "employees/renamed.csv");
    assert_eq!(receipt["status"], "duplicate", "{receipt}");
    assert!(inbox.join(".hidden.csv").exists(), "dot-files are never taken");
    drop(app.server);
}
