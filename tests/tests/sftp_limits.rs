//! One user cannot stall the service for others: a sparse upload is refused
//! at once (no huge file for the digest to read), an upload over
//! `uploads.max_file_size` is refused over SFTP and FTPS with the same
//! sentence, open files are bounded per session and per user with a clear
//! refusal while other users carry on, a directory of thousands of entries
//! is listed in full (streamed in batches by the server), and the import
//! pipeline refuses a file over the bound without reading it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use passerelle_tests::{Fixture, Setup, random_file, tree, wait_for, wait_for_audit};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Prefix of the server's temporary upload files.
const TEMP_PREFIX: &str = ".passerelle-upload-";

/// User `alice` of tenant `acme`, user `bob` of tenant `globex` (with a
/// file `/outbox/seed.txt`), FTPS on, and `env`.
fn start_with(env: &[(&str, &str)]) -> Fixture {
    let f = Setup::new().user("acme", "alice", PASSWORD).user("globex", "bob", PASSWORD).ftps().envs(env).serve();
    std::fs::write(f.outbox("globex").join("seed.txt"), "seed\n").expect("seed");
    f
}

/// Every entry of the tenant's inbox (temporaries included).
fn inbox_entries(f: &Fixture) -> Vec<PathBuf> {
    tree(&f.inbox("acme"))
}

/// `bob` uploads and downloads a small file with OpenSSH's sftp, quickly.
fn assert_other_user_served(f: &Fixture, name: &str) {
    let local = f.p.scratch().join(name);
    std::fs::write(&local, "other users are served\n").expect("small file");
    let back = f.p.scratch().join(format!("{name}.back"));
    let started = Instant::now();
    let out = f.sftp("bob").sftp_batch(&format!(
        "put {} /inbox/{name}\nget /outbox/seed.txt {}\n",
        local.display(),
        back.display()
    ));
    assert!(out.success(), "bob could not upload and download: {}\n{}", out.stdout, out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "bob waited {:?}", started.elapsed());
    assert_eq!(std::fs::read_to_string(&back).expect("downloaded"), "seed\n");
}

#[test]
fn a_sparse_sftp_write_is_refused_at_once_and_leaves_nothing() {
    let f = start_with(&[]);
    let started = Instant::now();
    let report = f.sftp("alice").paramiko(json!([
        {"op": "sparse_write", "remote": "/inbox/sparse.bin", "offset": 64u64 << 30},
        {"op": "sparse_write", "remote": "/inbox/gap.bin", "offset": 32u64 << 20},
        {"op": "write", "remote": "/inbox/after.txt", "data": "the session is still usable\n"},
    ]));
    assert_eq!(report["auth"], "ok", "{report}");
    let sparse = &report["results"][0]["value"];
    let too_large = "file too large: uploads are limited to 4 GiB (uploads.max_file_size)";
    assert_eq!(sparse["write"], too_large, "{report}");
    assert_eq!(sparse["close"], too_large, "the commit repeats the refusal: {report}");
    assert!(sparse["seconds"].as_f64().expect("seconds") < 1.0, "{report}");
    let gap = &report["results"][1]["value"];
    let gap_text = "write at offset 33554432 leaves a gap: writes must arrive in order (at most 16 MiB ahead)";
    assert_eq!(gap["write"], gap_text, "{report}");
    assert_eq!(gap["close"], gap_text, "{report}");
    assert_eq!(report["results"][2]["ok"], true, "{report}");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    // Nothing left but the upload that went well; no thread busy hashing.
    wait_for_audit(&f.p, "refused sparse upload", |r| {
        r.action == "upload" && r.outcome == "failed" && r.path == "/inbox/sparse.bin" && r.detail == too_large
    });
    let left = wait_for(Duration::from_secs(5), || {
        let entries = inbox_entries(&f);
        (entries.len() <= 1).then_some(entries)
    });
    let names: Vec<_> = inbox_entries(&f).iter().filter_map(|p| p.file_name().map(|n| n.to_owned())).collect();
    assert!(left.is_some(), "left in the inbox: {names:?}");
    assert!(names.iter().all(|n| !n.to_string_lossy().starts_with(TEMP_PREFIX)), "temporaries left: {names:?}");
    assert_other_user_served(&f, "bob.txt");
}

#[test]
fn an_ftps_upload_over_the_size_bound_gets_552_and_leaves_nothing() {
    let f = start_with(&[("PASSERELLE_UPLOADS_MAX_FILE_SIZE", "1 MiB")]);
    let local = f.p.scratch().join("big.bin");
    random_file(&local, 3 * 1024 * 1024);
    let out = f.ftps("alice").curl(&["-v", "-T", &local.display().to_string(), "{explicit}/inbox/big.bin"]);
    let sentence = "file too large: uploads are limited to 1 MiB (uploads.max_file_size)";
    assert!(!out.success(), "the upload was accepted: {}", out.stderr);
    assert!(out.stderr.contains(&format!("552 {sentence}")), "curl: {}\n{}", out.code, out.stderr);
    wait_for_audit(&f.p, "refused ftps upload", |r| {
        r.protocol == "ftps" && r.action == "upload" && r.path == "/inbox/big.bin" && r.detail.contains(sentence)
    });
    let left = wait_for(Duration::from_secs(5), || inbox_entries(&f).is_empty().then_some(()));
    assert!(left.is_some(), "left in the inbox: {:?}", inbox_entries(&f));
    // The same sentence over SFTP, and a file within the bound still goes through.
    let small = f.p.scratch().join("small.bin");
    random_file(&small, 512 * 1024);
    let report = f.sftp("alice").paramiko(json!([
        {"op": "sparse_write", "remote": "/inbox/big.bin", "offset": 0, "size": 3 * 1024 * 1024},
        {"op": "put", "local": small.display().to_string(), "remote": "/inbox/small.bin"},
    ]));
    assert_eq!(report["results"][0]["value"]["write"], sentence, "{report}");
    assert_eq!(report["results"][0]["value"]["close"], sentence, "{report}");
    assert_eq!(report["results"][1]["ok"], true, "{report}");
    assert!(!f.inbox("acme").join("big.bin").exists());
}

#[test]
fn open_files_are_bounded_per_session_and_per_user_while_others_are_served() {
    let f = start_with(&[("PASSERELLE_LIMITS_MAX_OPEN_FILES_PER_USER", "300")]);
    std::fs::write(f.outbox("acme").join("seed.txt"), "seed\n").expect("seed");
    let ready = f.p.scratch().join("ready");
    let release = f.p.scratch().join("release");
    let alice = f.sftp("alice");
    let (r, rel) = (ready.display().to_string(), release.display().to_string());
    let holder = std::thread::spawn(move || {
        alice.paramiko(json!([{"op": "open_many", "remote": "/outbox/seed.txt", "count": 1000,
                               "ready_file": r, "release_file": rel, "close": 10}]))
    });
    let held = wait_for(Duration::from_secs(60), || std::fs::read_to_string(&ready).ok().filter(|s| !s.is_empty()));
    assert_eq!(held.as_deref(), Some("256"), "the first session did not stop at 256 handles");

    // A second session of the same user meets the per-user limit.
    let second = f.sftp("alice").paramiko(json!([{"op": "open_many", "remote": "/outbox/seed.txt", "count": 1000}]));
    assert_eq!(second["results"][0]["value"]["opened"], 44, "{second}");
    assert_eq!(second["results"][0]["value"]["refused"], "too many open files for user alice (limit 300)", "{second}");
    // Another user is not affected.
    assert_other_user_served(&f, "meanwhile.txt");

    std::fs::write(&release, "go").expect("release");
    let first = holder.join().expect("paramiko thread");
    let value = &first["results"][0]["value"];
    assert_eq!(value["opened"], 256, "{first}");
    assert_eq!(value["refused"], "too many open files in this session (limit 256)", "{first}");
    assert_eq!(value["after_close"], "ok", "the session is usable again after closing handles: {first}");
}

#[test]
fn a_directory_of_thousands_of_files_is_listed_in_full() {
    let mut f = start_with(&[]);
    // The server raised its open-file limit at start, and said so.
    f.server.wait_for_line("open-file limit", Duration::from_secs(5));
    let dir = f.outbox("acme").join("many");
    std::fs::create_dir(&dir).expect("dir");
    for i in 0..5000 {
        std::fs::write(dir.join(format!("file-{i:05}.csv")), "x\n").expect("file");
    }
    let out = f.sftp("alice").sftp_batch("ls -1 /outbox/many\n");
    assert!(out.success(), "{}", out.stderr);
    let names = out.stdout.lines().filter(|l| l.contains("file-")).count();
    assert_eq!(names, 5000, "sftp ls listed {names} names");

    let alice = f.ftps("alice");
    let out = alice.curl(&["--list-only", "{explicit}/outbox/many/"]);
    assert!(out.success(), "{}", out.stderr);
    let mut names: Vec<&str> = out.stdout.lines().collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 5000, "NLST listed {} names", names.len());
    let out = alice.curl(&["{explicit}/outbox/many/"]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.contains(" file-")).count(), 5000, "LIST");
}

#[test]
fn the_pipeline_refuses_a_file_over_the_bound_without_reading_it() {
    let f = start_with(&[("PASSERELLE_UPLOADS_MAX_FILE_SIZE", "1 KiB")]);
    // Placed in the inbox by other means than an upload, which the bound would have stopped.
    std::fs::write(f.inbox("acme").join("huge.csv"), vec![b'x'; 4096]).expect("file");
    let job = wait_for(Duration::from_secs(30), || {
        let out = f.p.ok(&["import", "list", "--json"]);
        let jobs: serde_json::Value = serde_json::from_str(&out).expect("import list JSON");
        jobs.as_array().expect("jobs").iter().find(|j| j["path"] == "huge.csv" && j["status"] == "rejected").cloned()
    });
    let job = job.unwrap_or_else(|| panic!("no rejected job: {}", f.p.ok(&["import", "list"])));
    let shown = f.p.ok(&["import", "show", job["id"].as_str().expect("id")]);
    assert!(shown.contains("file too large: 4096 bytes, over the 1 KiB limit (uploads.max_file_size)"), "{shown}");
}
