//! OpenSSH's `sftp` (batch mode) and `scp` (its default SFTP mode) as an
//! integration script drives them, through the conformance scenario
//! (`passerelle_tests::conformance`), checking the server's host key
//! strictly against what `passerelle hostkey show --known-hosts` printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_tests::{
    CONFORMANCE_LOGIN, ClientScript, Outcome, RECEIPT_POLL_MILLIS, RECEIPT_POLLS, SftpUser, conformance_setup,
    known_hosts_file,
};

fn assert_success(what: &str, out: &Outcome) {
    assert!(out.success(), "{what} failed ({}):\n{}\n{}", out.code, out.stdout, out.stderr);
}

/// Runs `fetch` (one client invocation that downloads the receipt to
/// `local`) until it succeeds, at most RECEIPT_POLLS times; returns the
/// receipt's bytes.
fn poll_receipt(local: &Path, mut fetch: impl FnMut() -> Outcome) -> Vec<u8> {
    let mut last = None;
    for _ in 0..RECEIPT_POLLS {
        let out = fetch();
        if out.success() {
            return std::fs::read(local).unwrap_or_else(|e| panic!("{}: {e}", local.display()));
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(RECEIPT_POLL_MILLIS));
    }
    panic!("no receipt after {RECEIPT_POLLS} polls; last attempt: {last:?}")
}

/// The scratch files of one client: the CSV, the temporary, and where the
/// receipt is polled to and downloaded to.
struct Local {
    csv: PathBuf,
    temporary: PathBuf,
    polled: PathBuf,
    downloaded: PathBuf,
}

impl Local {
    fn new(script: &ClientScript, dir: &Path) -> Self {
        let (csv, temporary) = script.local_files(dir);
        Self { csv, temporary, polled: dir.join("polled.json"), downloaded: dir.join("downloaded.json") }
    }
}

#[test]
fn openssh_sftp_batch_runs_the_conformance_script() {
    let f = conformance_setup().serve();
    let script = ClientScript::new("openssh-sftp");
    let local = Local::new(&script, &f.work("openssh-sftp"));
    let user = f.sftp(CONFORMANCE_LOGIN).checking_host_key(&known_hosts_file(&f.p));

    let out = user.sftp_batch(&format!("put {} {}\n", local.csv.display(), script.upload_path()));
    assert_success("sftp put", &out);
    // `sftp -b` exits non-zero when `get` fails: each poll is a fresh run,
    // as a cron script would do it.
    let receipt = poll_receipt(&local.polled, || {
        user.sftp_batch(&format!("get {} {}\n", script.receipt_path(), local.polled.display()))
    });
    script.check_receipt(&receipt);

    let out = user.sftp_batch(&format!(
        "ls -1 {dir}\nget {receipt} {downloaded}\nput {temporary} {remote_temporary}\nrm {remote_temporary}\n",
        dir = script.receipt_dir(),
        receipt = script.receipt_path(),
        downloaded = local.downloaded.display(),
        temporary = local.temporary.display(),
        remote_temporary = script.temporary_path(),
    ));
    assert_success("sftp ls, get, put, rm", &out);
    script.check_listing(&out.stdout);
    script.check_server(&f, &local.downloaded);
}

/// scp copies and nothing else: the listing and the deletion are sftp's,
/// in the same script.
#[test]
fn openssh_scp_runs_the_conformance_script() {
    let f = conformance_setup().serve();
    let script = ClientScript::new("openssh-scp");
    let local = Local::new(&script, &f.work("openssh-scp"));
    let user = f.sftp(CONFORMANCE_LOGIN).checking_host_key(&known_hosts_file(&f.p));
    let remote = |path: &str| format!("{{remote}}:{path}");

    assert_success("scp upload", &user.scp(&[&local.csv.display().to_string(), &remote(&script.upload_path())]));
    let receipt = poll_receipt(&local.polled, || {
        user.scp(&[&remote(&script.receipt_path()), &local.polled.display().to_string()])
    });
    script.check_receipt(&receipt);

    let out = user.sftp_batch(&format!("ls -1 {}\n", script.receipt_dir()));
    assert_success("sftp ls", &out);
    script.check_listing(&out.stdout);
    let out = user.scp(&[&remote(&script.receipt_path()), &local.downloaded.display().to_string()]);
    assert_success("scp download", &out);
    let out = user.scp(&[&local.temporary.display().to_string(), &remote(&script.temporary_path())]);
    assert_success("scp upload of the temporary", &out);
    assert_success("sftp rm", &user.sftp_batch(&format!("rm {}\n", script.temporary_path())));
    script.check_server(&f, &local.downloaded);
}

/// Strict checking is real: a known_hosts file of another server's keys
/// stops the client before it logs in.
#[test]
fn openssh_refuses_a_server_whose_key_is_not_in_known_hosts() {
    let f = conformance_setup().serve();
    let other = f.work("other-server");
    let public = passerelle_tests::ssh_keygen(&other, "other", "ed25519", None, "other");
    let key = std::fs::read_to_string(&public).expect("other key");
    let wrong = other.join("known_hosts");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {key}", f.p.sftp_port())).expect("write known_hosts");
    let user: SftpUser = f.sftp(CONFORMANCE_LOGIN).checking_host_key(&wrong);
    let out = user.sftp_batch("ls /inbox\n");
    assert!(!out.success(), "a client must not accept an unknown host key: {}", out.stdout);
    assert!(out.stderr.contains("Host key verification failed"), "{}", out.stderr);
}

/// `hostkey show --known-hosts` only reads: before the first start it
/// refuses (the data directory is not even created), and it does not guess
/// a host name for a wildcard listener.
#[test]
fn hostkey_show_known_hosts_creates_nothing_and_needs_a_host_for_a_wildcard() {
    let mut p = passerelle_tests::Passerelle::without_data_dir();
    let out = p.run(&["hostkey", "show", "--known-hosts"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no passerelle data directory") && out.stderr.contains("passerelle init"),
        "{}",
        out.stderr
    );
    assert!(!p.data_dir().exists(), "hostkey show --known-hosts created the data directory");

    p.ok(&["init"]); // creates the keys, as serve would
    p.set_env("PASSERELLE_SFTP_LISTEN", "0.0.0.0:22");
    let out = p.run(&["hostkey", "show", "--known-hosts"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--host"), "{}", out.stderr);
    let lines = p.ok(&["hostkey", "show", "--known-hosts", "--host", "sftp.example.com", "--host", "192.0.2.7"]);
    let keys: Vec<&str> = lines.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys.len(), 2, "{lines}");
    assert!(keys.iter().all(|l| l.starts_with("sftp.example.com,192.0.2.7 ssh-")), "{lines}");
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["hostkey", "show", "--known-hosts", "--host", "h", "--port", "2022", "--json"]))
            .expect("JSON");
    assert!(json[0]["known_hosts"].as_str().is_some_and(|l| l.starts_with("[h]:2022 ssh-ed25519 ")), "{json}");
}
