//! Failed FTPS handshakes are visible: each real client that cannot agree
//! with the server (an old TLS version, a suite the server lacks, no
//! extended master secret, a certificate it does not trust, plain FTP on the
//! implicit port or on a data connection) leaves an audit row (action `handshake`) with a reason an
//! operator can act on, a warning in the log, and a count in
//! `passerelle_handshake_failures_total{protocol="ftps",reason=...}`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use passerelle_tests::{
    CONFORMANCE_LOGIN, Fixture, Outcome, bounded, conformance_setup, run_command, wait_for, wait_for_audit,
};

/// `openssl s_client` to the implicit port with `args`; `stdin` is what it sends.
fn s_client(f: &Fixture, args: &[&str]) -> Outcome {
    let mut command = bounded("openssl", 20);
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", f.ftps_ports().implicit), "-servername", "localhost"])
        .args(args);
    run_command(&mut command, b"QUIT\r\n")
}

/// The value of `passerelle_handshake_failures_total` for `reason`, once
/// it is there.
fn failures(f: &Fixture, reason: &str) -> f64 {
    let series = format!(r#"passerelle_handshake_failures_total{{protocol="ftps",reason="{reason}"}}"#);
    wait_for(Duration::from_secs(10), || {
        let mut command = bounded("curl", 20);
        command.args(["-sS", &format!("http://127.0.0.1:{}/metrics", f.p.admin_port())]);
        let metrics = run_command(&mut command, b"").stdout;
        metrics.lines().find_map(|line| line.strip_prefix(&series)?.strip_prefix(' ')?.parse().ok())
    })
    .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// The audit row, warning and count of one failure for `reason`, whose
/// sentence contains `words`.
fn assert_reported(f: &mut Fixture, reason: &str, words: &str) {
    let row = wait_for_audit(&f.p, reason, |r| {
        r.protocol == "ftps" && r.action == "handshake" && r.detail.ends_with(&format!("({reason})"))
    });
    assert_eq!(row.outcome, "failed");
    assert!(row.detail.contains(words), "{row:?}");
    let warnings = f
        .server
        .json_events("ftps: handshake failed (repeats from this source are counted for a minute, then summarised)");
    assert!(
        warnings.iter().any(|w| w["fields"]["reason"] == reason || w["reason"] == reason),
        "no warning for {reason}: {warnings:?}"
    );
    assert!(failures(f, reason) >= 1.0);
}

/// A self-signed certificate of another server, for a client that trusts
/// only it.
fn other_ca(dir: &Path) -> String {
    let (cert, key) = (dir.join("other.pem"), dir.join("other.key"));
    let mut command = bounded("openssl", 20);
    command
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let out = run_command(&mut command, b"");
    assert!(out.success(), "{}", out.stderr);
    cert.display().to_string()
}

#[test]
fn failed_ftps_handshakes_are_audited_logged_and_counted_by_reason() {
    let mut f = conformance_setup().serve();

    // TLS 1.1 only (OpenSSL 3 needs security level 0 to offer it at all).
    let out = s_client(&f, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!out.success(), "TLS 1.1 accepted: {}", out.stdout);
    assert_reported(&mut f, "no_common_version", "TLS 1.0/1.1");

    // TLS 1.2 with CBC suites only.
    let out = s_client(&f, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"]);
    assert!(!out.success(), "CBC accepted: {}", out.stdout);
    assert_reported(&mut f, "no_common_cipher", "ECDHE AEAD");

    // A client that trusts another CA, and says so with an alert.
    let ca = other_ca(&f.work("other-ca"));
    let out = s_client(&f, &["-tls1_2", "-CAfile", &ca, "-verify_return_error"]);
    assert!(!out.success(), "the wrong CA was accepted: {}", out.stdout);
    assert_reported(&mut f, "client_rejected_server", "unknown CA");

    // A logged-in client that opens its data connection without TLS, then
    // closes it.
    let report = f.ftps(CONFORMANCE_LOGIN).script(json!({
        "mode": "explicit", "data_tls": false, "ops": [{"op": "list", "cmd": "NLST", "path": "/inbox"}]
    }));
    assert_eq!(report["results"][0]["ok"], false, "{report}");
    assert_reported(&mut f, "closed_during_handshake", "data connection: client closed the connection during the TLS");

    // Plain FTP on the implicit port.
    let mut plain = TcpStream::connect(("127.0.0.1", f.ftps_ports().implicit)).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    plain.write_all(b"USER alice\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert_reported(&mut f, "not_the_protocol", "did not speak TLS");

    // Go before 1.21 (Debian 12's rclone 1.60): no extended master secret,
    // refused by default (`ftps.require_extended_master_secret`).
    let user = f.ftps(CONFORMANCE_LOGIN);
    let obscure = run_command(bounded("/usr/bin/rclone", 20).args(["obscure", &user.password]), b"");
    let mut command = bounded("/usr/bin/rclone", 60);
    command
        .env("RCLONE_CONFIG", user.scratch.join("rclone.conf"))
        .env("SSL_CERT_FILE", &user.cert)
        .args(["--low-level-retries", "1", "--retries", "1", "--contimeout", "10s", "lsf"])
        .arg(format!(
            ":ftp,host=127.0.0.1,port={},user={},pass={},tls=true:inbox",
            user.ports.implicit,
            user.login,
            obscure.stdout.trim()
        ));
    let out = run_command(&mut command, b"");
    assert!(!out.success(), "rclone 1.60 got in with EMS required: {}", out.stdout);
    assert!(out.stderr.contains("handshake failure"), "{}", out.stderr);
    assert_reported(&mut f, "no_extended_master_secret", "ftps.require_extended_master_secret");

    // The same source and reason again within the minute: counted, not
    // logged or audited again.
    let before = failures(&f, "no_common_cipher");
    let out = s_client(&f, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"]);
    assert!(!out.success());
    assert!(wait_for(Duration::from_secs(10), || (failures(&f, "no_common_cipher") > before).then_some(())).is_some());
    let rows = passerelle_tests::audit_rows(&f.p);
    assert_eq!(rows.iter().filter(|r| r.detail.ends_with("(no_common_cipher)")).count(), 1, "{rows:#?}");
}
