//! SSH handshakes that fail are visible: each is logged (with the address
//! and a sentence quoting what the client offered), audited (action
//! "handshake", outcome "failed") and counted in `/metrics` by reason,
//! never by address. Real OpenSSH clients asking for what the server does
//! not offer, and raw TCP clients that are not SSH, stop mid-way or stall.
//! A client that finished its key exchange and left before logging in, or
//! a TCP probe that sent nothing, is no handshake failure.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use passerelle_tests::{CONFORMANCE_LOGIN, Fixture, Outcome, bounded, conformance_setup, field, run_command, wait_for};

/// The login grace time of the server under test: the stalled client waits it out.
const GRACE_SECS: u64 = 3;

fn serve() -> Fixture {
    let grace = format!("{GRACE_SECS}s");
    // Failures from one source score protocol abuse; the defender stays
    // out of the way so that every case is seen, whatever their order.
    conformance_setup()
        .envs(&[("PASSERELLE_LIMITS_LOGIN_GRACE_TIME", &grace), ("PASSERELLE_DEFENDER_ENABLED", "false")])
        .serve()
}

/// `/metrics` of the running server.
fn metrics(f: &Fixture) -> String {
    let mut command = bounded("curl", 20);
    command.args(["-sS", &format!("http://127.0.0.1:{}/metrics", f.p.admin_port())]);
    let out: Outcome = run_command(&mut command, b"");
    assert!(out.success(), "curl /metrics: {}", out.stderr);
    out.stdout
}

/// The handshake failure counter of `reason` for SFTP, 0 when absent.
fn failures(metrics: &str, reason: &str) -> f64 {
    let series = format!(r#"passerelle_handshake_failures_total{{protocol="sftp",reason="{reason}"}} "#);
    metrics.lines().find_map(|line| line.strip_prefix(&series)?.parse().ok()).unwrap_or(0.0)
}

/// Runs `ssh` with `options` against the server, as a user that would log
/// in with its key; returns its outcome.
fn ssh_with(f: &Fixture, options: &[&str]) -> Outcome {
    let user = f.sftp(CONFORMANCE_LOGIN);
    let mut command = user.openssh("ssh");
    for option in options {
        command.args(["-o", option]);
    }
    command.args(["-p", &f.p.sftp_port().to_string(), &user.destination(), "true"]);
    run_command(&mut command, b"")
}

/// Connects, sends `bytes`, and waits (bounded) for the server to close.
fn raw_client(f: &Fixture, bytes: &[u8], hold: Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", f.p.sftp_port())).expect("connect");
    stream.set_read_timeout(Some(hold)).expect("read timeout");
    stream.write_all(bytes).expect("send");
    let mut sink = [0u8; 4096];
    // The server's identification line, then its KEXINIT; end of stream
    // (or the timeout) ends the loop, which reads at most 64 times.
    for _ in 0..64 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Waits for the failure of `reason` in the log and returns its JSON event.
fn logged(f: &mut Fixture, reason: &str) -> serde_json::Value {
    let needle = format!(r#""reason":"{reason}""#);
    let line = f.server.wait_for_line(&needle, Duration::from_secs(20));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The audit rows of failed handshakes, as `passerelle audit --json` prints them.
fn audited(f: &Fixture) -> Vec<serde_json::Value> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(&f.p.ok(&["audit", "--json"])).expect("audit JSON");
    rows.into_iter().filter(|r| r["action"] == "handshake" && r["outcome"] == "failed").collect()
}

#[test]
fn failed_handshakes_are_logged_audited_and_counted_by_reason() {
    let mut f = serve();
    // (what the client does, reason, the sentence's words)
    let out = ssh_with(&f, &["KexAlgorithms=diffie-hellman-group14-sha1"]);
    assert!(!out.success(), "no common key exchange must fail");
    let event = logged(&mut f, "no_common_key_exchange");
    let detail = field(&event, "detail").unwrap_or_default().to_owned();
    assert_eq!(detail, "no common key exchange: client offers diffie-hellman-group14-sha1 only", "{event}");
    assert!(field(&event, "peer").unwrap_or_default().starts_with("127.0.0.1:"), "{event}");

    assert!(!ssh_with(&f, &["Ciphers=aes128-cbc"]).success());
    let event = logged(&mut f, "no_common_cipher");
    assert_eq!(event["detail"], "no common cipher: client offers aes128-cbc only", "{event}");

    assert!(!ssh_with(&f, &["HostKeyAlgorithms=ssh-dss"]).success());
    let event = logged(&mut f, "no_common_signature");
    assert_eq!(event["detail"], "no common host key algorithm: client offers ssh-dss only", "{event}");

    raw_client(&f, b"GET / HTTP/1.1\r\nHost: sftp\r\n\r\n", Duration::from_secs(10));
    let event = logged(&mut f, "not_the_protocol");
    assert_eq!(
        event["detail"],
        r#"client sent no SSH identification line: it began with "GET / HTTP/1.1\r\nHost: sftp\r\n\r\n""#,
        "{event}"
    );

    raw_client(&f, b"SSH-1.5-OldClient\r\n", Duration::from_secs(10));
    let event = logged(&mut f, "no_common_version");
    assert_eq!(event["detail"], r#"client speaks SSH-1 only ("SSH-1.5-OldClient")"#, "{event}");

    // Identification, then gone before its KEXINIT.
    raw_client(&f, b"SSH-2.0-Quitter_1.0\r\n", Duration::from_millis(300));
    let event = logged(&mut f, "closed_during_handshake");
    assert!(field(&event, "detail").unwrap_or_default().contains("no KEXINIT"), "{event}");

    // Identification, then silence until the login grace time cuts it.
    raw_client(&f, b"SSH-2.0-Staller_1.0\r\n", Duration::from_secs(GRACE_SECS + 10));
    let event = logged(&mut f, "timeout");
    assert!(field(&event, "detail").unwrap_or_default().contains("login grace time"), "{event}");

    // Not failures: a finished key exchange without a login (the client
    // asks for a method the server does not offer), and a TCP probe.
    let mut command = bounded("ssh", 30);
    command.args(["-p", &f.p.sftp_port().to_string()]);
    for option in [
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "IdentityAgent=none",
        "PreferredAuthentications=keyboard-interactive",
    ] {
        command.args(["-o", option]);
    }
    let out = run_command(command.args([&format!("{CONFORMANCE_LOGIN}@127.0.0.1"), "true"]), b"");
    assert!(out.stderr.contains("Permission denied"), "the key exchange must succeed: {}", out.stderr);
    drop(TcpStream::connect(("127.0.0.1", f.p.sftp_port())).expect("connect"));

    let expected = [
        "no_common_key_exchange",
        "no_common_cipher",
        "no_common_signature",
        "not_the_protocol",
        "no_common_version",
        "closed_during_handshake",
        "timeout",
    ];
    // The audit writer is asynchronous: wait for every row.
    let rows = wait_for(Duration::from_secs(10), || {
        let rows = audited(&f);
        (rows.len() >= expected.len()).then_some(rows)
    })
    .unwrap_or_else(|| panic!("audit rows missing: {:#?}", audited(&f)));
    for reason in expected {
        let row = rows
            .iter()
            .find(|r| r["detail"].as_str().is_some_and(|d| d.ends_with(&format!("({reason})"))))
            .unwrap_or_else(|| panic!("no audit row for {reason}: {rows:#?}"));
        assert_eq!(row["protocol"], "sftp", "{row}");
        assert_eq!(row["ip"], "127.0.0.1", "{row}");
    }

    // Give the last two connections time to be handled, then count.
    std::thread::sleep(Duration::from_millis(500));
    let metrics = metrics(&f);
    for reason in expected {
        assert_eq!(failures(&metrics, reason), 1.0, "{reason} counted once:\n{metrics}");
    }
    let counted: Vec<&str> = metrics.lines().filter(|l| l.starts_with("passerelle_handshake_failures_total")).collect();
    assert_eq!(counted.len(), expected.len(), "nothing else counted: {counted:#?}");
    assert!(counted.iter().all(|l| !l.contains("127.0.0.1")), "an address in the metric: {counted:#?}");
    assert_eq!(audited(&f).len(), expected.len(), "nothing else audited");
}

/// With `sftp.libssh2_compat` the server offers AES-CTR, which needs a MAC:
/// a client whose MACs are all SHA-1 is told so.
#[test]
fn no_common_mac_names_the_clients_macs() {
    let mut f = conformance_setup().envs(&[("PASSERELLE_SFTP_LIBSSH2_COMPAT", "true")]).serve();
    let out = ssh_with(&f, &["Ciphers=aes128-ctr", "MACs=hmac-sha1,hmac-sha1-etm@openssh.com"]);
    assert!(!out.success(), "no common MAC must fail");
    let event = logged(&mut f, "no_common_mac");
    assert_eq!(
        field(&event, "detail"),
        Some("no common MAC: client offers hmac-sha1, hmac-sha1-etm@openssh.com"),
        "{event}"
    );
    assert_eq!(failures(&metrics(&f), "no_common_mac"), 1.0);
}
