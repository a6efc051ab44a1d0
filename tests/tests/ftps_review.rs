//! Findings of the adversarial review of the FTPS front-end, each proved end
//! to end: a data-connection thief from the client's own address cannot plant
//! a TLS session of its own in the control connection's cache and resume it
//! later; a connection from another address that reaches a data port first
//! does not make the client's transfer fail; a client that never reads its
//! replies cannot hold a connection past the login grace time; commands
//! pipelined behind `AUTH TLS` are never executed. And what the review found
//! sound, kept proved: ABOR during STOR and writes to `/outbox` commit
//! nothing; no password reaches the logs, even at trace level.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use passerelle_tests::{Fixture, Setup, entry_names};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

fn start() -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).ftps().serve()
}

#[test]
fn a_full_handshake_on_a_data_port_does_not_become_a_session_the_next_data_port_accepts() {
    let f = start();
    // `.part`: the import pipeline leaves it where it is.
    std::fs::write(f.inbox("acme").join("payroll.csv.part"), "employee;salary\n".repeat(1000)).expect("payroll");
    for mode in ["explicit", "implicit"] {
        let report = f.ftps("alice").script(json!({"mode": mode, "ops": [
            {"op": "hijack", "remote": "/inbox/payroll.csv.part"},
            {"op": "raw", "line": "NOOP"},
        ]}));
        assert_eq!(report["auth"], "ok", "{report}");
        let hijack = &report["results"][0];
        assert_eq!(hijack["value"]["stolen"], 0, "{mode}: the thief received the file: {report}");
        assert_eq!(hijack["value"]["codes"], json!([425, 425]), "{mode}: {report}");
        assert_eq!(report["results"][1]["code"], 200, "{mode}: {report}");
    }
}

#[test]
fn a_connection_from_another_address_reaching_the_data_port_first_does_not_break_the_transfer() {
    let f = start();
    let report = f.ftps("alice").script(json!({"thief_source": "127.0.0.2", "ops": [
        {"op": "put", "remote": "/inbox/raced.csv.part", "data": "a;b\n"},
        {"op": "list", "cmd": "NLST", "path": "/inbox"},
    ]}));
    assert_eq!(report["auth"], "ok", "{report}");
    assert_eq!(report["results"][0]["code"], 226, "{report}");
    assert_eq!(report["results"][1]["value"], json!(["raced.csv.part"]), "{report}");
    assert_eq!(std::fs::read(f.inbox("acme").join("raced.csv.part")).expect("uploaded"), b"a;b\n");
}

#[test]
fn commands_pipelined_behind_auth_tls_are_never_executed() {
    let f = start();
    let mut clear = TcpStream::connect(("127.0.0.1", f.ftps_ports().explicit)).expect("connect");
    clear.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut greeting = [0u8; 512];
    let n = clear.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"220"), "{}", String::from_utf8_lossy(&greeting[..n]));
    // One segment: the classic STARTTLS command injection.
    clear.write_all(format!("AUTH TLS\r\nUSER alice\r\nPASS {PASSWORD}\r\n").as_bytes()).expect("send");
    let mut rest = Vec::new();
    let _ = clear.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("234 ") && rest.lines().count() == 1, "the connection must end after 234: {rest}");
    std::thread::sleep(Duration::from_millis(500));
    let rows = passerelle_tests::audit_rows(&f.p);
    assert!(!rows.iter().any(|r| r.action == "login"), "a pipelined login was attempted: {rows:#?}");
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped_at_the_login_grace_time() {
    let mut f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .ftps()
        .envs(&[("PASSERELLE_LIMITS_LOGIN_GRACE_TIME", "2s"), ("PASSERELLE_LIMITS_MAX_CONNECTIONS_PER_IP", "1")])
        .serve();
    // Commands whose replies (~40 MB in all) fill every socket buffer: the
    // server blocks writing them while the client reads nothing.
    let mut flood = TcpStream::connect(("127.0.0.1", f.ftps_ports().explicit)).expect("connect");
    flood.set_write_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let lines = b"HELP\r\n".repeat(1 << 20);
    let _ = flood.write_all(&lines);
    // Past the grace time, the connection must be gone and its slot free:
    // the one connection this address may have gets a greeting.
    std::thread::sleep(Duration::from_secs(5));
    let mut next = TcpStream::connect(("127.0.0.1", f.ftps_ports().explicit)).expect("connect");
    next.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut greeting = [0u8; 3];
    let read = next.read_exact(&mut greeting);
    assert!(read.is_ok() && &greeting == b"220", "no greeting: the stuck connection still holds the address's slot");
    assert!(f.server.is_running(), "{}", f.server.output());
}

#[test]
fn abor_during_stor_and_writes_to_the_outbox_commit_nothing() {
    let mut f = start();
    let outbox = f.outbox("acme");
    std::fs::write(outbox.join("receipt.json"), "{}").expect("receipt");
    std::fs::write(f.inbox("acme").join("mine.csv.part"), "a;b\n").expect("inbox file");
    let report = f.ftps("alice").script(json!({"ops": [
        {"op": "abort_put", "remote": "/inbox/aborted.csv", "data": "employee;salary\n"},
        {"op": "put", "remote": "/outbox/planted.csv", "data": "a;b\n"},
        {"op": "put", "remote": "/inbox", "data": "a;b\n"},
        {"op": "cmd", "verb": "MKD", "path": "/outbox/d"},
        {"op": "cmd", "verb": "DELE", "path": "/outbox/receipt.json"},
        {"op": "cmd", "verb": "RNFR", "path": "/inbox/mine.csv.part"},
        {"op": "cmd", "verb": "RNTO", "path": "/outbox/mine.csv.part"},
        {"op": "cmd", "verb": "RNFR", "path": "/outbox/receipt.json"},
        {"op": "cmd", "verb": "RNTO", "path": "/inbox/receipt.json"},
        {"op": "raw", "line": "NOOP"},
    ]}));
    assert_eq!(report["auth"], "ok", "{report}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results[0]["value"]["codes"], json!([426, 226]), "{report}");
    let codes: Vec<i64> = results[1..].iter().map(|r| r["code"].as_i64().unwrap_or(0)).collect();
    assert_eq!(codes, [550, 550, 550, 550, 350, 550, 350, 550, 200], "{report}");
    assert_eq!(entry_names(&f.inbox("acme")), ["mine.csv.part"], "an upload was left behind");
    let mut outbox_names: Vec<_> =
        std::fs::read_dir(&outbox).expect("outbox").map(|e| e.expect("entry").file_name()).collect();
    outbox_names.sort();
    assert_eq!(outbox_names, ["receipt.json"]);
    passerelle_tests::wait_for_audit(&f.p, "aborted upload", |r| {
        r.action == "upload" && r.outcome == "aborted" && r.path == "/inbox/aborted.csv"
    });
    assert!(f.server.json_events("upload completed").is_empty(), "an aborted upload emitted an event");
}

#[test]
fn no_password_reaches_the_logs_even_at_trace_level() {
    let wrong = "Wrong-Pelican-Harbour-71";
    let mut f = Setup::new().user("acme", "alice", PASSWORD).ftps().envs(&[("PASSERELLE_LOG_LEVEL", "trace")]).serve();
    // In the clear (refused unread), then over TLS: a failure and a success.
    let mut clear = TcpStream::connect(("127.0.0.1", f.ftps_ports().explicit)).expect("connect");
    clear.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    clear.write_all(format!("USER alice\r\nPASS {PASSWORD}\r\nQUIT\r\n").as_bytes()).expect("send");
    let _ = clear.read_to_end(&mut Vec::new());
    let report = f.ftps("alice").script(json!({"mode": "implicit", "login": false, "ops": [
        {"op": "raw", "line": "USER alice"},
        {"op": "raw", "line": format!("PASS {wrong}")},
        {"op": "raw", "line": "USER alice"},
        {"op": "raw", "line": format!("PASS {PASSWORD}")},
        {"op": "raw", "line": format!("PASS {PASSWORD}")},
    ]}));
    let codes: Vec<i64> =
        report["results"].as_array().expect("results").iter().map(|r| r["code"].as_i64().unwrap_or(0)).collect();
    assert_eq!(codes, [331, 530, 331, 230, 503], "{report}");
    passerelle_tests::wait_for_audit(&f.p, "successful login", |r| r.action == "login" && r.outcome == "ok");
    let output = f.server.output();
    assert!(output.contains("login"), "no log output at all?");
    for secret in [PASSWORD, wrong] {
        assert!(!output.contains(secret), "a password is in the logs");
    }
}
