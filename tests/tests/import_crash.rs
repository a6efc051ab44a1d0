//! Exactly once through crashes and outages: the server is killed with
//! SIGKILL while a job validates and while it loads, then restarted; the
//! job resumes and the table holds every row exactly once. A tenant
//! database that is down makes the job wait (visible in `import list`) and
//! complete once the database is back — with a private PostgreSQL cluster
//! that the test really stops and starts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use passerelle_tests::{Fixture, Outcome, Setup, free_port, sqlite3, wait_for};
use rustix::process::Signal;
use serde_json::Value;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// An append profile: a row loaded twice would show as two rows.
const APPEND: &str = r#"
[[import]]
name = "ledger"
match = "*.csv"
table = "ledger"
delimiter = ";"
mode = "append"
  [[import.columns]]
  name = "entry"
  type = "integer"
  required = true
  [[import.columns]]
  name = "email"
  type = "email"
  [[import.columns]]
  name = "booked_on"
  type = "date"
  format = "%d/%m/%Y"
  [[import.columns]]
  name = "amount"
  type = "decimal"
  decimal_separator = ","
"#;

/// Writes a CSV of `rows` valid rows for [`APPEND`].
fn ledger_csv(path: &Path, rows: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"entry;email;booked_on;amount\n").unwrap();
    for i in 1..=rows {
        writeln!(out, "{i};user{i}@example.com;{:02}/11/2026;{},{:02}", i % 28 + 1, i % 10_000, i % 100).unwrap();
    }
    out.flush().unwrap();
}

/// Tenant `acme` with user `alice` and the [`APPEND`] profile, configured with `env`.
fn installation(env: &[(&str, &str)]) -> Setup {
    Setup::new().envs(env).user("acme", "alice", PASSWORD).profile("acme", APPEND)
}

/// Waits until the only job is in `status`; returns it.
fn wait_for_status(f: &Fixture, status: &str, timeout: Duration) -> Value {
    wait_for(timeout, || f.jobs().into_iter().find(|job| job["status"] == status))
        .unwrap_or_else(|| panic!("no job reached {status}: {:?}", f.jobs()))
}

/// Drops `file` into acme's inbox the way another program would: written
/// under a temporary name, then renamed into place.
fn drop_in_inbox(f: &Fixture, file: &Path, name: &str) {
    let inbox = f.inbox("acme");
    std::fs::copy(file, inbox.join(format!("{name}.part"))).unwrap();
    std::fs::rename(inbox.join(format!("{name}.part")), inbox.join(name)).unwrap();
}

fn wait_for_receipt(f: &Fixture, name: &str, timeout: Duration) -> Value {
    let path = f.outbox("acme").join(format!("{name}.result.json"));
    wait_for(timeout, || std::fs::read(&path).ok())
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or_else(|| panic!("no receipt for {name}: {:?}", f.jobs()))
}

/// Rows of the ledger table and how many distinct imports wrote them.
fn sqlite_ledger(f: &Fixture) -> (u64, u64, u64) {
    let out = sqlite3(
        &f.p.layout().tenant_db("acme"),
        "SELECT count(*), count(DISTINCT entry), count(DISTINCT _import_id) FROM ledger",
    );
    let numbers: Vec<u64> = out.trim().split('|').map(|n| n.parse().unwrap()).collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Kills the server with SIGKILL once the job is `loading` (with
/// `midway`: once its progress shows rows validated and written, the file
/// not read whole), restarts it, and checks the job ends imported with
/// every row exactly once.
fn killed_while_loading(midway: bool) {
    // Several seconds of loading, so that the kill lands midway.
    const ROWS: u64 = 1_500_000;
    let setup = installation(&[]);
    let file = setup.p.scratch().join("ledger.csv");
    ledger_csv(&file, ROWS);
    let mut f = setup.serve();
    drop_in_inbox(&f, &file, "ledger.csv");
    let job = if midway {
        wait_for(Duration::from_secs(60), || {
            f.jobs().into_iter().find(|job| job["status"] == "loading" && job["progress"]["rows"].as_u64() > Some(0))
        })
        .unwrap_or_else(|| panic!("no progress seen: {:?}", f.jobs()))
    } else {
        wait_for_status(&f, "loading", Duration::from_secs(60))
    };
    let killed = f.server.stop_with(Signal::KILL);
    assert!(!killed.success());
    // Nothing was committed by the killed job.
    assert!(!f.outbox("acme").join("ledger.csv.result.json").exists());

    f.server = f.p.serve(&[]);
    let receipt = wait_for_receipt(&f, "ledger.csv", Duration::from_secs(120));
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["import_id"], job["id"], "the same job resumed");
    assert_eq!(receipt["rows"], ROWS);
    assert_eq!(sqlite_ledger(&f), (ROWS, ROWS, 1), "every row exactly once");
    assert_eq!(f.jobs().len(), 1, "one job, resumed, not a second one");

    // The same file dropped again after the restart is a duplicate.
    drop_in_inbox(&f, &file, "again.csv");
    assert_eq!(wait_for_receipt(&f, "again.csv", Duration::from_secs(60))["status"], "duplicate");
    assert_eq!(sqlite_ledger(&f).0, ROWS);
}

/// Validation and load are one pass: killed midway, rows validated and
/// written so far are rolled back with the transaction.
#[test]
fn killed_midway_through_validation_and_load_the_job_resumes_and_loads_once() {
    killed_while_loading(true);
}

#[test]
fn killed_during_the_load_the_job_rolls_back_reruns_and_loads_once() {
    killed_while_loading(false);
}

/// A private PostgreSQL cluster on a free loopback port, stopped and
/// removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    fn create() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (scripts/test installs them)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("pg_ctl under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("passerelle-pg-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self { dir, port: free_port(), bin };
        if rustix::process::geteuid().is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let out = Outcome::from(Command::new("chown").arg("postgres:postgres").arg(&cluster.dir).output().unwrap());
            assert!(out.success(), "chown: {}", out.stderr);
        }
        let data = cluster.dir.join("data");
        let out = cluster
            .as_owner(&cluster.bin.join("initdb"), &["-A", "trust", "-U", "postgres", "-D", data.to_str().unwrap()]);
        assert!(out.success(), "initdb: {}", out.stderr);
        cluster.start();
        cluster
    }

    fn as_owner(&self, program: &Path, args: &[&str]) -> Outcome {
        let mut command = if rustix::process::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(&self.dir);
        Outcome::from(command.output().expect("run a PostgreSQL tool"))
    }

    fn pg_ctl(&self, args: &[&str]) -> Outcome {
        let data = self.dir.join("data");
        let mut full = vec!["-D", data.to_str().unwrap()];
        full.extend_from_slice(args);
        self.as_owner(&self.bin.join("pg_ctl"), &full)
    }

    fn start(&self) {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.display());
        let log = self.dir.join("log");
        let out = self.pg_ctl(&["-w", "-t", "60", "-l", log.to_str().unwrap(), "-o", &options, "start"]);
        assert!(out.success(), "pg_ctl start: {} {}", out.stdout, out.stderr);
    }

    fn stop(&self) {
        let out = self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
        assert!(out.success(), "pg_ctl stop: {} {}", out.stdout, out.stderr);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn postgresql_stopped_during_an_import_the_job_waits_and_completes_once_it_is_back() {
    let cluster = Cluster::create();
    let admin_url = cluster.admin_url();
    let setup =
        installation(&[("PASSERELLE_TENANT_DB_BACKEND", "postgres"), ("PASSERELLE_TENANT_DB_ADMIN_URL", &admin_url)]);
    let file = setup.p.scratch().join("ledger.csv");
    ledger_csv(&file, 1_000);
    let f = setup.serve();

    cluster.stop();
    drop_in_inbox(&f, &file, "ledger.csv");
    let waiting = wait_for_status(&f, "waiting-retry", Duration::from_secs(60));
    assert!(waiting["error"].as_str().unwrap().contains("unavailable"), "{waiting}");
    assert!(waiting["attempts"].as_i64().unwrap() >= 1, "{waiting}");
    let listed = f.p.ok(&["import", "list", "--status", "waiting-retry"]);
    assert!(listed.contains("ledger.csv"), "{listed}");

    cluster.start();
    let receipt = wait_for_receipt(&f, "ledger.csv", Duration::from_secs(120));
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["rows"], 1_000);
    let acme = format!("postgres://postgres@127.0.0.1:{}/passerelle_acme", cluster.port);
    let out = Outcome::from(
        Command::new("psql")
            .args(["-X", "-A", "-t", "-d", &acme, "-c", "SELECT count(*), count(DISTINCT entry) FROM ledger"])
            .output()
            .unwrap(),
    );
    assert_eq!(out.stdout.trim(), "1000|1000", "{}", out.stderr);
}
