//! What FTPS refuses, proved with real clients: TLS other than 1.2, suites
//! other than ECDHE + AEAD, anything but FEAT/AUTH/HELP/NOOP/QUIT in the clear
//! (USER gets 530 before a password could be sent), PROT C, CCC, active mode,
//! data connections from another address, without TLS or without resuming
//! the control connection's TLS session; malformed and 100 KB command lines
//! get an error, not a crash; a client killed mid-upload leaves no file and
//! no upload event.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use passerelle_tests::{
    Fixture, Outcome, Setup, audit_rows, bounded, entry_names, on_path, random_file, run_command, wait_for,
    wait_for_audit,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

fn start() -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).ftps().serve()
}

/// The server is up, did not panic and still serves a login.
fn assert_healthy(f: &mut Fixture) {
    assert!(f.server.is_running(), "the server died:\n{}", f.server.output());
    let report = f.ftps("alice").script(json!({"ops": [{"op": "raw", "line": "NOOP"}]}));
    assert_eq!(report["auth"], "ok", "no login afterwards: {report}");
    assert!(!f.server.output().contains("panicked"), "the server panicked:\n{}", f.server.output());
}

/// `openssl s_client` against the implicit port (or explicit with STARTTLS) with `args`.
fn s_client(port: u16, explicit: bool, args: &[&str]) -> Outcome {
    let mut command = bounded("openssl", 20);
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    if explicit {
        command.args(["-starttls", "ftp"]);
    }
    command.args(args);
    run_command(&mut command, b"QUIT\r\n")
}

/// Whether `s_client` completed a handshake.
fn handshake_done(out: &Outcome) -> bool {
    out.stdout.contains("Cipher is ") && !out.stdout.contains("Cipher is (NONE)")
}

#[test]
fn only_tls_1_2_with_ecdhe_aead_and_extended_master_secret() {
    let f = start();
    for (port, explicit) in [(f.ftps_ports().implicit, false), (f.ftps_ports().explicit, true)] {
        let ok = s_client(port, explicit, &["-tls1_2"]);
        assert!(handshake_done(&ok), "TLS 1.2 must work on {port}: {}\n{}", ok.stdout, ok.stderr);
        assert!(ok.stdout.contains("Extended master secret: yes"), "{}", ok.stdout);
        for refused in [
            vec!["-tls1_3"],
            vec!["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            vec!["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
            // Static RSA key exchange, CBC, and DHE (not elliptic): all refused.
            vec!["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-SHA"],
            vec!["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA384"],
            vec!["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
        ] {
            let out = s_client(port, explicit, &refused);
            assert!(!handshake_done(&out), "{refused:?} must fail on {port}:\n{}", out.stdout);
        }
    }
}

#[test]
fn testssl_shows_only_tls_1_2_and_ecdhe_aead_suites_on_both_ports() {
    assert!(on_path("testssl"), "testssl (Debian package testssl.sh) must be installed (scripts/test installs it)");
    // A scan opens hundreds of connections a second from one address: over
    // limits.connection_rate, most would be closed at accept.
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .ftps()
        .envs(&[("PASSERELLE_LIMITS_CONNECTION_RATE", "100000"), ("PASSERELLE_LIMITS_CONNECTION_BURST", "100000")])
        .serve();
    let scans = [(f.ftps_ports().implicit, None), (f.ftps_ports().explicit, Some("ftp"))];
    let handles: Vec<_> = scans
        .into_iter()
        .map(|(port, starttls)| {
            let json = f.p.scratch().join(format!("testssl-{port}.json"));
            let mut command = bounded("testssl", 240);
            command.args(["--quiet", "--color", "0", "--warnings", "off", "-p", "-E", "-oj"]).arg(&json);
            if let Some(protocol) = starttls {
                command.args(["--starttls", protocol]);
            }
            command.arg(format!("127.0.0.1:{port}"));
            std::thread::spawn(move || (port, run_command(&mut command, b""), json))
        })
        .collect();
    for handle in handles {
        let (port, out, json) = handle.join().expect("testssl thread");
        let text = std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("testssl wrote no report for {port} ({e}): {}\n{}", out.stdout, out.stderr));
        let findings: Vec<Value> = serde_json::from_str(&text).expect("testssl JSON");
        let finding = |id: &str| {
            findings.iter().find(|f| f["id"] == id).and_then(|f| f["finding"].as_str()).unwrap_or("").to_owned()
        };
        assert_eq!(finding("TLS1_2"), "offered", "port {port}: {text}");
        for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_3"] {
            let found = finding(old);
            assert!(!found.is_empty() && !found.starts_with("offered"), "port {port}: {old} is {found:?}");
        }
        let ciphers: Vec<String> = findings
            .iter()
            .filter(|f| f["id"].as_str().is_some_and(|id| id.starts_with("cipher-")))
            .map(|f| f["finding"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(!ciphers.is_empty(), "port {port}: no cipher found: {text}");
        for cipher in &ciphers {
            assert!(cipher.starts_with("TLS 1.2"), "port {port}: {cipher}");
            assert!(cipher.contains("TLS_ECDHE_"), "port {port}: not ECDHE: {cipher}");
            assert!(
                cipher.contains("_GCM_") || cipher.contains("CHACHA20_POLY1305"),
                "port {port}: not AEAD: {cipher}"
            );
        }
    }
}

/// A plain TCP control connection to the explicit port, lines in and out.
struct Clear {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Clear {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut clear = Self { stream, reader };
        let greeting = clear.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        clear
    }

    fn send(&mut self, line: &[u8]) -> String {
        self.stream.write_all(line).expect("send");
        self.stream.write_all(b"\r\n").expect("send");
        self.reply()
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("reply");
            assert!(!line.is_empty(), "connection closed; so far: {all}");
            all.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
                return all;
            }
        }
    }
}

#[test]
fn before_auth_tls_only_feat_auth_help_noop_quit_and_no_password_is_read() {
    let f = start();
    let mut clear = Clear::connect(f.ftps_ports().explicit);
    assert!(clear.send(b"USER alice").starts_with("530"));
    assert!(clear.send(format!("PASS {PASSWORD}").as_bytes()).starts_with("530"));
    for verb in ["PASV", "EPSV", "LIST", "RETR /inbox/x", "STOR /inbox/x", "PBSZ 0", "PROT P", "CWD /inbox"] {
        assert!(clear.send(verb.as_bytes()).starts_with("530"), "{verb} in the clear");
    }
    let feat = clear.send(b"FEAT");
    assert!(feat.starts_with("211-") && feat.contains("AUTH TLS"), "{feat}");
    assert!(clear.send(b"NOOP").starts_with("200"));
    assert!(clear.send(b"HELP").starts_with("214"));
    assert!(clear.send(b"AUTH KERBEROS").starts_with("504"));
    assert!(clear.send(b"QUIT").starts_with("221"));
    std::thread::sleep(Duration::from_millis(500));
    let rows = audit_rows(&f.p);
    assert!(!rows.iter().any(|r| r.action == "login"), "a clear-text login was attempted: {rows:#?}");
    // curl without TLS: refused, nothing transferred.
    let out = Outcome::from(
        bounded("curl", 30)
            .args([
                "-sS",
                "-u",
                &format!("alice:{PASSWORD}"),
                &format!("ftp://127.0.0.1:{}/inbox/", f.ftps_ports().explicit),
            ])
            .output()
            .expect("curl"),
    );
    assert!(!out.success(), "plain FTP must fail: {}", out.stdout);
}

#[test]
fn prot_c_ccc_and_active_mode_are_refused_and_curl_ftp_ssl_control_moves_no_data() {
    let f = start();
    let alice = f.ftps("alice");
    let report = alice.script(json!({"mode": "implicit", "ops": [
        {"op": "raw", "line": "PROT C"},
        {"op": "raw", "line": "PROT S"},
        {"op": "raw", "line": "CCC"},
        {"op": "raw", "line": "PORT 127,0,0,1,200,1"},
        {"op": "raw", "line": "EPRT |1|127.0.0.1|51201|"},
        {"op": "raw", "line": "EPSV ALL"},
        {"op": "raw", "line": "PASV"},
        {"op": "raw", "line": "NOOP"},
    ]}));
    assert_eq!(report["auth"], "ok", "{report}");
    let codes: Vec<i64> =
        report["results"].as_array().expect("results").iter().map(|r| r["code"].as_i64().unwrap_or(0)).collect();
    assert_eq!(codes, [536, 536, 534, 502, 502, 200, 503, 200], "{report}");

    let local = f.p.scratch().join("clear.csv");
    std::fs::write(&local, "secret;data\n").expect("local");
    let out = alice.curl(&["--ftp-ssl-control", "-T", &local.display().to_string(), "{explicit}/inbox/clear.csv"]);
    assert!(!out.success(), "a PROT C upload must fail: {}", out.stdout);
    let out = alice.curl(&["--ftp-ssl-control", "{explicit}/inbox/"]);
    assert!(!out.success(), "a PROT C listing must fail: {}", out.stdout);
    assert!(entry_names(&f.inbox("acme")).is_empty(), "{:?}", entry_names(&f.inbox("acme")));
}

#[test]
fn data_connections_from_another_address_in_clear_or_without_session_reuse_are_refused() {
    let mut f = start();
    let alice = f.ftps("alice");
    // From another address: closed at once, and the port waits on for the
    // client (30 s) before the transfer fails.
    let report = alice.script(json!({"data_source": "127.0.0.2", "timeout": 45, "ops": [
        {"op": "put", "remote": "/inbox/stolen.csv", "data": "a;b\n"},
        {"op": "raw", "line": "NOOP"},
    ]}));
    assert_eq!(report["auth"], "ok", "from 127.0.0.2: {report}");
    assert_eq!(report["results"][0]["code"], 425, "from 127.0.0.2: upload accepted: {report}");
    assert_eq!(report["results"][1]["code"], 200, "from 127.0.0.2: the control connection goes on: {report}");
    for (what, plan) in [
        ("without TLS", json!({"data_tls": false})),
        ("without resuming the control session", json!({"reuse": false})),
        ("resuming another control connection's session", json!({"foreign": true})),
    ] {
        let mut plan = plan;
        let foreign = plan["foreign"] == true;
        plan["ops"] = json!([
            {"op": if foreign { "foreign_session" } else { "raw" }, "line": "NOOP"},
            {"op": "put", "remote": "/inbox/stolen.csv", "data": "a;b\n"},
            {"op": "list", "cmd": "NLST", "path": "/inbox"},
            {"op": "raw", "line": "NOOP"},
        ]);
        let report = alice.script(plan);
        assert_eq!(report["auth"], "ok", "{what}: {report}");
        let results = report["results"].as_array().expect("results");
        assert_eq!(results[0]["ok"], true, "{what}: {report}");
        assert_eq!(results[1]["ok"], false, "{what}: upload accepted: {report}");
        assert_eq!(results[1]["code"], 425, "{what}: {report}");
        if what.contains("session") {
            let reply = results[1]["reply"].as_str().unwrap_or_default();
            assert!(reply.contains("did not resume the control connection's TLS session"), "{what}: {report}");
        }
        assert_eq!(results[2]["ok"], false, "{what}: listing sent: {report}");
        assert_eq!(results[3]["code"], 200, "{what}: the control connection goes on: {report}");
    }
    assert!(entry_names(&f.inbox("acme")).is_empty(), "{:?}", entry_names(&f.inbox("acme")));
    // The same client resuming from the right address works.
    let report = alice.script(json!({"ops": [{"op": "put", "remote": "/inbox/ok.csv", "data": "a;b\n"}]}));
    assert_eq!(report["results"][0]["code"], 226, "{report}");
    assert_healthy(&mut f);
}

#[test]
fn malformed_and_100_kb_command_lines_get_an_error_not_a_crash() {
    let mut f = start();
    // Before TLS.
    let mut clear = Clear::connect(f.ftps_ports().explicit);
    assert!(clear.send(&vec![b'A'; 100 * 1024]).starts_with("500"));
    assert!(clear.send(b"\x16\x03\x01\x00\xff").starts_with("500"));
    assert!(clear.send(b"NOOP").starts_with("200"), "the connection survives");
    drop(clear);
    // After login.
    let long = format!("RETR /inbox/{}", "x".repeat(100 * 1024));
    let report = f.ftps("alice").script(json!({"ops": [
        {"op": "raw", "line": long},
        {"op": "raw", "line": {"hex": "ff00fe2f2e2e"}},
        {"op": "raw", "line": "STOR"},
        {"op": "raw", "line": "REST abc"},
        {"op": "raw", "line": "XYZZ 1"},
        {"op": "raw", "line": "NOOP"},
    ]}));
    let codes: Vec<i64> =
        report["results"].as_array().expect("results").iter().map(|r| r["code"].as_i64().unwrap_or(0)).collect();
    assert_eq!(codes.len(), 6, "{report}");
    assert_eq!(codes[0], 500, "{report}");
    assert_eq!(codes[1], 500, "{report}");
    assert_eq!(codes[2], 501, "{report}");
    assert_eq!(codes[3], 501, "{report}");
    assert_eq!(codes[4], 502, "{report}");
    assert_eq!(codes[5], 200, "{report}");
    assert_healthy(&mut f);
}

#[test]
fn a_client_killed_mid_upload_leaves_no_file_and_no_upload_event() {
    let mut f = start();
    let alice = f.ftps("alice");
    let local = f.p.scratch().join("big.csv");
    random_file(&local, 8 * 1024 * 1024);
    let mut curl = Command::new("curl")
        .args(["-sS", "--limit-rate", "512K", "--cacert"])
        .arg(&alice.cert)
        .args(["-u", &format!("alice:{PASSWORD}"), "-T"])
        .arg(&local)
        .arg(format!("ftps://127.0.0.1:{}/inbox/big.csv", f.ftps_ports().implicit))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    // Wait until bytes flow (the hidden temporary grows), then kill the client.
    let inbox = f.inbox("acme");
    let started = wait_for(Duration::from_secs(20), || {
        let entries = std::fs::read_dir(&inbox).ok()?;
        entries.flatten().find(|e| e.metadata().is_ok_and(|m| m.len() > 0)).map(|_| ())
    });
    let mut stderr = String::new();
    if started.is_none() {
        let _ = curl.kill();
        let _ = curl.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
        panic!("the upload never started: {stderr}\n{}", f.server.output());
    }
    curl.kill().expect("kill curl");
    let _ = curl.wait();
    let row = wait_for_audit(&f.p, "aborted upload", |r| r.action == "upload" && r.outcome == "aborted");
    assert_eq!(row.path, "/inbox/big.csv");
    assert!(
        wait_for(Duration::from_secs(5), || entry_names(&f.inbox("acme")).is_empty().then_some(())).is_some(),
        "{:?}",
        entry_names(&f.inbox("acme"))
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.server.json_events("upload completed").is_empty(), "an interrupted upload emitted an event");
    assert_healthy(&mut f);
}

#[test]
fn login_grace_time_and_max_auth_tries_end_the_connection_and_failures_are_audited() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .ftps()
        .envs(&[("PASSERELLE_LIMITS_LOGIN_GRACE_TIME", "2s"), ("PASSERELLE_LIMITS_MAX_AUTH_TRIES", "2")])
        .serve();
    // Grace time: a client that never logs in is told and dropped.
    let mut clear = Clear::connect(f.ftps_ports().explicit);
    std::thread::sleep(Duration::from_secs(3));
    assert!(clear.reply().starts_with("421"), "no 421 after the login grace time");
    // Max auth tries: the second failure on one connection ends it.
    let report = f.ftps("alice").script(json!({"mode": "implicit", "login": false, "ops": [
        {"op": "raw", "line": "USER alice"},
        {"op": "raw", "line": "PASS Wrong-Pelican-Harbour-71"},
        {"op": "raw", "line": "USER alice"},
        {"op": "raw", "line": "PASS Wrong-Pelican-Harbour-71"},
        {"op": "raw", "line": "NOOP"},
    ]}));
    let results = report["results"].as_array().expect("results");
    let codes: Vec<i64> = results.iter().take(4).map(|r| r["code"].as_i64().unwrap_or(0)).collect();
    assert_eq!(codes, [331, 530, 331, 421], "{report}");
    assert!(results.len() < 5 || results[4]["ok"] == false, "the connection must be closed: {report}");
    let row = wait_for_audit(&f.p, "failed ftps login", |r| r.action == "login" && r.outcome == "failed");
    assert!(row.detail.contains("wrong_password"), "{row:?}");
}

#[test]
fn passive_ports_are_capped_per_user_and_released_when_unused() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .user("globex", "bob", PASSWORD)
        .ftps()
        .envs(&[("PASSERELLE_FTPS_MAX_PASSIVE_PORTS_PER_USER", "2"), ("PASSERELLE_FTPS_PASSIVE_IDLE_TIMEOUT", "3s")])
        .serve();
    let epsv = |login: &str| {
        let report = f.ftps(login).script(json!({"ops": [{"op": "raw", "line": "EPSV"}]}));
        report["results"][0].clone()
    };
    // Two sessions of alice take a port each and sit on it, never connecting.
    let ready: Vec<_> = (0..2).map(|i| f.work("holders").join(format!("ready-{i}"))).collect();
    let holders: Vec<_> = ready
        .iter()
        .map(|file| {
            let alice = f.ftps("alice");
            let plan = json!({"ops": [
                {"op": "raw", "line": "EPSV"},
                {"op": "wait_reply", "ready_file": file, "timeout": 6},
            ]});
            std::thread::spawn(move || alice.script(plan))
        })
        .collect();
    let all_ready = wait_for(Duration::from_secs(20), || ready.iter().all(|r| r.exists()).then_some(()));
    assert!(all_ready.is_some(), "the holding sessions did not log in");
    // A third session of alice is refused a port, with the limit named; bob is not held up.
    let refused = epsv("alice");
    assert_eq!(refused["code"], 425, "{refused}");
    let text = refused["reply"].as_str().unwrap_or_default();
    assert!(text.contains("too many passive data ports") && text.contains("limit 2"), "{refused}");
    assert_eq!(epsv("bob")["code"], 229, "another user still gets a port");
    // Unused for passive_idle_timeout, the holders' ports go back: alice gets one again.
    let freed = wait_for(Duration::from_secs(10), || (epsv("alice")["code"] == 229).then_some(()));
    assert!(freed.is_some(), "alice's idle ports were never released");
    for holder in holders {
        let report = holder.join().expect("holder thread");
        assert_eq!(report["results"][0]["code"], 229, "{report}");
    }
}
