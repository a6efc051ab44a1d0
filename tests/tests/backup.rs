//! Backups on restic (`[backup]`, `passerelle backup`): a damaged pack is found and named by
//! `backup verify`; a backup restored into an empty data directory (and, on PostgreSQL, into
//! recreated databases) serves the same tenants, users, keys and imported rows. Real restic, a local
//! repository in the test's directory, real clients.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passerelle_tests::{
    DEMO_PROFILE, Fixture, Outcome, Passerelle, Setup, bounded, pg_admin_url, psql, run_command, sqlite3, wait_for,
    with_database,
};
use rustix::process::Signal;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Rows of the CSV the test imports.
const ROWS: usize = 25;

/// Turns backups on for every later command of `p`: a repository and a 0600 password file, both
/// outside the data directory. Returns the repository.
fn with_backups(p: &mut Passerelle) -> PathBuf {
    let password = p.scratch().join("backup-password");
    std::fs::write(&password, format!("{:032x}\n", rand::random::<u128>())).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let repository = p.scratch().join("repository");
    p.set_env("PASSERELLE_BACKUP_REPOSITORY", &repository.display().to_string());
    p.set_env("PASSERELLE_BACKUP_PASSWORD_FILE", &password.display().to_string());
    repository
}

/// The largest file under `dir`.
fn largest_file(dir: &Path) -> PathBuf {
    passerelle_tests::tree(dir)
        .into_iter()
        .map(|relative| dir.join(relative))
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a file")
}

#[test]
fn a_flipped_byte_in_a_pack_fails_verify_which_names_the_pack() {
    let mut p = Passerelle::new();
    let repository = with_backups(&mut p);
    p.tenant_with_user("acme", "alice", PASSWORD);

    let out = p.run(&["backup", "run"]);
    assert!(out.success(), "backup run: {}", out.stderr);
    assert!(out.stdout.starts_with("snapshot "), "{}", out.stdout);
    let out = p.run(&["backup", "verify"]);
    assert!(out.success(), "a fresh backup verifies: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" verified: "), "{}", out.stdout);

    let pack = largest_file(&repository.join("data"));
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&pack, bytes).unwrap();

    let out = p.run(&["backup", "verify"]);
    assert_eq!(out.code, 1, "verify must fail: {}{}", out.stdout, out.stderr);
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    let named = format!("FAILED: damaged pack data/{}/{name}", &name[..2]);
    assert!(out.stdout.contains(&named), "the pack is named ({named}): {}", out.stdout);
    assert!(out.stdout.contains("NOT verified"), "{}", out.stdout);
    let audit = p.ok(&["audit", "--json"]);
    assert!(audit.contains("backup_verify") && audit.contains(&name), "the failure is audited: {audit}");

    // serve, knowing of no verified backup, backs up and verifies at once; with one verification
    // per retention period its share is every pack, the damaged one too: the failure is counted and
    // /healthz says degraded (still 200: transfers go on).
    std::fs::remove_file(p.data_dir().join("backup").join("status.json")).unwrap();
    p.set_env("PASSERELLE_BACKUP_RETENTION_DAYS", "1");
    let mut server = p.serve(&[]);
    server.wait_for_line("backup verification failed", Duration::from_secs(60));
    let port = p.admin_port();
    let metrics = wait_for(Duration::from_secs(10), || {
        let metrics = get(port, "/metrics");
        metrics.contains("passerelle_backup_failures_total{kind=\"verify\"} 1").then_some(metrics)
    });
    assert!(metrics.is_some(), "{}", get(port, "/metrics"));
    assert_eq!(get(port, "/healthz"), "degraded: backups: no verified backup yet\n");
}

#[test]
fn the_password_file_must_be_private_and_outside_the_data_directory() {
    let mut p = Passerelle::new();
    with_backups(&mut p);
    let password = p.scratch().join("backup-password");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p.run(&["backup", "run"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("backup.password_file") && out.stderr.contains("chmod 600"), "{}", out.stderr);

    let inside = p.data_dir().join("backup-password");
    std::fs::copy(&password, &inside).unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.set_env("PASSERELLE_BACKUP_PASSWORD_FILE", &inside.display().to_string());
    let out = p.run(&["backup", "run"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("inside data_dir"), "{}", out.stderr);
}

/// `curl` of the admin endpoint: the body.
fn get(port: u16, path: &str) -> String {
    let mut command = bounded("curl", 20);
    command.args(["-s"]).arg(format!("http://127.0.0.1:{port}{path}"));
    let out: Outcome = run_command(&mut command, b"");
    out.stdout
}

/// What a restore must bring back, read from the running installation.
#[derive(Debug, PartialEq)]
struct Facts {
    tenants: String,
    users: String,
    keys: String,
    host_keys: String,
    rows: usize,
}

fn facts(p: &Passerelle, rows: &dyn Fn(&Passerelle) -> usize) -> Facts {
    let tenant_list = p.ok(&["tenant", "list", "--json"]);
    let tenants: Vec<serde_json::Value> = serde_json::from_str(&tenant_list).unwrap();
    let names: Vec<&str> = tenants.iter().filter_map(|t| t["name"].as_str()).collect();
    Facts {
        tenants: names.join(","),
        users: p.ok(&["user", "list"]),
        keys: p.ok(&["key", "list", "alice"]),
        host_keys: p.ok(&["hostkey", "show"]),
        rows: rows(p),
    }
}

/// Serves an installation with backups on, imports a CSV, lets the schedule back up and verify,
/// takes one more backup by hand under load, loses everything (`lose` removes what lives outside
/// the data directory), restores into the empty data directory and serves again: the same tenants,
/// users, keys, host keys and imported rows, and clients log in as before.
fn round_trip(p: Passerelle, rows: &dyn Fn(&Passerelle) -> usize, lose: &dyn Fn(&Passerelle)) -> Fixture {
    let mut setup = Setup::on(p);
    let repository = with_backups(&mut setup.p);
    let mut f =
        setup.user("acme", "alice", PASSWORD).profile("acme", DEMO_PROFILE).inbox_dirs("acme", &["employees"]).serve();
    let csv: String = std::iter::once("employee_id;email;hired_on;salary\n".to_owned())
        .chain((1..=ROWS).map(|i| format!("{i};e{i}@example.com;10/12/2025;4200,50\n")))
        .collect();
    f.upload("alice", "employees/staff.csv", csv.as_bytes());
    assert_eq!(f.receipt("alice", "employees/staff.csv")["status"], "imported");

    // serve backed up and verified at its start, inside its sandbox, which lets it write the repository.
    f.server.wait_for_line("backup verified", Duration::from_secs(60));
    let sandbox = f.server.wait_for_line("sandbox: landlock", Duration::from_secs(1));
    if sandbox.contains("ruleset in force") {
        assert!(sandbox.contains(&repository.display().to_string()), "{sandbox}");
    }
    let port = f.p.admin_port();
    let health = wait_for(Duration::from_secs(10), || (get(port, "/healthz") == "ok\n").then_some(()));
    assert!(health.is_some(), "healthz: {}", get(port, "/healthz"));
    let metrics = get(port, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("passerelle_backup_verify_last_success_timestamp ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // One more by hand, with the server running: it holds the imported rows.
    let out = f.p.run(&["backup", "run"]);
    assert!(out.success(), "backup run: {}", out.stderr);
    let before = facts(&f.p, rows);
    assert_eq!(before.rows, ROWS);
    let list = f.p.ok(&["backup", "list"]);
    assert!(list.lines().count() >= 3, "two snapshots and a header: {list}");
    f.server.stop_with(Signal::TERM);

    // The disaster: the data directory, and the databases outside it, are gone.
    std::fs::remove_dir_all(f.p.data_dir()).unwrap();
    lose(&f.p);
    let started = Instant::now();
    let to = f.p.data_dir().display().to_string();
    let out = f.p.run(&["backup", "restore", "latest", "--to", &to]);
    assert!(out.success(), "backup restore: {}{}", out.stdout, out.stderr);
    f.server = f.p.serve(&[]);
    let recovery = started.elapsed();
    eprintln!("RTO: restore + serve ready in {:.1} s", recovery.as_secs_f64());

    assert_eq!(facts(&f.p, rows), before, "the restore serves what was backed up");
    let out = f.sftp_with_password("alice").sftp_batch("ls /inbox\n");
    assert!(out.success(), "password login after the restore: {}", out.stderr);
    let out = f.sftp("alice").sftp_batch("ls /inbox\n");
    assert!(out.success(), "key login after the restore: {}", out.stderr);
    // The restored server backs itself up again (and, until then, holds restic's lock while it prunes).
    f.server.wait_for_line("backup verified", Duration::from_secs(60));
    // A restore refuses a directory that is not empty.
    let out = f.p.run(&["backup", "restore", "latest", "--to", &to]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    f
}

#[test]
fn a_restored_sqlite_installation_serves_the_same_tenants_users_keys_and_rows() {
    let rows = |p: &Passerelle| {
        let db = p.layout().tenant_db("acme");
        let count =
            wait_for(Duration::from_secs(5), || sqlite3(&db, "SELECT count(*) FROM employees").trim().parse().ok());
        count.expect("a row count")
    };
    round_trip(Passerelle::new(), &rows, &|_| {});
}

#[test]
fn a_restored_postgres_installation_recreates_its_databases() {
    let p = Passerelle::with_postgres();
    let prefix = p.pg_prefix().expect("a PostgreSQL installation");
    let catalog = p.pg_catalog_url().expect("a PostgreSQL catalog");
    let tenant_db = format!("{prefix}acme");
    let tenant_url = with_database(&pg_admin_url(), &tenant_db);
    let rows = move |_: &Passerelle| psql(&tenant_url, "SELECT count(*) FROM employees").trim().parse().unwrap_or(0);
    let lose = move |_: &Passerelle| {
        let admin = pg_admin_url();
        let catalog_db = catalog.rsplit_once('/').unwrap().1.to_owned();
        psql(&admin, &format!("DROP DATABASE \"{catalog_db}\" WITH (FORCE)"));
        psql(&admin, &format!("DROP DATABASE \"{tenant_db}\" WITH (FORCE)"));
        psql(&admin, &format!("DROP ROLE \"{tenant_db}\""));
    };
    let f = round_trip(p, &rows, &lose);

    // The databases exist again: a second restore is refused, naming them, unless told to replace them.
    let elsewhere = f.p.scratch().join("second-restore").display().to_string();
    let out = f.p.run(&["backup", "restore", "latest", "--to", &elsewhere]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("exist already") && out.stderr.contains(&format!("{prefix}acme")), "{}", out.stderr);
}
