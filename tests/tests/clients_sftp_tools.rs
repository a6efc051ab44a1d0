//! SFTP command-line tools integration scripts use, through the conformance
//! scenario (`passerelle_tests::conformance`): rclone's sftp backend (the
//! version Debian 12 ships and a current one), checking the host key
//! against what `passerelle hostkey show --known-hosts` printed, and curl
//! (libssh2 1.10 on Debian 12, hence `sftp.libssh2_compat`), checking it
//! against the same file as its `~/.ssh/known_hosts`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use passerelle_tests::{
    CONFORMANCE_LOGIN, CONFORMANCE_PASSWORD, ClientScript, Fixture, Outcome, RECEIPT_POLL_MILLIS, RECEIPT_POLLS,
    bounded, conformance_setup, known_hosts_file, run_command, venv_tool,
};

fn assert_success(what: &str, out: &Outcome) {
    assert!(out.success(), "{what} failed ({}):\n{}\n{}", out.code, out.stdout, out.stderr);
}

/// Runs `fetch` until it succeeds, at most RECEIPT_POLLS times, and
/// returns its last outcome.
fn poll(mut fetch: impl FnMut() -> Outcome) -> Outcome {
    let mut last = None;
    for _ in 0..RECEIPT_POLLS {
        let out = fetch();
        if out.success() {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(RECEIPT_POLL_MILLIS));
    }
    panic!("no receipt after {RECEIPT_POLLS} polls; last attempt: {last:?}")
}

/// How an rclone run logs in.
enum RcloneAuth {
    Key(PathBuf),
    Password,
}

/// The whole script with the rclone binary `rclone`.
fn rclone_script(f: &Fixture, rclone: &Path, auth: RcloneAuth, name: &str) {
    let script = ClientScript::new(name);
    let work = f.work(name);
    let (csv, temporary) = script.local_files(&work);
    let run = |args: &[&str]| {
        let mut command = bounded(rclone, 60);
        command.args(["--config", "/dev/null", "--contimeout", "10s", "--timeout", "30s"]).args(args);
        run_command(&mut command, b"")
    };
    let credential = match auth {
        RcloneAuth::Key(key) => format!("key_file={}", key.display()),
        RcloneAuth::Password => {
            let obscured = run(&["obscure", CONFORMANCE_PASSWORD]);
            assert_success("rclone obscure", &obscured);
            format!("pass={}", obscured.stdout.trim())
        }
    };
    // A connection-string remote, as a script would build it; no shell
    // commands (the server has none), host key checked.
    let remote = format!(
        ":sftp,host=127.0.0.1,port={},user={CONFORMANCE_LOGIN},{credential},known_hosts_file={},shell_type=none:",
        f.p.sftp_port(),
        known_hosts_file(&f.p).display()
    );
    let at = |path: &str| format!("{remote}{path}");

    assert_success("rclone copyto (upload)", &run(&["copyto", &csv.display().to_string(), &at(&script.upload_path())]));
    let out = poll(|| run(&["cat", &at(&script.receipt_path())]));
    script.check_receipt(out.stdout.as_bytes());
    let out = run(&["lsf", &at(script.receipt_dir())]);
    assert_success("rclone lsf", &out);
    script.check_listing(&out.stdout);
    let downloaded = work.join("receipt.json");
    let out = run(&["copyto", &at(&script.receipt_path()), &downloaded.display().to_string()]);
    assert_success("rclone copyto (download)", &out);
    let out = run(&["copyto", &temporary.display().to_string(), &at(&script.temporary_path())]);
    assert_success("rclone copyto (temporary)", &out);
    assert_success("rclone deletefile", &run(&["deletefile", &at(&script.temporary_path())]));
    script.check_server(f, &downloaded);
}

/// Debian 12's rclone (1.60), with the user's key.
#[test]
fn rclone_debian_sftp_runs_the_conformance_script_with_known_hosts() {
    let f = conformance_setup().serve();
    rclone_script(&f, Path::new("/usr/bin/rclone"), RcloneAuth::Key(f.key(CONFORMANCE_LOGIN)), "rclone-1.60");
}

/// A current rclone (the test venv's), with the password.
#[test]
fn rclone_current_sftp_runs_the_conformance_script_with_known_hosts() {
    let f = conformance_setup().serve();
    let rclone = venv_tool("rclone", "rclone");
    rclone_script(&f, &rclone, RcloneAuth::Password, "rclone-current");
}

/// A known_hosts file that lacks the key the server presents stops rclone
/// before it logs in.
#[test]
fn rclone_refuses_a_server_whose_key_is_not_in_known_hosts() {
    let f = conformance_setup().serve();
    let other = f.work("other-server");
    let public = passerelle_tests::ssh_keygen(&other, "other", "ed25519", None, "other");
    let key = std::fs::read_to_string(&public).expect("other key");
    let wrong = other.join("known_hosts");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {key}", f.p.sftp_port())).expect("write known_hosts");
    let remote = format!(
        ":sftp,host=127.0.0.1,port={},user={CONFORMANCE_LOGIN},key_file={},known_hosts_file={},shell_type=none:",
        f.p.sftp_port(),
        f.key(CONFORMANCE_LOGIN).display(),
        wrong.display()
    );
    let rclone = venv_tool("rclone", "rclone");
    let mut command = bounded(&rclone, 60);
    command
        .args(["--config", "/dev/null", "--contimeout", "10s", "--retries", "1", "lsf"])
        .arg(format!("{remote}/inbox"));
    let out = run_command(&mut command, b"");
    assert!(!out.success(), "rclone must not accept an unknown host key: {}", out.stdout);
    assert!(out.stderr.contains("knownhosts"), "{}", out.stderr);
}

/// curl (libssh2 1.10) with the user's key: against `sftp.libssh2_compat`,
/// checking the host key against `~/.ssh/known_hosts` (curl's own default
/// when `--insecure` is not given).
#[test]
fn curl_sftp_runs_the_conformance_script_with_libssh2_compat() {
    let f = conformance_setup().envs(&[("PASSERELLE_SFTP_LIBSSH2_COMPAT", "true")]).serve();
    let script = ClientScript::new("curl-sftp");
    let work = f.work("curl-sftp");
    let (csv, temporary) = script.local_files(&work);
    let home = work.join("home");
    std::fs::create_dir_all(home.join(".ssh")).expect("home");
    std::fs::copy(known_hosts_file(&f.p), home.join(".ssh/known_hosts")).expect("known_hosts");
    let key = f.key(CONFORMANCE_LOGIN);
    let url = |path: &str| format!("sftp://127.0.0.1:{}{path}", f.p.sftp_port());
    let curl = |args: &[&str]| {
        let mut command: Command = bounded("curl", 60);
        command
            .env("HOME", &home)
            .args(["-sS", "--connect-timeout", "10", "--max-time", "50", "-u", &format!("{CONFORMANCE_LOGIN}:")])
            .arg("--key")
            .arg(&key)
            .arg("--pubkey")
            .arg(format!("{}.pub", key.display()))
            .args(args);
        run_command(&mut command, b"")
    };

    assert_success("curl upload", &curl(&["-T", &csv.display().to_string(), &url(&script.upload_path())]));
    let out = poll(|| curl(&["-f", &url(&script.receipt_path())]));
    script.check_receipt(out.stdout.as_bytes());
    // A URL ending in `/` lists the directory.
    let out = curl(&["-l", &url(&format!("{}/", script.receipt_dir()))]);
    assert_success("curl list", &out);
    script.check_listing(&out.stdout);
    let downloaded = work.join("receipt.json");
    let out = curl(&["-o", &downloaded.display().to_string(), &url(&script.receipt_path())]);
    assert_success("curl download", &out);
    // The temporary goes up, then a quote command removes it (after the transfer: `-Q -rm`).
    let out = curl(&[
        "-T",
        &temporary.display().to_string(),
        "-Q",
        &format!("-rm {}", script.temporary_path()),
        &url(&script.temporary_path()),
    ]);
    assert_success("curl upload and rm of the temporary", &out);
    script.check_server(&f, &downloaded);

    // The check is real: another server's key in known_hosts stops curl.
    let public = passerelle_tests::ssh_keygen(&work, "other", "ed25519", None, "other");
    let key = std::fs::read_to_string(&public).expect("other key");
    std::fs::write(home.join(".ssh/known_hosts"), format!("[127.0.0.1]:{} {key}", f.p.sftp_port()))
        .expect("write known_hosts");
    let out = curl(&["-l", &url(&format!("{}/", script.receipt_dir()))]);
    assert!(!out.success(), "curl must not accept an unknown host key: {}", out.stdout);
}
