//! The import queue never gets stuck or starved: every legal file name gets
//! its receipt, a job that cannot succeed ends with one instead of being
//! tried again and again, an administrator can cancel a waiting job, files
//! stamped in the future are taken, and one tenant's backlog does not hold
//! back another tenant's files.

use std::time::Duration;

use std::time::Instant;

use passerelle_tests::{Fixture, IMPORT_VERDICT, Passerelle, Setup, entry_names, run_command, wait_for};
use serde_json::{Value, json};

/// The demo profile: `employees/*.csv`, upsert by `employee_id`.
const PROFILE: &str = passerelle_tests::DEMO_PROFILE;

/// The users log in with their keys.
const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// A running server whose tenants have the demo profile and an `employees` inbox directory.
fn installation(p: Passerelle, tenants: &[(&str, &str)], env: &[(&str, &str)]) -> Fixture {
    let mut setup = Setup::on(p).envs(env);
    for (tenant, login) in tenants {
        setup = setup.user(tenant, login, PASSWORD).profile(tenant, PROFILE).inbox_dirs(tenant, &["employees"]);
    }
    setup.serve()
}

/// The one job of the installation for `path`, as `import list --json` prints it.
fn job_of(f: &Fixture, path: &str) -> Option<Value> {
    f.jobs().into_iter().find(|job| job["path"] == path)
}

/// A CSV of the demo profile whose one row is employee `id` (distinct content, so never a duplicate).
fn employee(id: u32) -> String {
    format!("employee_id;email;hired_on;salary\n{id};e{id}@example.com;10/12/2025;4200,50\n")
}

#[test]
fn file_names_up_to_255_bytes_get_their_receipts_over_sftp() {
    let f = installation(Passerelle::new(), &[("acme", "alice")], &[]);
    // 255 bytes, multi-byte UTF-8: the receipt's name is shortened.
    let longest = format!("{}x.csv", "é".repeat(125));
    assert_eq!(longest.len(), 255);
    // 240 bytes: the receipt's own name fits, a temporary named after it did not.
    let long = format!("{}.csv", "n".repeat(236));
    for (name, content) in [(&longest, employee(1)), (&long, employee(2))] {
        let path = format!("employees/{name}");
        f.upload("alice", &path, content.as_bytes());
        let receipt = f.receipt("alice", &path);
        assert_eq!(receipt["status"], "imported", "{receipt}");
        assert_eq!(receipt["file"], path.as_str(), "the receipt names the whole path");
    }
    // The shortened name: the first 226 bytes (113 characters), `~`, 16 hex digits.
    let shortened = f.receipt_path(&format!("employees/{longest}"));
    let name = shortened.rsplit_once('/').unwrap().1;
    assert!(name.len() <= 255 && name.starts_with(&"é".repeat(113)) && name.ends_with(".result.json"), "{name}");
    // Nothing left behind: no temporaries, receipts removed by `receipt`.
    assert_eq!(entry_names(&f.outbox("acme").join("employees")), Vec::<String>::new());
    assert_eq!(entry_names(&f.inbox("acme").join("employees")), Vec::<String>::new());
    drop(f.server);
}

#[test]
fn a_job_that_keeps_failing_backs_off_instead_of_looping_then_finishes_by_itself() {
    let mut f = installation(Passerelle::new(), &[("acme", "alice")], &[]);
    // A file where the receipt's folder should be: the load commits, the
    // receipt cannot be written until an operator removes the file.
    let blocker = f.outbox("acme").join("employees");
    std::fs::write(&blocker, "in the way").unwrap();
    f.upload("alice", "employees/blocked.csv", employee(7).as_bytes());
    let waiting = wait_for(Duration::from_secs(30), || {
        job_of(&f, "employees/blocked.csv").filter(|job| job["status"] == "waiting-retry")
    })
    .expect("the job waits for its receipt's folder");
    let first_wait = Instant::now();
    assert!(waiting["error"].as_str().unwrap().contains("receipt"), "{waiting}");
    std::thread::sleep(Duration::from_secs(6));
    // 1 s, 2 s, 4 s between tries: at most 4 tries in these 6 s (a hot loop makes thousands).
    let job = job_of(&f, "employees/blocked.csv").unwrap();
    let attempts = job["attempts"].as_i64().unwrap();
    assert_eq!(job["status"], "waiting-retry", "{job}");
    assert!((2..=5).contains(&attempts), "{attempts} attempts in {:?}: {job}", first_wait.elapsed());
    let waits = f.server.json_events("import waits before its next try").len();
    assert!(waits <= 5, "{waits} tries logged");
    assert!(f.server.json_events("import job interrupted; tried again after a pause").is_empty());

    std::fs::remove_file(&blocker).unwrap();
    let receipt = f.receipt("alice", "employees/blocked.csv");
    assert_eq!((receipt["status"].as_str(), receipt["rows"].as_i64()), (Some("imported"), Some(1)), "{receipt}");
    let job = job_of(&f, "employees/blocked.csv").unwrap();
    assert_eq!((job["status"].as_str(), job["rows_loaded"].as_i64()), (Some("imported"), Some(1)), "{job}");
    drop(f.server);
}

#[test]
fn import_cancel_ends_a_waiting_job_with_a_receipt_and_archives_its_file() {
    // A reserve no disk has: every job waits for space (uploads are refused,
    // so the file is placed by another program).
    let reserve = (1u64 << 50).to_string();
    let f = installation(Passerelle::new(), &[("acme", "alice")], &[("PASSERELLE_UPLOADS_MIN_FREE_SPACE", &reserve)]);
    std::fs::write(f.inbox("acme").join("employees/stuck.csv"), employee(3)).unwrap();
    let job = wait_for(Duration::from_secs(30), || {
        job_of(&f, "employees/stuck.csv").filter(|job| job["status"] == "waiting-retry")
    })
    .expect("the job waits for disk space");
    let id = job["id"].as_str().unwrap();
    let out = f.p.ok(&["import", "cancel", id]);
    assert!(out.contains("cancelled"), "{out}");
    let receipt = f.receipt("alice", "employees/stuck.csv");
    assert_eq!(receipt["status"], "rejected", "{receipt}");
    assert_eq!(receipt["import_id"], id);
    let message = receipt["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("cancelled by an administrator (admin:"), "{message}");
    assert_eq!(receipt["sha256"].as_str().map(str::len), Some(64), "{receipt}");
    // The original is archived, and the runner leaves the job ended.
    assert_eq!(f.p.archived_original("acme", id), employee(3).as_bytes());
    std::thread::sleep(Duration::from_secs(3));
    let job = job_of(&f, "employees/stuck.csv").unwrap();
    assert_eq!((job["status"].as_str(), job["error"].as_str()), (Some("rejected"), Some(message)), "{job}");
    assert!(!f.outbox("acme").join(f.receipt_path("employees/stuck.csv")).exists(), "no later receipt");
    assert_refused_cancel(&f, id, "is rejected; nothing to cancel");
    drop(f.server);
}

/// `import cancel ID` is refused with exit 2 and `reason` on standard error.
fn assert_refused_cancel(f: &Fixture, id: &str, reason: &str) {
    let out = f.p.run(&["import", "cancel", id]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(reason), "{out:?}");
}

/// Unix seconds a year from now.
fn next_year() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    now.as_secs() + 366 * 86_400
}

#[test]
fn files_stamped_in_the_future_are_taken_and_imported() {
    let f = installation(Passerelle::new(), &[("acme", "alice")], &[]);
    // Placed by another program, then stamped a year ahead with touch(1).
    let placed = f.inbox("acme").join("employees/touched.csv");
    std::fs::write(&placed, employee(11)).unwrap();
    let mut touch = std::process::Command::new("touch");
    touch.args(["-d", "+1 year"]).arg(&placed);
    assert!(run_command(&mut touch, b"").success());
    // Uploaded over SFTP, then stamped a year ahead by the client (paramiko utime).
    let local = f.work("alice").join("future.csv");
    std::fs::write(&local, employee(12)).unwrap();
    let remote = "/inbox/employees/future.csv";
    let year = next_year();
    let report = f.sftp("alice").paramiko(json!([
        {"op": "put", "local": local, "remote": remote},
        {"op": "utime", "path": remote, "atime": year, "mtime": year},
    ]));
    let results = report["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["ok"] == true), "{report}");
    for path in ["employees/touched.csv", "employees/future.csv"] {
        let receipt = f.receipt("alice", path);
        assert_eq!((receipt["status"].as_str(), receipt["rows"].as_i64()), (Some("imported"), Some(1)), "{receipt}");
    }
    drop(f.server);
}

#[test]
fn one_tenants_backlog_does_not_hold_back_another_tenants_first_file() {
    let f = installation(Passerelle::new(), &[("big", "bob"), ("small", "sam")], &[]);
    // A backlog placed straight into the inbox: far more than a second of work.
    let backlog = 3000;
    let inbox = f.inbox("big").join("employees");
    for i in 0..backlog {
        std::fs::write(inbox.join(format!("{i:04}.csv")), employee(i)).unwrap();
    }
    // Once the backlog is due (its quiet period over), the other tenant's file arrives.
    std::thread::sleep(Duration::from_secs(3));
    let placed = Instant::now();
    std::fs::write(f.inbox("small").join("employees/first.csv"), employee(1)).unwrap();
    let receipt = f.outbox("small").join(f.receipt_path("employees/first.csv"));
    wait_for(IMPORT_VERDICT, || f.verdict_on_disk(&receipt)).expect("the small tenant's receipt");
    let took = placed.elapsed();
    let big_jobs = f.p.ok(&["import", "list", "--tenant", "big", "--limit", "1000000", "--json"]);
    let big_jobs: Value = serde_json::from_str(&big_jobs).unwrap();
    let open_jobs = big_jobs.as_array().unwrap().iter().filter(|j| j["finished_at"].is_null()).count();
    let big_left = entry_names(&inbox).len() + open_jobs;
    assert!(big_left > 0, "the backlog was gone before the check: nothing was measured");
    eprintln!("small tenant's first receipt after {took:?}, {big_left} of the backlog's {backlog} files left");
    // The 2 s quiet period, at most a second of waiting, and the import itself.
    assert!(took < Duration::from_millis(4500), "the first file of the small tenant took {took:?}");
    let receipt: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(receipt["status"], "imported", "{receipt}");
    drop(f.server);
}

#[test]
fn a_small_file_does_not_wait_behind_another_tenants_big_import() {
    let f =
        installation(Passerelle::new(), &[("big", "bob"), ("small", "sam")], &[("PASSERELLE_PIPELINE_WORKERS", "2")]);
    let shown = f.p.ok(&["config", "show"]);
    assert!(shown.contains("[pipeline]") && shown.contains("workers = 2"), "{shown}");
    // Several seconds of loading for the big tenant (validation and load are one pass).
    let mut big = String::from("employee_id;email;hired_on;salary\n");
    for i in 0..1_500_000 {
        big.push_str(&format!("{i};e{i}@example.com;10/12/2025;4200,50\n"));
    }
    std::fs::write(f.inbox("big").join("employees/big.csv"), big).unwrap();
    wait_for(Duration::from_secs(30), || {
        job_of(&f, "employees/big.csv").filter(|job| job["status"] == "validating" || job["status"] == "loading")
    })
    .expect("the big import runs");
    // Uploaded: taken at once (a file placed by another program would wait
    // its 2 s quiet period, about as long as the big import now takes).
    f.upload("sam", "employees/small.csv", employee(1).as_bytes());
    let receipt = f.receipt("sam", "employees/small.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    let big_job = job_of(&f, "employees/big.csv").unwrap();
    assert!(big_job["finished_at"].is_null(), "the big import ended first, nothing was shown: {big_job}");
    drop(f.server);
}
