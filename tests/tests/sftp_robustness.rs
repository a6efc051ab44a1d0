//! The SFTP server under rough treatment: a client killed or cut off in the
//! middle of an upload (no upload-completed event, no file under its final
//! name, no import job for it, no temporary file left, "aborted" in the audit
//! trail, and the server keeps serving), too many failed logins on one
//! connection, a client that connects and says nothing (login grace time), and
//! garbage instead of SSH.
//!
//! The interrupted uploads have normal names, which the import pipeline would
//! take out of `/inbox` had they ever appeared there, recording an import job
//! before moving the file: so the file must not be there, and (checked after
//! that) no import job may exist for it, whenever the pipeline looked.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use passerelle_tests::{Fixture, Setup, SftpUser, random_file, tree, wait_for, wait_for_audit};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Prefix of the server's temporary upload files.
const TEMP_PREFIX: &str = ".passerelle-upload-";

/// Tenant `acme`, user `alice` (key), and `env`.
fn start_with(env: &[(&str, &str)]) -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).envs(env).serve()
}

/// Entries of the tenant tree that look like the server's temporary upload files.
fn temp_files(f: &Fixture) -> Vec<PathBuf> {
    tree(&f.tenant_root("acme"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX)))
        .collect()
}

/// After an interrupted upload of `path` (`/inbox/...`): no event, no
/// file under its final name and no import job for it (the pipeline would
/// have taken a file that appeared there), no temporary file, "aborted"
/// in the audit trail, and a new client can log in and upload.
fn assert_upload_discarded(f: &mut Fixture, path: &str) {
    let final_name = f.tenant_root("acme").join(path.trim_start_matches('/'));
    wait_for_audit(&f.p, "aborted upload", |r| r.action == "upload" && r.outcome == "aborted" && r.path == path);
    // Give a wrongly finishing upload the time to show up.
    std::thread::sleep(Duration::from_secs(2));
    let completed: Vec<_> = f
        .server
        .json_events("upload completed")
        .into_iter()
        .filter(|e| passerelle_tests::field(e, "path") == Some(path))
        .collect();
    assert!(completed.is_empty(), "an interrupted upload was reported completed: {completed:?}");
    assert!(!final_name.exists(), "{} exists after an interrupted upload", final_name.display());
    let jobs = f.p.ok(&["import", "list", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&jobs).expect("import list JSON");
    let inbox_path = path.trim_start_matches("/inbox/");
    assert!(
        !jobs.as_array().expect("jobs").iter().any(|j| j["path"] == inbox_path),
        "the pipeline took an interrupted upload of {path}: {jobs:#}"
    );
    let left = wait_for(Duration::from_secs(10), || {
        let temps = temp_files(f);
        temps.is_empty().then_some(())
    });
    assert!(left.is_some(), "temporary upload files left behind: {:?}", temp_files(f));
    assert!(
        !passerelle_tests::audit_rows(&f.p).iter().any(|r| r.action == "upload" && r.outcome == "ok" && r.path == path),
        "the audit trail has a successful upload of {path}"
    );
    assert_still_serving(f);
}

fn assert_still_serving(f: &mut Fixture) {
    assert!(f.server.is_running(), "the server died:\n{}", f.server.output());
    let small = f.p.scratch().join("after.txt");
    std::fs::write(&small, "still here\n").expect("small file");
    let out = f.sftp("alice").sftp_batch(&format!("put {} /inbox/after.txt\nls /inbox\n", small.display()));
    assert!(out.success(), "no upload after the incident: {}\n{}", out.stdout, out.stderr);
    f.server.wait_for_upload_completed("/inbox/after.txt", Duration::from_secs(10));
    let output = f.server.output();
    assert!(!output.contains("panicked"), "the server panicked:\n{output}");
}

#[test]
fn killing_sftp_mid_upload_leaves_no_file_no_event_and_a_healthy_server() {
    let mut f = start_with(&[]);
    let local = f.p.scratch().join("big.bin");
    random_file(&local, 64 * 1024 * 1024);
    let user = f.sftp("alice");
    let batch = f.p.scratch().join("batch");
    std::fs::write(&batch, format!("put {} /inbox/big.bin\n", local.display())).expect("batch");
    // 40 Mbit/s: the upload takes ~13 s, so it is surely running when killed.
    let mut command = user.openssh("sftp");
    command
        .args(["-l", "40000", "-P", &user.port.to_string(), "-b"])
        .arg(&batch)
        .arg(user.destination())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut sftp = command.spawn().expect("sftp");
    let started = Instant::now();
    let final_name = f.inbox("acme").join("big.bin");
    let mut saw_temp = false;
    while started.elapsed() < Duration::from_millis(1500) {
        assert!(!final_name.exists(), "a file being written is visible under its final name");
        saw_temp |= !temp_files(&f).is_empty();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sftp.try_wait().expect("try_wait").is_none(), "the upload ended before the kill");
    let pid = rustix::process::Pid::from_child(&sftp);
    rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).expect("kill sftp and ssh");
    let _ = sftp.wait();
    eprintln!("killed after {:?}; temporary file seen while uploading: {saw_temp}", started.elapsed());
    assert_upload_discarded(&mut f, "/inbox/big.bin");
}

#[test]
fn cutting_the_connection_mid_upload_leaves_no_file_no_event_and_a_healthy_server() {
    let mut f = start_with(&[]);
    // paramiko writes 8 MiB without closing the file, then resets the TCP connection.
    let report = f
        .sftp("alice")
        .paramiko(json!([{"op": "write_then_cut", "remote": "/inbox/cut.bin", "bytes": 8 * 1024 * 1024}]));
    assert_eq!(report["auth"], "ok", "{report}");
    assert_eq!(report["results"][0]["ok"], true, "{report}");
    assert_upload_discarded(&mut f, "/inbox/cut.bin");
}

#[test]
fn too_many_failed_logins_close_the_connection() {
    let f = start_with(&[]);
    let scratch = f.p.scratch();
    // OpenSSH's ssh, offering a wrong password up to 10 times on one connection;
    // the askpass script counts how often it was asked.
    let asked = scratch.join("asked");
    let askpass = scratch.join("askpass-counting");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\necho asked >> '{}'\nprintf '%s\\n' 'Wrong-Pelican-Harbour-71'\n", asked.display()),
    )
    .expect("askpass");
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let user = SftpUser::with_password(f.p.sftp_port(), "alice", "unused-here", &scratch);
    let mut command = passerelle_tests::bounded("ssh", 60);
    command
        // First: OpenSSH keeps the first value of an option.
        .args(["-o", "NumberOfPasswordPrompts=10"])
        .args(user.ssh_options())
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .args(["-p", &user.port.to_string(), &user.destination(), "true"]);
    let started = Instant::now();
    let out = passerelle_tests::run_command(&mut command, b"");
    assert!(out.code != 124 && out.code != 137, "ssh was killed by the timeout:\n{}", out.stderr);
    assert!(!out.success(), "logged in with a wrong password: {}", out.stderr);
    let asked = std::fs::read_to_string(&asked).unwrap_or_default().lines().count();
    let failed = wait_for(Duration::from_secs(5), || {
        let n =
            passerelle_tests::audit_rows(&f.p).iter().filter(|r| r.action == "login" && r.outcome == "failed").count();
        (n >= 6).then_some(n)
    });
    std::thread::sleep(Duration::from_millis(500));
    let failed_rows =
        passerelle_tests::audit_rows(&f.p).iter().filter(|r| r.action == "login" && r.outcome == "failed").count();
    // limits.max_auth_tries = 6: six passwords checked, then the connection is closed.
    assert_eq!(failed, Some(6), "failed logins audited: {failed_rows}; ssh stderr:\n{}", out.stderr);
    assert_eq!(failed_rows, 6, "more than max_auth_tries passwords were checked; ssh stderr:\n{}", out.stderr);
    assert!(asked <= 7, "ssh was asked for {asked} passwords on one connection:\n{}", out.stderr);
    assert!(
        out.stderr.contains("Too many authentication") || out.stderr.contains("Disconnected"),
        "no disconnect after too many failures:\n{}",
        out.stderr
    );
    eprintln!("closed after {asked} prompts in {:?}", started.elapsed());
}

/// Reads until the peer closes (EOF or reset) and returns when that happened,
/// or `None` if it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    let mut buf = [0u8; 4096];
    while since.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(since.elapsed()),
        }
    }
    None
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the SFTP port")
}

#[test]
fn a_silent_client_is_disconnected_after_the_login_grace_time() {
    let mut f = start_with(&[("PASSERELLE_LIMITS_LOGIN_GRACE_TIME", "2s")]);
    let port = f.p.sftp_port();
    let silent = std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = connect(port);
        closed_within(&mut stream, started, Duration::from_secs(8))
    });
    let banner_only = std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = connect(port);
        stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").expect("send banner");
        closed_within(&mut stream, started, Duration::from_secs(8))
    });
    for (what, handle) in [("silent", silent), ("banner only", banner_only)] {
        let closed = handle.join().expect("thread");
        let after = closed.unwrap_or_else(|| panic!("{what}: still connected after 8 s (grace time 2 s)"));
        assert!(after >= Duration::from_millis(1500), "{what}: closed after {after:?}, before the grace time");
        assert!(after <= Duration::from_secs(5), "{what}: closed only after {after:?}");
    }
    assert_still_serving(&mut f);
}

#[test]
fn garbage_instead_of_ssh_does_not_hurt_the_server() {
    // The defender would (rightly) ban 127.0.0.1 for this garbage and then
    // refuse the check that the server still serves; tests/defence.rs covers it.
    // The burst of connections below reaches the SSH layer: limits.connection_rate
    // would close most of it at accept (tests/defence_sources.rs covers that).
    let mut f = start_with(&[
        ("PASSERELLE_LIMITS_LOGIN_GRACE_TIME", "3s"),
        ("PASSERELLE_DEFENDER_ENABLED", "false"),
        ("PASSERELLE_LIMITS_CONNECTION_BURST", "100"),
    ]);
    let port = f.p.sftp_port();
    let mut random = vec![0u8; 64 * 1024];
    std::fs::File::open("/dev/urandom").expect("urandom").read_exact(&mut random).expect("random");
    let mut oversized = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
    oversized.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x05, 0x14]);
    oversized.extend_from_slice(&random[..1024]);
    let mut banner_garbage = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
    banner_garbage.extend_from_slice(&random);
    let mut long_banner = b"SSH-2.0-".to_vec();
    long_banner.extend(std::iter::repeat_n(b'A', 70_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes, no banner", random.clone()),
        ("banner then random bytes", banner_garbage),
        ("banner then a 4 GiB packet length", oversized),
        ("a 70 KB banner line", long_banner),
        ("an SSH-1 banner", b"SSH-1.5-ancient\r\n".to_vec()),
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(what, bytes)| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = connect(port);
                let _ = stream.write_all(&bytes);
                (what, closed_within(&mut stream, started, Duration::from_secs(10)))
            })
        })
        .collect();
    // And a burst of connections that close at once.
    for _ in 0..30 {
        drop(connect(port));
    }
    for handle in handles {
        let (what, closed) = handle.join().expect("thread");
        assert!(closed.is_some(), "{what}: the server kept the connection open for 10 s");
    }
    assert_still_serving(&mut f);
}
