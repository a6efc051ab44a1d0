//! The import pipeline end to end: a CSV uploaded over SFTP becomes rows in
//! its tenant's own database (SQLite and PostgreSQL) and a receipt in
//! `/outbox`; the same content twice is a duplicate; bad files get precise
//! receipts and load nothing; files placed by other means are taken too;
//! one tenant's files never reach another tenant's database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_tests::{Passerelle, Server, SftpUser, add_user_key, psql, sqlite3, wait_for, with_database};
use serde_json::Value;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// How long a job may take to reach its verdict in these tests.
const VERDICT: Duration = Duration::from_secs(60);

/// The demo tenant's profile (`serve --demo`): employees/*.csv, upsert by
/// employee_id, `;`/`,` detected, dates %d/%m/%Y, decimals with `,`.
const PROFILE: &str = include_str!("../../server/src/demo-profile.toml");

const GOOD: &str = "employee_id;email;hired_on;salary\n\
                    1;ada@example.com;10/12/2025;4200,50\n\
                    2;grace@example.com;09/12/2025;3900\n\
                    3;;01/01/2026;\n";

struct Installation {
    server: Server,
    p: Passerelle,
    key: PathBuf,
}

impl Installation {
    fn start(mut p: Passerelle, tenants: &[(&str, &str)]) -> Self {
        p.set_env("PASSERELLE_LOG_FORMAT", "json");
        let mut key = PathBuf::new();
        for (tenant, login) in tenants {
            p.tenant_with_user(tenant, login, PASSWORD);
            key = add_user_key(&p, login);
            let out = p.run_with_stdin(&["profile", "set", tenant, "-"], PROFILE);
            assert!(out.success(), "profile set: {}", out.stderr);
            std::fs::create_dir_all(p.data_dir().join("tenants").join(tenant).join("inbox/employees")).unwrap();
        }
        let server = p.serve(&[]);
        Self { server, p, key }
    }

    fn user(&self, login: &str) -> SftpUser {
        let scratch = self.p.scratch().join(login);
        std::fs::create_dir_all(&scratch).unwrap();
        let key = self.key.with_file_name(format!("id_{login}"));
        SftpUser::with_key(self.p.sftp_port(), login, &key, &scratch)
    }

    fn outbox(&self, tenant: &str) -> PathBuf {
        self.p.data_dir().join("tenants").join(tenant).join("outbox")
    }

    fn inbox(&self, tenant: &str) -> PathBuf {
        self.p.data_dir().join("tenants").join(tenant).join("inbox")
    }

    /// Uploads `content` as `/inbox/<path>` over SFTP.
    fn upload(&self, login: &str, path: &str, content: &[u8]) {
        let user = self.user(login);
        let local = self.p.scratch().join(format!("upload-{:08x}", rand::random::<u32>()));
        std::fs::write(&local, content).unwrap();
        let out = user.sftp_batch(&format!("put {} /inbox/{path}\n", local.display()));
        assert!(out.success(), "upload of {path} failed: {}", out.stderr);
    }

    /// Waits for the receipt of `/inbox/<path>`, then downloads it over SFTP
    /// as the client would.
    fn receipt(&self, tenant: &str, login: &str, path: &str) -> Value {
        let on_disk = self.outbox(tenant).join(format!("{path}.result.json"));
        wait_for(VERDICT, || on_disk.exists().then_some(()))
            .unwrap_or_else(|| panic!("no receipt for {path}; jobs: {}", self.p.ok(&["import", "list"])));
        let local = self.p.scratch().join(format!("receipt-{:08x}", rand::random::<u32>()));
        let out = self.user(login).sftp_batch(&format!("get /outbox/{path}.result.json {}\n", local.display()));
        assert!(out.success(), "download of the receipt of {path} failed: {}", out.stderr);
        let receipt: Value = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
        std::fs::remove_file(on_disk).unwrap();
        receipt
    }

    fn jobs(&self) -> Vec<Value> {
        let out = self.p.ok(&["import", "list", "--json"]);
        serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
    }
}

fn sqlite_rows(p: &Passerelle, tenant: &str) -> String {
    sqlite3(
        &p.data_dir().join("tenant-db").join(format!("{tenant}.db")),
        "SELECT employee_id, email, hired_on, salary FROM employees ORDER BY employee_id",
    )
}

fn files_under(dir: &Path) -> Vec<String> {
    passerelle_tests::tree(dir).iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn an_sftp_upload_becomes_rows_and_a_receipt_on_sqlite() {
    let app = Installation::start(Passerelle::new(), &[("acme", "alice"), ("globex", "gina")]);
    app.upload("alice", "employees/2026-11.csv", GOOD.as_bytes());
    let receipt = app.receipt("acme", "alice", "employees/2026-11.csv");
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
    let archived = app.p.data_dir().join("archive/acme").join(&import_id);
    assert_eq!(std::fs::read(&archived).unwrap(), GOOD.as_bytes());

    // The same content again: a duplicate, nothing loaded twice.
    app.upload("alice", "employees/again.csv", GOOD.as_bytes());
    let receipt = app.receipt("acme", "alice", "employees/again.csv");
    assert_eq!(receipt["status"], "duplicate", "{receipt}");
    assert_eq!(receipt["duplicate_of"], import_id.as_str());
    assert_eq!(receipt["rows"], 0);
    assert_eq!(sqlite_rows(&app.p, "acme").lines().count(), 3);

    // Another tenant's database never saw any of it.
    let globex = app.p.data_dir().join("tenant-db/globex.db");
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
    assert_eq!(outcomes, ["received", "validating", "loading", "imported"]);
    drop(app.server);
}

#[test]
fn an_sftp_upload_becomes_rows_in_the_tenants_postgresql_database() {
    let p = Passerelle::with_postgres();
    let prefix = p.pg_prefix().unwrap();
    let app = Installation::start(p, &[("acme", "alice"), ("globex", "gina")]);
    app.upload("alice", "employees/2026-11.csv", GOOD.as_bytes());
    let receipt = app.receipt("acme", "alice", "employees/2026-11.csv");
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
    let app = Installation::start(Passerelle::new(), &[("acme", "alice")]);
    let inbox = app.inbox("acme").join("employees");
    std::fs::write(inbox.join("copied.csv.part"), GOOD).unwrap();
    std::fs::write(inbox.join(".hidden.csv"), GOOD).unwrap();
    std::fs::write(inbox.join("copied.csv"), GOOD).unwrap();
    let receipt = app.receipt("acme", "alice", "employees/copied.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    // A client-side rename into place (WinSCP's way) is taken as well.
    std::fs::rename(inbox.join("copied.csv.part"), inbox.join("renamed.csv")).unwrap();
    let receipt = app.receipt("acme", "alice", "employees/renamed.csv");
    assert_eq!(receipt["status"], "duplicate", "{receipt}");
    assert!(inbox.join(".hidden.csv").exists(), "dot-files are never taken");
    drop(app.server);
}
