//! Issue #17, items 3 and 4: originals kept after import are encrypted under
//! their tenant's data key, itself wrapped by the master key; `archive
//! verify` finds any altered byte and names the file; `keys rotate-master`
//! re-wraps the keys without touching the archive; `tenant remove --purge`
//! leaves nothing of the tenant under the data directory and destroys its
//! data key, so that a copy of its archive taken before can no longer be
//! decrypted; tenant database passwords are not kept in clear.

use std::path::PathBuf;

use passerelle_tests::{Fixture, Passerelle, Setup, mode, psql};
use serde_json::Value;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Written into the uploaded file; must never appear in an archive.
const MARKER: &str = "marker-7f3c9e1d@example.com";

fn csv() -> String {
    format!("employee_id;email;hired_on;salary\n1;{MARKER};10/12/2025;4200,50\n2;grace@example.com;09/12/2025;3900\n")
}

/// A running server with tenants `acme` (user alice) and `globex` (user gina).
fn installation(p: Passerelle) -> Fixture {
    let profile = passerelle_tests::DEMO_PROFILE;
    Setup::on(p)
        .user("acme", "alice", PASSWORD)
        .profile("acme", profile)
        .inbox_dirs("acme", &["employees"])
        .user("globex", "gina", PASSWORD)
        .profile("globex", profile)
        .inbox_dirs("globex", &["employees"])
        .serve()
}

/// Uploads the marker file as alice and returns its import job id once imported.
fn imported(app: &Fixture) -> String {
    app.upload("alice", "employees/2026-12.csv", csv().as_bytes());
    let receipt = app.receipt("alice", "employees/2026-12.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    receipt["import_id"].as_str().expect("import_id").to_owned()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The master key file of an installation with the default `keys.master_key_file`.
fn master_key_file(p: &Passerelle) -> PathBuf {
    let data = p.data_dir();
    data.with_file_name(format!("{}.master.key", data.file_name().unwrap().to_string_lossy()))
}

#[test]
fn archives_hold_no_plaintext_verify_finds_a_flipped_byte_and_survive_a_master_key_rotation() {
    let app = installation(Passerelle::new());
    let key_file = master_key_file(&app.p);
    assert!(!key_file.starts_with(app.p.data_dir()), "the master key lives outside the data directory");
    assert_eq!(mode(&key_file), 0o600);
    let id = imported(&app);
    let archived = app.p.layout().archive("acme").join(&id);
    let sealed = std::fs::read(&archived).expect("archived original");
    assert!(!contains(&sealed, MARKER), "the archive holds the original's plaintext");
    assert_eq!(app.p.archived_original("acme", &id), csv().as_bytes());
    let verified = app.p.ok(&["archive", "verify"]);
    assert!(verified.contains(&format!("ok      acme {id}")), "{verified}");
    assert!(verified.contains("1 archived originals verified, 0 failed"), "{verified}");
    drop(app.server);

    // Rotation: new key file, old kept 0600, archives untouched and still readable.
    let before = std::fs::read(&key_file).unwrap();
    let rotated = app.p.ok(&["keys", "rotate-master"]);
    assert!(rotated.contains("2 tenant data keys re-wrapped"), "{rotated}");
    assert_ne!(std::fs::read(&key_file).unwrap(), before, "a new master key");
    let old = PathBuf::from(format!("{}.old", key_file.display()));
    assert_eq!((std::fs::read(&old).unwrap(), mode(&old)), (before, 0o600));
    assert_eq!(std::fs::read(&archived).unwrap(), sealed, "rotation does not touch the archive");
    let verified = app.p.ok(&["archive", "verify", "--tenant", "acme"]);
    assert!(verified.contains("1 archived originals verified, 0 failed"), "{verified}");
    // A second rotation waits until the operator has dealt with the old key.
    let again = app.p.run(&["keys", "rotate-master"]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains(".old exists"), "{again:?}");

    // One flipped byte: verify fails, naming the job and the file.
    let mut damaged = sealed.clone();
    damaged[sealed.len() / 2] ^= 0x01;
    std::fs::write(&archived, &damaged).unwrap();
    let out = app.p.run(&["archive", "verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("FAILED  acme {id} {}", archived.display())), "{out:?}");
    assert!(out.stdout.contains("fails authentication"), "{out:?}");
    assert!(out.stderr.contains("1 of 1 archived originals failed verification"), "{out:?}");
    let json: Value = serde_json::from_str(&app.p.run(&["archive", "verify", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["job_id"], id.as_str());
    assert_eq!(json[0]["ok"], false);

    // The master key cannot be swapped for another one silently.
    std::fs::remove_file(&old).unwrap();
    std::fs::rename(&key_file, &old).unwrap();
    let out = app.p.run(&["tenant", "list"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("restore that file from your offline copy"), "{out:?}");
    assert!(!key_file.exists(), "no new master key made in place of a lost one");
}

#[test]
fn purge_leaves_nothing_of_the_tenant_and_destroys_its_data_key() {
    let app = installation(Passerelle::new());
    let id = imported(&app);
    let copy = app.p.scratch().join("stolen-archive");
    std::fs::copy(app.p.layout().archive("acme").join(&id), &copy).unwrap();
    let decrypted = app.p.scratch().join("decrypted-before");
    app.p.ok(&["archive", "decrypt", copy.to_str().unwrap(), "-o", decrypted.to_str().unwrap()]);
    assert_eq!(std::fs::read(&decrypted).unwrap(), csv().as_bytes(), "the copy decrypts while the key exists");
    drop(app.server);

    let out = app.p.ok(&["tenant", "remove", "acme", "--purge", "--yes", "--json"]);
    let report: Value = serde_json::from_str(&out).expect("purge report JSON");
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["archived_originals"], 1, "{report:#}");
    assert_eq!(report["users"], serde_json::json!(["alice"]));
    assert_eq!(report["data_key"].as_str().map(str::len), Some(32), "{report:#}");
    assert!(report["backups"].as_str().unwrap().contains("backup"), "{report:#}");

    // Nothing of the tenant is left under the data directory.
    let left: Vec<PathBuf> = passerelle_tests::tree(&app.p.data_dir())
        .into_iter()
        .filter(|path| path.iter().any(|part| part.to_string_lossy().contains("acme")))
        .collect();
    assert!(left.is_empty(), "left after the purge: {left:?}");
    assert!(!app.p.layout().tenant_db("acme").exists());
    // Nor in the catalog, but for the audit trail.
    let catalog = app.p.layout().catalog_db();
    for table in ["tenants", "tenant_keys", "users", "import_jobs"] {
        let rows = passerelle_tests::sqlite3(
            &catalog,
            &format!("SELECT count(*) FROM {table} WHERE {} = 'acme'", tenant_column(table)),
        );
        assert_eq!(rows, "0\n", "{table}");
    }

    // The copy taken before the purge cannot be decrypted any more.
    let after = app.p.scratch().join("decrypted-after");
    let out = app.p.run(&["archive", "decrypt", copy.to_str().unwrap(), "-o", after.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no longer exists (its tenant was purged)"), "{out:?}");
    assert!(!after.exists(), "nothing written");

    // The purge stays on record: the report again, and in the audit trail.
    assert_eq!(
        serde_json::from_str::<Value>(&app.p.ok(&["tenant", "purge-report", "acme", "--json"])).unwrap(),
        report
    );
    let text = app.p.ok(&["tenant", "purge-report", "acme"]);
    assert!(text.contains(&format!("data key destroyed: {}", report["data_key"].as_str().unwrap())), "{text}");
    // The other tenant is untouched.
    assert_eq!(app.p.ok(&["archive", "verify"]), "0 archived originals verified, 0 failed\n");
    assert!(app.p.layout().inbox("globex").is_dir());
}

/// The column naming the tenant in a catalog table.
fn tenant_column(table: &str) -> &'static str {
    if table == "tenants" { "name" } else { "tenant" }
}

#[test]
fn tenant_database_passwords_are_sealed_in_the_catalog_and_still_used() {
    let p = Passerelle::with_postgres();
    let catalog_url = p.pg_catalog_url().expect("PostgreSQL catalog");
    let app = installation(p);
    imported(&app);
    let rows =
        psql(&catalog_url, "SELECT db_url || ' ' || coalesce(db_password_sealed, '-') FROM tenants ORDER BY name");
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 2, "{rows}");
    for line in lines {
        let (url, sealed) = line.split_once(' ').unwrap();
        let userinfo = url.strip_prefix("postgres://").and_then(|rest| rest.split_once('@')).map(|(user, _)| user);
        assert!(userinfo.is_some_and(|user| !user.contains(':')), "a password in clear: {url}");
        assert!(sealed.len() > 40 && sealed != "-", "{line}");
    }
    drop(app.server);
}
