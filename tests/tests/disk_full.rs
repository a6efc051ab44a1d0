//! A data directory whose disk fills (a small tmpfs of its own, catalog
//! included): the upload that would eat the reserve kept for the catalog
//! (`uploads.min_free_space`) is refused with one clear sentence over SFTP
//! and FTPS and leaves nothing behind; other users still log in and
//! download; `/healthz` reports it; an import waits in `waiting-retry` and
//! finishes by itself once space is back; nothing acknowledged is lost.
//!
//! Needs root (to mount the tmpfs); fails without it.

use std::path::Path;
use std::time::Duration;

use passerelle_tests::{
    DEMO_PROFILE, Fixture, IMPORT_VERDICT, Outcome, Passerelle, Setup, bounded, entry_names, random_file, run_command,
    sha256sum, wait_for, wait_for_audit,
};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";
/// The whole data directory, catalog, keys and tenant databases included.
const DISK_MIB: u32 = 24;
/// `uploads.min_free_space`.
const RESERVE: u64 = 8 << 20;
/// Filler files: a few fit above the reserve, then one crosses it.
const FILLER_MIB: u64 = 4;
const FILLERS: usize = 6;

const EMPLOYEES: &str = "employee_id;email;hired_on;salary\n\
                         1;ada@example.com;10/12/2025;4200,50\n\
                         2;grace@example.com;09/12/2025;3900\n";

/// `GET /healthz`: status code and body.
fn healthz(f: &Fixture) -> (String, String) {
    let mut command = bounded("curl", 20);
    command.args(["-s", "-w", "\n%{http_code}"]).arg(format!("http://127.0.0.1:{}/healthz", f.p.admin_port()));
    let out: Outcome = run_command(&mut command, b"");
    let (body, code) = out.stdout.rsplit_once('\n').expect("curl prints the status last");
    (code.to_owned(), body.to_owned())
}

/// Bytes free on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let vfs = rustix::fs::statvfs(dir).expect("statvfs");
    vfs.f_bavail * vfs.f_frsize
}

/// Writes `size` bytes of real data (tmpfs keeps no holes) to `path`, or
/// as many as fit.
fn ballast(path: &Path, size: u64) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0x5a; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        match file.write_all(&chunk[..usize::try_from(n).expect("a chunk")]) {
            Ok(()) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
            Err(e) => panic!("writing the ballast: {e}"),
        }
    }
}

/// A paramiko upload of `local` to `remote` whose refusal shows the
/// server's text at the write it refused.
fn filler_put(local: &Path, remote: &str) -> serde_json::Value {
    json!({"op": "put", "pipelined": false, "local": local.display().to_string(), "remote": remote})
}

/// User `filler` uploads files until one is refused mid-transfer; checks
/// that nothing partial is left (no temporary, only the acknowledged files,
/// whole) and returns those files' names and the refusal's text.
fn fill_until_refused(f: &Fixture) -> (Vec<String>, String) {
    let filler_file = f.work("filler").join("filler.bin");
    random_file(&filler_file, FILLER_MIB << 20);
    let puts: Vec<_> = (0..FILLERS).map(|i| filler_put(&filler_file, &format!("/inbox/fill-{i}.tmp"))).collect();
    let report = f.sftp("filler").paramiko(json!(puts));
    let results = report["results"].as_array().expect("results");
    let stored = results.iter().take_while(|r| r["ok"] == true).count();
    assert!((1..FILLERS).contains(&stored), "the filler should be refused after a few files: {report}");
    let bulk_inbox = f.inbox("bulk");
    assert_eq!(temporaries(&bulk_inbox), Vec::<String>::new());
    let fillers: Vec<String> = (0..stored).map(|i| format!("fill-{i}.tmp")).collect();
    assert_eq!(entry_names(&bulk_inbox), fillers);
    for name in &fillers {
        assert_eq!(sha256sum(&bulk_inbox.join(name)), sha256sum(&filler_file), "{name}");
    }
    (fillers, results[stored]["error"].as_str().unwrap_or_default().to_owned())
}

/// Upload temporaries left in a directory.
fn temporaries(dir: &Path) -> Vec<String> {
    entry_names(dir).into_iter().filter(|name| name.starts_with(".passerelle-upload-")).collect()
}

/// The jobs of `path`, as `import list --json` shows them.
fn job_of(f: &Fixture, path: &str) -> Option<serde_json::Value> {
    f.jobs().into_iter().find(|job| job["path"] == path)
}

#[test]
fn a_full_data_dir_refuses_uploads_clearly_keeps_serving_and_resumes_imports() {
    let f = Setup::on(Passerelle::on_small_disk(DISK_MIB))
        .envs(&[("PASSERELLE_UPLOADS_MIN_FREE_SPACE", &RESERVE.to_string())])
        .ftps()
        .user("bulk", "filler", PASSWORD)
        .user("acme", "alice", PASSWORD)
        .profile("acme", DEMO_PROFILE)
        .inbox_dirs("acme", &["employees"])
        .serve();
    assert_eq!(healthz(&f), ("200".into(), "ok\n".into()));

    // Acknowledged before the disk fills: a file alice reads back later, and
    // an import file kept under a temporary name (never taken) for now.
    let kept = f.work("alice").join("kept.bin");
    random_file(&kept, 1 << 20);
    let csv = f.work("alice").join("jan.csv");
    std::fs::write(&csv, EMPLOYEES).expect("csv");
    let alice = f.sftp("alice");
    let out = alice.sftp_batch(&format!(
        "put {} /inbox/kept.tmp\nput {} /inbox/employees/jan.csv.part\n",
        kept.display(),
        csv.display()
    ));
    assert!(out.success(), "uploads before the disk fills: {}", out.stderr);

    // The filler uploads until it is refused, mid-transfer.
    let (fillers, refusal) = fill_until_refused(&f);
    assert!(
        refusal.starts_with("the server is low on disk space (") && refusal.contains("reserve 8 MiB): upload refused"),
        "refusal: {refusal:?}"
    );
    assert!(free_bytes(&f.p.data_dir()) >= RESERVE - (1 << 20), "the reserve held");
    wait_for_audit(&f.p, "the refused upload", |r| {
        r.action == "upload" && r.outcome == "failed" && r.detail.contains("low on disk space")
    });

    // Uploads stop short of the reserve, so something else (logs, another
    // program) eats into it: now nothing new can start.
    let free = free_bytes(&f.p.data_dir());
    ballast(&f.p.data_dir().join("ballast"), free - (RESERVE - (1 << 20)));
    let health = wait_for(Duration::from_secs(5), || Some(healthz(&f)).filter(|(_, body)| body != "ok\n"))
        .unwrap_or_else(|| panic!("health still ok below the reserve: {:?}", healthz(&f)));
    assert_eq!(health.0, "200");
    assert!(health.1.starts_with("degraded: low on disk space (") && health.1.contains("reserve 8 MiB)"), "{health:?}");

    // FTPS says the same, with 452.
    let ftps = f.ftps("alice").script(json!({"ops": [{"op": "put", "remote": "/inbox/more.csv", "data": EMPLOYEES}]}));
    let stor = &ftps["results"][0];
    assert_eq!(stor["code"], 452, "{ftps}");
    assert!(stor["reply"].as_str().unwrap_or_default().contains("low on disk space"), "{ftps}");
    assert_eq!(temporaries(&f.inbox("acme")), Vec::<String>::new());

    // Other users still log in and download.
    let back = f.work("alice").join("kept.back");
    let out = alice.sftp_batch(&format!("get /inbox/kept.tmp {}\n", back.display()));
    assert!(out.success(), "download while the disk is full: {}", out.stderr);
    assert_eq!(sha256sum(&back), sha256sum(&kept));

    // An import taken now waits for space.
    let out = alice.sftp_batch("rename /inbox/employees/jan.csv.part /inbox/employees/jan.csv\n");
    assert!(out.success(), "rename while the disk is full: {}", out.stderr);
    let waiting =
        wait_for(IMPORT_VERDICT, || job_of(&f, "employees/jan.csv").filter(|j| j["status"] == "waiting-retry"))
            .unwrap_or_else(|| panic!("no waiting import; jobs: {:?}", f.jobs()));
    assert!(waiting["error"].as_str().unwrap_or_default().contains("low on disk space"), "{waiting}");

    // Space comes back: the import finishes by itself, uploads work again.
    let removes: Vec<_> =
        fillers.iter().map(|name| json!({"op": "remove", "path": format!("/inbox/{name}")})).collect();
    let report = f.sftp("filler").paramiko(json!(removes));
    assert!(report["results"].as_array().expect("results").iter().all(|r| r["ok"] == true), "{report}");
    let receipt = f.receipt("alice", "employees/jan.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["rows"], 2);
    assert_eq!(entry_names(&f.p.layout().archive("acme")).len(), 1, "the original is archived");
    wait_for(Duration::from_secs(5), || (healthz(&f).1 == "ok\n").then_some(()))
        .unwrap_or_else(|| panic!("health still degraded: {:?}", healthz(&f)));
    let out = f.sftp("filler").sftp_batch(&format!("put {} /inbox/again.tmp\n", csv.display()));
    assert!(out.success(), "upload once space is back: {}", out.stderr);
}

#[test]
fn without_a_reserve_a_disk_that_is_really_full_refuses_uploads_and_keeps_the_audit_trail() {
    let mut f = Setup::on(Passerelle::on_small_disk(16))
        .envs(&[("PASSERELLE_UPLOADS_MIN_FREE_SPACE", "0")])
        .user("bulk", "filler", PASSWORD)
        .user("acme", "alice", PASSWORD)
        .serve();
    let kept = f.work("alice").join("kept.bin");
    random_file(&kept, 256 << 10);
    let alice = f.sftp("alice");
    let out = alice.sftp_batch(&format!("put {} /inbox/kept.tmp\n", kept.display()));
    assert!(out.success(), "upload before the disk fills: {}", out.stderr);

    // The filesystem itself says no (ENOSPC).
    let (fillers, refusal) = fill_until_refused(&f);
    assert_eq!(refusal, "no space left on the server's disk: upload refused; try again later");

    // Full to the last byte: logins and downloads still work, and what the
    // audit trail cannot store yet is stored once there is room.
    let ballast_file = f.p.data_dir().join("ballast");
    ballast(&ballast_file, u64::MAX);
    let back = f.work("alice").join("kept.back");
    let out = alice.sftp_batch(&format!("get /inbox/kept.tmp {}\n", back.display()));
    assert!(out.success(), "download on a full disk: {}", out.stderr);
    assert_eq!(sha256sum(&back), sha256sum(&kept));
    assert!(f.server.is_running(), "the server survived a full disk");
    std::fs::remove_file(&ballast_file).expect("free the disk");
    wait_for_audit(&f.p, "the download made on a full disk", |r| {
        r.action == "download" && r.outcome == "ok" && r.path == "/inbox/kept.tmp"
    });
    let out = f.sftp("filler").sftp_batch(&format!("put {} /inbox/again.tmp\n", kept.display()));
    assert!(out.success(), "upload once space is back: {}", out.stderr);
    for name in &fillers {
        assert_eq!(std::fs::metadata(f.inbox("bulk").join(name)).expect("filler").len(), FILLER_MIB << 20);
    }
}
