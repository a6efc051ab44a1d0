//! Intake of uploads the server completed: the file is taken into its job
//! as its upload closes, with no quiet period, while its name stays in
//! `/inbox` until the job ends, so clients that touch the file right after
//! closing it (paramiko's `put` stats it, rclone sets its time) still
//! succeed, and the file is imported exactly once: also when the client
//! removes the name right away, and when the server is killed during the
//! load (the job resumes, the name is removed when it ends).
//!
//! Receipts say one thing at a time: after a re-upload of a name the
//! receipt read right after the upload is either `received` with the new
//! file's SHA-256 or the new file's verdict, never the previous verdict.
//! Clients may delete receipts in `/outbox`, and nothing else there;
//! receipts past `receipts.retention_days` are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use passerelle_tests::{
    DEMO_PROFILE, Fixture, IMPORT_VERDICT, Setup, bounded, entry_names, run_command, sha256sum, sqlite3, venv_tool,
    wait_for,
};
use rustix::process::Signal;
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// A running server with tenant `acme`, user `alice` and the demo profile.
fn acme() -> Fixture {
    Setup::new()
        .user("acme", "alice", PASSWORD)
        .profile("acme", DEMO_PROFILE)
        .inbox_dirs("acme", &["employees"])
        .serve()
}

/// A valid CSV of the demo profile with `rows` rows, employees `first..`.
fn employees(first: u32, rows: u32) -> String {
    let mut csv = String::from("employee_id;email;hired_on;salary\n");
    for id in first..first + rows {
        csv.push_str(&format!("{id};e{id}@example.com;10/12/2025;4200,50\n"));
    }
    csv
}

/// A CSV of the demo profile its validation rejects (line 2: a bad date), distinct per `n`.
fn invalid(n: u32) -> String {
    format!("employee_id;email;hired_on;salary\n{n};e{n}@example.com;2026-13-01;1\n")
}

fn local(f: &Fixture, name: &str, content: &str) -> PathBuf {
    let path = f.work("files").join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The receipt of `path` as it is on disk now, if any.
fn receipt_now(f: &Fixture, path: &str) -> Option<Value> {
    let bytes = std::fs::read(f.outbox("acme").join(f.receipt_path(path))).ok()?;
    Some(serde_json::from_slice(&bytes).expect("a receipt is always whole JSON"))
}

/// Waits for the verdict of `path` carrying `sha256` (the receipt is left in place).
fn verdict(f: &Fixture, path: &str, sha256: &str) -> Value {
    wait_for(IMPORT_VERDICT, || receipt_now(f, path).filter(|r| r["status"] != "received" && r["sha256"] == sha256))
        .unwrap_or_else(|| panic!("no verdict for {path} ({sha256}); jobs: {}", f.p.ok(&["import", "list"])))
}

fn jobs_of(f: &Fixture, path: &str) -> Vec<Value> {
    f.jobs().into_iter().filter(|job| job["path"] == path).collect()
}

fn put(f: &Fixture, file: &Path, path: &str) {
    let out = f.sftp("alice").sftp_batch(&format!("put {} /inbox/{path}\n", file.display()));
    assert!(out.success(), "upload of {path}: {}", out.stderr);
}

#[test]
fn paramiko_put_and_rclone_copy_are_imported_once_at_once() {
    let f = acme();
    // paramiko's put (confirm=True) stats the file right after closing it, then sets its times.
    let file = local(&f, "paramiko.csv", &employees(1, 1000));
    let report = f.sftp("alice").paramiko(json!([
        {"op": "put", "local": file, "remote": "/inbox/employees/paramiko.csv"},
        {"op": "stat", "path": "/inbox/employees/paramiko.csv"},
        {"op": "utime", "path": "/inbox/employees/paramiko.csv", "atime": 1_000_000_000, "mtime": 1_000_000_000},
    ]));
    for result in report["results"].as_array().unwrap() {
        assert_eq!(result["ok"], true, "{report}");
    }
    let receipt = verdict(&f, "employees/paramiko.csv", &sha256sum(&file));
    assert_eq!((receipt["status"].as_str(), receipt["rows"].as_u64()), (Some("imported"), Some(1000)), "{receipt}");

    // rclone copy sets the modification time after the upload.
    let rclone = venv_tool("rclone", "rclone");
    let dir = f.work("rclone");
    let file = dir.join("rclone.csv");
    std::fs::write(&file, employees(2001, 10)).unwrap();
    let mut command = bounded(&rclone, 60);
    let obscured = run_command(command.args(["obscure", PASSWORD]), b"");
    assert!(obscured.success(), "{}", obscured.stderr);
    let remote = format!(
        ":sftp,host=127.0.0.1,port={},user=alice,pass={},shell_type=none:/inbox/employees",
        f.p.sftp_port(),
        obscured.stdout.trim()
    );
    let mut command = bounded(&rclone, 60);
    command.args(["--config", "/dev/null", "--contimeout", "10s", "--timeout", "30s", "copy"]);
    let out = run_command(command.arg(&dir).arg(&remote), b"");
    assert!(out.success(), "rclone copy: {}\n{}", out.stdout, out.stderr);
    let receipt = verdict(&f, "employees/rclone.csv", &sha256sum(&file));
    assert_eq!((receipt["status"].as_str(), receipt["rows"].as_u64()), (Some("imported"), Some(10)), "{receipt}");

    // Exactly once each, and nothing left in the inbox once the jobs ended,
    // even after the quiet period a second look would wait for.
    std::thread::sleep(Duration::from_secs(3));
    for path in ["employees/paramiko.csv", "employees/rclone.csv"] {
        let jobs = jobs_of(&f, path);
        assert_eq!(jobs.len(), 1, "{path}: {jobs:?}");
        assert_eq!(jobs[0]["status"], "imported");
    }
    assert_eq!(entry_names(&f.inbox("acme").join("employees")), Vec::<String>::new());

    // An upload's verdict comes well before the old 2 s quiet period would
    // have let the file be taken (the best of a few, on busy cores).
    let took = (0..3)
        .map(|i| {
            let path = format!("employees/timed-{i}.csv");
            let file = local(&f, &format!("timed-{i}.csv"), &employees(3000 + i * 1000, 1000));
            put(&f, &file, &path);
            let closed = Instant::now();
            let sha256 = sha256sum(&file);
            loop {
                if receipt_now(&f, &path).is_some_and(|r| r["status"] != "received" && r["sha256"] == sha256) {
                    break closed.elapsed();
                }
                assert!(closed.elapsed() < IMPORT_VERDICT, "no verdict for {path}");
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .min()
        .unwrap();
    eprintln!("best close → verdict: {took:?}");
    assert!(took < Duration::from_millis(1500), "close → verdict took {took:?}");
}

#[test]
fn a_reupload_never_shows_the_previous_verdict() {
    let f = acme();
    let path = "employees/monthly.csv";
    let first = local(&f, "first.csv", &employees(1, 3));
    put(&f, &first, path);
    assert_eq!(verdict(&f, path, &sha256sum(&first))["status"], "imported");
    // Each upload alternates the verdict: the receipt read right after the
    // upload is the new file's, received or judged, never the last verdict.
    // An invalid file is refused at its close (the verdict at the door),
    // its receipt written before the client hears of it.
    for n in 0..6 {
        let content = if n % 2 == 0 { invalid(n) } else { employees(100 * n, 5) };
        let file = local(&f, &format!("v{n}.csv"), &content);
        let sha256 = sha256sum(&file);
        if n % 2 == 0 {
            f.upload_refused("alice", &file, path);
        } else {
            put(&f, &file, path);
        }
        let read = receipt_now(&f, path).expect("a receipt right after the upload");
        assert_eq!(read["sha256"], sha256.as_str(), "upload {n}: a previous file's receipt: {read}");
        let status = read["status"].as_str().unwrap();
        assert!(["received", if n % 2 == 0 { "rejected" } else { "imported" }].contains(&status), "{read}");
        // Over SFTP, as the client reads it.
        let downloaded = f.work("downloads").join(format!("r{n}.json"));
        let out =
            f.sftp("alice").sftp_batch(&format!("get /outbox/{} {}\n", f.receipt_path(path), downloaded.display()));
        assert!(out.success(), "{}", out.stderr);
        let read: Value = serde_json::from_slice(&std::fs::read(&downloaded).unwrap()).unwrap();
        assert_eq!(read["sha256"], sha256.as_str(), "upload {n} over SFTP: {read}");
        assert_eq!(verdict(&f, path, &sha256)["status"], if n % 2 == 0 { "rejected" } else { "imported" });
    }
    // Two uploads of the name in one session, the second while the first's
    // job may still run: two jobs, in order, and the last verdict is the
    // second file's; the first file was imported whole even though its
    // name was replaced.
    let (a, b) = (local(&f, "a.csv", &employees(5000, 2000)), local(&f, "b.csv", &employees(9000, 1)));
    let out =
        f.sftp("alice").sftp_batch(&format!("put {} /inbox/{path}\nput {} /inbox/{path}\n", a.display(), b.display()));
    assert!(out.success(), "{}", out.stderr);
    let last = verdict(&f, path, &sha256sum(&b));
    assert_eq!(last["status"], "imported", "{last}");
    let jobs = jobs_of(&f, path);
    let a_job = jobs.iter().find(|job| job["sha256"] == sha256sum(&a)).expect("the first file's job");
    assert_eq!((a_job["status"].as_str(), a_job["rows_loaded"].as_u64()), (Some("imported"), Some(2000)), "{a_job}");
    assert_eq!(receipt_now(&f, path).unwrap()["sha256"], sha256sum(&b).as_str(), "still the last file's");
}

#[test]
fn a_file_removed_by_its_client_right_after_its_upload_is_imported_whole() {
    let f = acme();
    let file = local(&f, "big.csv", &employees(1, 50_000));
    let out = f
        .sftp("alice")
        .sftp_batch(&format!("put {} /inbox/employees/big.csv\nrm /inbox/employees/big.csv\n", file.display()));
    assert!(out.success(), "{}", out.stderr);
    let receipt = verdict(&f, "employees/big.csv", &sha256sum(&file));
    assert_eq!((receipt["status"].as_str(), receipt["rows"].as_u64()), (Some("imported"), Some(50_000)), "{receipt}");
    assert_eq!(jobs_of(&f, "employees/big.csv").len(), 1);
}

#[test]
fn clients_delete_receipts_in_the_outbox_and_nothing_else_there() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .profile("acme", DEMO_PROFILE)
        .inbox_dirs("acme", &["employees"])
        .ftps()
        .serve();
    let outbox = f.outbox("acme");
    std::fs::create_dir_all(outbox.join("employees")).unwrap();
    for name in ["employees/a.csv.result.json", "employees/b.csv.result.json", "notes.txt"] {
        std::fs::write(outbox.join(name), "{}").unwrap();
    }
    let sftp = f.sftp("alice");
    let out = sftp.sftp_batch("rm /outbox/employees/a.csv.result.json\n");
    assert!(out.success(), "{}", out.stderr);
    let ftps = f.ftps("alice");
    let out = ftps.curl(&["-Q", "DELE /outbox/employees/b.csv.result.json", "{explicit}/"]);
    assert!(out.success(), "FTPS DELE of a receipt: {}", out.stderr);
    let scratch = local(&f, "x.csv.result.json", "{}");
    for refused in [
        "rm /outbox/notes.txt\n".to_owned(),
        "rmdir /outbox/employees\n".to_owned(),
        format!("put {} /outbox/employees/x.csv.result.json\n", scratch.display()),
        "rename /outbox/notes.txt /outbox/n.result.json\n".to_owned(),
        "mkdir /outbox/d\n".to_owned(),
    ] {
        let out = sftp.sftp_batch(&refused);
        assert!(!out.success(), "{refused} succeeded");
    }
    let out = ftps.curl(&["-Q", "DELE /outbox/notes.txt", "{explicit}/"]);
    assert!(!out.success(), "FTPS DELE of another file succeeded");
    assert_eq!(entry_names(&outbox), ["employees", "notes.txt"]);
    assert_eq!(entry_names(&outbox.join("employees")), Vec::<String>::new());
}

#[test]
fn receipts_past_their_retention_are_removed() {
    let mut f = acme();
    let (old, new) = (local(&f, "old.csv", &employees(1, 1)), local(&f, "new.csv", &employees(2, 1)));
    put(&f, &old, "employees/old.csv");
    put(&f, &new, "employees/new.csv");
    verdict(&f, "employees/old.csv", &sha256sum(&old));
    verdict(&f, "employees/new.csv", &sha256sum(&new));
    // 31 days ago: past the default 30 days.
    let receipt = f.outbox("acme").join(f.receipt_path("employees/old.csv"));
    let month_ago = SystemTime::now() - Duration::from_secs(31 * 86_400);
    std::fs::File::options().write(true).open(&receipt).unwrap().set_modified(month_ago).unwrap();
    // Retention is applied at start, then hourly.
    f.restart();
    wait_for(Duration::from_secs(30), || (!receipt.exists()).then_some(())).expect("the old receipt removed");
    assert_eq!(entry_names(&f.outbox("acme").join("employees")), ["new.csv.result.json"]);
}

#[test]
fn an_upload_whose_job_was_killed_is_resumed_imported_once_and_its_name_removed() {
    let mut f = acme();
    let file = local(&f, "killed.csv", &employees(1, 200_000));
    put(&f, &file, "employees/killed.csv");
    let job =
        wait_for(IMPORT_VERDICT, || jobs_of(&f, "employees/killed.csv").into_iter().find(|j| j["status"] == "loading"))
            .expect("the job loads");
    // Its name is still in the inbox while the job runs.
    assert_eq!(entry_names(&f.inbox("acme").join("employees")), ["killed.csv"]);
    assert!(!f.server.stop_with(Signal::KILL).success());
    f.server = f.p.serve(&[]);
    let receipt = verdict(&f, "employees/killed.csv", &sha256sum(&file));
    assert_eq!((receipt["status"].as_str(), receipt["rows"].as_u64()), (Some("imported"), Some(200_000)), "{receipt}");
    assert_eq!(receipt["import_id"], job["id"], "the same job resumed");
    // Once: no second job for the name the restart's scan found in the inbox.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(jobs_of(&f, "employees/killed.csv").len(), 1);
    assert_eq!(entry_names(&f.inbox("acme").join("employees")), Vec::<String>::new());
    let rows = sqlite3(&f.p.layout().tenant_db("acme"), "SELECT count(*), count(DISTINCT employee_id) FROM employees");
    assert_eq!(rows.trim(), "200000|200000");
}
