//! FTPS with the clients customers use — curl (implicit `ftps://` and explicit
//! `ftp://` with `--ssl-reqd`), lftp, and the suppaftp library — against the
//! same tenant tree and audit trail as SFTP: upload, list, download, rename,
//! delete, mkdir and rmdir in `/inbox`, byte for byte; the upload-completed
//! event of every committed upload; REST for downloads; APPE and REST before
//! STOR refused, since uploads are atomic.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use passerelle_tests::{Fixture, Setup, bounded, field, random_file, run_command, sha256sum, wait_for_audit};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

// Files that a test expects to stay in /inbox carry a temporary-looking name
// (`.part`, `.tmp`): the import pipeline takes every other completed file.

fn start() -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).ftps().serve()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn curl_implicit_and_explicit_upload_list_download_rename_delete_mkdir() {
    let mut f = start();
    let alice = f.ftps("alice");
    let work = f.work("curl");
    let local = work.join("big.bin");
    random_file(&local, 3 * 1024 * 1024 + 17);
    let l = local.display().to_string();

    // Implicit: upload.
    let out = alice.curl(&["-T", &l, "{implicit}/inbox/big.bin.part"]);
    assert!(out.success(), "implicit upload: {}", out.stderr);
    assert_eq!(read(&f.inbox("acme").join("big.bin.part")), read(&local));
    let event = f.server.wait_for_upload_completed("/inbox/big.bin.part", Duration::from_secs(10));
    assert_eq!(field(&event, "sha256"), Some(sha256sum(&local).as_str()), "{event}");

    // A refused upload is reported as such (curl: 25, the server's 550), on both ports.
    for port in ["{implicit}", "{explicit}"] {
        let out = alice.curl(&["-T", &l, &format!("{port}/outbox/refused.bin")]);
        assert_eq!(out.code, 25, "upload to /outbox via {port}: {}", out.stderr);
        assert!(out.stderr.contains("550"), "{}", out.stderr);
    }

    // Explicit: list, download, mkdir, rename, delete.
    let out = alice.curl(&["{explicit}/inbox/"]);
    assert!(out.success(), "explicit list: {}", out.stderr);
    assert!(out.stdout.lines().any(|l| l.ends_with(" big.bin.part") && l.contains("3145745")), "{}", out.stdout);
    let down = work.join("down.bin");
    let out = alice.curl(&["-o", &down.display().to_string(), "{explicit}/inbox/big.bin.part"]);
    assert!(out.success(), "explicit download: {}", out.stderr);
    assert_eq!(sha256sum(&down), sha256sum(&local));
    let out = alice.curl(&[
        "-Q",
        "MKD /inbox/sub",
        "-Q",
        "RNFR /inbox/big.bin.part",
        "-Q",
        "RNTO /inbox/sub/moved.tmp",
        "{explicit}/inbox/sub/",
    ]);
    assert!(out.success(), "mkdir + rename: {}", out.stderr);
    assert!(out.stdout.contains("moved.tmp"), "{}", out.stdout);
    assert!(f.inbox("acme").join("sub/moved.tmp").is_file() && !f.inbox("acme").join("big.bin.part").exists());
    let out =
        alice.curl(&["-Q", "DELE /inbox/sub/moved.tmp", "-Q", "RMD /inbox/sub", "--list-only", "{implicit}/inbox/"]);
    assert!(out.success(), "delete + rmdir: {}", out.stderr);
    assert!(!f.inbox("acme").join("sub").exists());

    // The same audit trail as SFTP, tagged ftps.
    wait_for_audit(&f.p, "ftps rename", |r| {
        r.action == "rename" && r.outcome == "ok" && r.path == "/inbox/big.bin.part"
    });
    wait_for_audit(&f.p, "ftps delete", |r| r.action == "delete" && r.path == "/inbox/sub/moved.tmp");
    wait_for_audit(&f.p, "ftps download", |r| r.action == "download" && r.bytes == Some(3 * 1024 * 1024 + 17));
    let out = f.p.ok(&["audit", "--json"]);
    assert!(out.contains("\"ftps\""), "audit rows carry the protocol: {out}");
}

#[test]
fn lftp_put_ls_get_mv_rm_mkdir_rmdir() {
    let f = start();
    let alice = f.ftps("alice");
    let work = f.work("lftp");
    let local = work.join("payroll.csv");
    std::fs::write(&local, "id;name\n1;Zoë\n2;Ana\n").expect("csv");
    let down = work.join("back.csv");
    let script = format!(
        "cd inbox; put {} -o payroll.csv.part; mkdir archive; mv payroll.csv.part archive/p.tmp; ls archive; \
         get archive/p.tmp -o {}; rm archive/p.tmp; rmdir archive; ls",
        local.display(),
        down.display()
    );
    let out = alice.lftp(&script);
    assert!(out.success(), "lftp: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("p.tmp"), "{}", out.stdout);
    assert_eq!(read(&down), read(&local));
    assert!(std::fs::read_dir(f.inbox("acme")).expect("inbox").next().is_none(), "inbox not empty after rm/rmdir");
}

#[test]
fn suppaftp_binary_mode_upload_list_download() {
    let f = start();
    let report = suppaftp_session(f.ftps_ports().explicit, &f.p.layout().tls_cert());
    assert_eq!(report.listing.iter().filter(|l| l.contains("lib.bin.part")).count(), 1, "{:?}", report.listing);
    assert_eq!(report.downloaded, report.uploaded);
    assert_eq!(read(&f.inbox("acme").join("lib.bin.part")), report.uploaded);
}

/// What the suppaftp session did.
struct SuppaReport {
    uploaded: Vec<u8>,
    listing: Vec<String>,
    downloaded: Vec<u8>,
}

/// Explicit FTPS with suppaftp over rustls (aws-lc-rs), trusting the
/// server's self-signed certificate.
fn suppaftp_session(port: u16, cert: &Path) -> SuppaReport {
    use std::io::Cursor;
    use std::sync::Arc;

    use suppaftp::rustls::ClientConfig;
    use suppaftp::rustls::pki_types::CertificateDer;
    use suppaftp::rustls::pki_types::pem::PemObject as _;
    use suppaftp::types::FileType;
    use suppaftp::{RustlsConnector, RustlsFtpStream};

    let mut roots = suppaftp::rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(der.expect("cert")).expect("trusted cert");
    }
    let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = RustlsConnector::from(Arc::new(config));
    let plain = RustlsFtpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut ftp = plain.into_secure(connector, "127.0.0.1").expect("AUTH TLS");
    ftp.login("alice", PASSWORD).expect("login");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    let uploaded: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).chain(*b"\r\n\n\r").collect();
    ftp.cwd("/inbox").expect("cwd");
    ftp.put_file("lib.bin.part", &mut Cursor::new(uploaded.clone())).expect("put");
    let listing = ftp.list(None).expect("list");
    let downloaded = ftp.retr_as_buffer("lib.bin.part").expect("retr").into_inner();
    ftp.quit().expect("quit");
    SuppaReport { uploaded, listing, downloaded }
}

#[test]
fn an_uploaded_csv_emits_upload_completed_with_its_digest() {
    let mut f = start();
    let alice = f.ftps("alice");
    let local = f.work("event").join("employees.csv");
    std::fs::write(&local, "employee_id;email\n1;a@example.com\n").expect("csv");
    let out = alice.curl(&["-T", &local.display().to_string(), "{explicit}/inbox/employees.csv"]);
    assert!(out.success(), "{}", out.stderr);
    let event = f.server.wait_for_upload_completed("/inbox/employees.csv", Duration::from_secs(10));
    assert_eq!(field(&event, "tenant"), Some("acme"));
    assert_eq!(field(&event, "login"), Some("alice"));
    assert_eq!(field(&event, "sha256"), Some(sha256sum(&local).as_str()));
    wait_for_audit(&f.p, "the upload", |r| r.action == "upload" && r.outcome == "ok");
}

#[test]
fn rest_resumes_downloads_but_append_and_rest_before_stor_are_refused() {
    let f = start();
    std::fs::write(f.inbox("acme").join("data.txt.part"), "0123456789").expect("seed");
    let alice = f.ftps("alice");
    let report = alice.script(json!({"ops": [
        {"op": "get", "remote": "/inbox/data.txt.part", "offset": 4},
        {"op": "raw", "line": "APPE /inbox/data.txt.part"},
        {"op": "raw", "line": "REST 3"},
        {"op": "put", "remote": "/inbox/data.txt.part", "data": "xyz"},
        {"op": "get", "remote": "/inbox/data.txt.part"},
    ]}));
    assert_eq!(report["auth"], "ok", "{report}");
    let r = &report["results"];
    assert_eq!(r[0]["value"]["head"], "456789", "{report}");
    assert_eq!(r[1]["code"], 502, "APPE: {report}");
    assert!(r[1]["reply"].as_str().unwrap_or_default().contains("atomic"), "{report}");
    assert_eq!(r[2]["code"], 350, "{report}");
    assert_eq!(r[3]["code"], 504, "REST before STOR: {report}");
    assert_eq!(r[4]["value"]["head"], "0123456789", "the file is untouched: {report}");
    // curl's own append is refused the same way.
    let local = f.work("append").join("more.txt");
    std::fs::write(&local, "more").expect("more");
    let out = alice.curl(&["--append", "-T", &local.display().to_string(), "{explicit}/inbox/data.txt.part"]);
    assert!(!out.success(), "append must fail");
    assert_eq!(read(&f.inbox("acme").join("data.txt.part")), b"0123456789");
}

/// The SHA-256 fingerprint of the certificate served on `port` (implicit FTPS).
fn served_fingerprint(port: u16) -> String {
    let mut s_client = bounded("openssl", 20);
    s_client.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    let out = run_command(&mut s_client, b"");
    let mut x509 = bounded("openssl", 20);
    x509.args(["x509", "-noout", "-fingerprint", "-sha256"]);
    let fingerprint = run_command(&mut x509, out.stdout.as_bytes());
    assert!(fingerprint.success(), "no certificate served: {}\n{}", out.stdout, fingerprint.stderr);
    fingerprint.stdout.trim().to_owned()
}

fn file_fingerprint(cert: &Path) -> String {
    let mut x509 = bounded("openssl", 20);
    x509.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(cert);
    run_command(&mut x509, b"").stdout.trim().to_owned()
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_if_the_new_is_broken() {
    let mut f = start();
    let (cert, key) = (f.p.layout().tls_cert(), f.p.layout().tls_key());
    let first = served_fingerprint(f.ftps_ports().implicit);
    assert_eq!(first, file_fingerprint(&cert));
    renew_pair(&cert, &key, "renewed");
    f.server.signal(rustix::process::Signal::HUP);
    f.server.wait_for_line("certificate reloaded", Duration::from_secs(10));
    let renewed = served_fingerprint(f.ftps_ports().implicit);
    assert_ne!(renewed, first);
    assert_eq!(renewed, file_fingerprint(&cert));
    // A key that does not match: refused, the renewed pair stays in use.
    let other = f.work("other");
    let mut req = bounded("openssl", 30);
    req.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=other", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(other.join("cert.pem"));
    assert!(run_command(&mut req, b"").success());
    f.server.signal(rustix::process::Signal::HUP);
    f.server.wait_for_line("certificate not reloaded", Duration::from_secs(10));
    assert_eq!(served_fingerprint(f.ftps_ports().implicit), renewed);
    let out = f.ftps("alice").curl(&["-k", "--list-only", "{implicit}/inbox/"]);
    assert!(out.success(), "still serving: {}", out.stderr);
}

/// A new self-signed pair for 127.0.0.1 written over `cert` and `key`.
fn renew_pair(cert: &Path, key: &Path, name: &str) {
    let mut req = bounded("openssl", 30);
    req.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert);
    let out = run_command(&mut req, b"");
    assert!(out.success(), "openssl req: {}", out.stderr);
}

#[test]
fn sighup_checks_the_key_file_as_at_start() {
    let mut f = start();
    let (cert, key) = (f.p.layout().tls_cert(), f.p.layout().tls_key());
    let first = served_fingerprint(f.ftps_ports().implicit);
    // A renewed pair whose key file others can read: refused, and said why.
    renew_pair(&cert, &key, "renewed");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");
    f.server.signal(rustix::process::Signal::HUP);
    let refused = f.server.wait_for_line("certificate not reloaded", Duration::from_secs(10));
    assert!(refused.contains("0644") && refused.contains("chmod 600"), "{refused}");
    assert_eq!(served_fingerprint(f.ftps_ports().implicit), first, "the old certificate must stay in use");
    // Permissions fixed: the next SIGHUP serves the new pair.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    f.server.signal(rustix::process::Signal::HUP);
    f.server.wait_for_line("certificate reloaded", Duration::from_secs(10));
    assert_eq!(served_fingerprint(f.ftps_ports().implicit), file_fingerprint(&cert));
}

#[test]
fn abor_stops_a_download_and_the_session_goes_on() {
    let f = start();
    random_file(&f.inbox("acme").join("huge.bin.part"), 64 * 1024 * 1024);
    let report = f.ftps("alice").script(json!({"ops": [
        {"op": "abort_get", "remote": "/inbox/huge.bin.part"},
        {"op": "raw", "line": "NOOP"},
        {"op": "get", "remote": "/inbox/huge.bin.part", "offset": 64 * 1024 * 1024 - 3},
    ]}));
    let results = report["results"].as_array().expect("results");
    assert_eq!(results[0]["value"]["codes"], json!([426, 226]), "{report}");
    assert_eq!(results[1]["code"], 200, "{report}");
    assert_eq!(results[2]["value"]["size"], 3, "{report}");
    wait_for_audit(&f.p, "interrupted download", |r| r.action == "download" && r.outcome == "failed");
}

#[test]
fn an_uploaded_csv_reaches_the_import_pipeline_as_over_sftp() {
    let f = start();
    let profile = passerelle_tests::DEMO_PROFILE;
    let out = f.p.run_with_stdin(&["profile", "set", "acme", "-"], profile);
    assert!(out.success(), "profile set: {}", out.stderr);
    let local = f.work("import").join("2026-11.csv");
    std::fs::write(
        &local,
        "employee_id;email;hired_on;salary\n1;ada@example.com;10/12/2025;4200,50\n2;bo@example.com;01/02/2024;3100\n",
    )
    .expect("csv");
    let alice = f.ftps("alice");
    let out = alice.curl(&[
        "--ftp-create-dirs",
        "-T",
        &local.display().to_string(),
        "{explicit}/inbox/employees/2026-11.csv",
    ]);
    assert!(out.success(), "upload: {}", out.stderr);
    let on_disk = f.outbox("acme").join("employees/2026-11.csv.result.json");
    passerelle_tests::wait_for(Duration::from_secs(60), || on_disk.exists().then_some(()))
        .unwrap_or_else(|| panic!("no receipt; jobs: {}", f.p.ok(&["import", "list"])));
    let out = alice.curl(&["{implicit}/outbox/employees/2026-11.csv.result.json"]);
    assert!(out.success(), "receipt download: {}", out.stderr);
    let receipt: serde_json::Value = serde_json::from_str(&out.stdout).expect("receipt JSON");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["rows"], 2, "{receipt}");
    assert_eq!(receipt["sha256"], sha256sum(&local), "{receipt}");
}
