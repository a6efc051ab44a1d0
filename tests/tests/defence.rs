//! Defence, end to end with real clients bound to loopback source addresses
//! (127.0.0.x): brute-force bans (expiry, longer repeat bans, surviving a
//! restart, `ban remove`), account locks across addresses, tenant and user
//! allowlists, the PROXY protocol (v1 and v2, trusted and untrusted), a
//! connection flood, and the `audit` command's filters.
//!
//! The legitimate client's upload during the flood is a normal file: the
//! import pipeline takes it out of `/inbox`, so its arrival is checked by its
//! receipt in `/outbox` (which carries the SHA-256 of what arrived).

use std::path::PathBuf;
use std::time::Duration;

use passerelle_tests::{
    Fixture, IMPORT_VERDICT, Setup, SftpUser, bounded, json_time_ms, python, run_command, sha256sum, wait_for,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";
const WRONG: &str = "Not-The-Password-4711";

/// Tenant `acme`, user `alice` (password), and `env`.
fn start(env: &[(&str, &str)]) -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).envs(env).serve()
}

/// `login` with `password` over SFTP, connecting from `source`.
fn client(f: &Fixture, login: &str, password: &str, source: &str) -> SftpUser {
    let scratch = f.work(&format!("client-{login}-{source}"));
    SftpUser::with_password(f.p.sftp_port(), login, password, &scratch).from_address(source)
}

/// Whether `login` logs in from `source` with `password` (OpenSSH sftp).
fn logs_in(f: &Fixture, login: &str, password: &str, source: &str) -> bool {
    client(f, login, password, source).sftp_batch("ls /\n").success()
}

fn bans(f: &Fixture) -> Vec<Value> {
    f.p.run(&["ban", "list", "--json"]).json().as_array().cloned().unwrap_or_default()
}

fn ban_of(f: &Fixture, ip: &str) -> Option<Value> {
    bans(f).into_iter().find(|b| b["ip"] == ip)
}

fn audit(f: &Fixture, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["audit", "--json"];
    full.extend_from_slice(args);
    f.p.run(&full).json().as_array().cloned().unwrap_or_default()
}

fn ban_length_ms(ban: &Value) -> i64 {
    json_time_ms(&ban["expires_at"]) - json_time_ms(&ban["banned_at"])
}

/// Up to `attempts` failed logins of `login` from `source`, one OpenSSH
/// connection each; stops once the address is banned (connections dropped).
fn fail_logins(f: &Fixture, login: &str, source: &str, attempts: usize) {
    for _ in 0..attempts {
        assert!(!logs_in(f, login, WRONG, source), "{login} logged in with a wrong password");
        if ban_of(f, source).is_some() {
            return;
        }
    }
}

#[test]
fn failed_logins_ban_the_address_longer_each_time_across_restarts_until_removed() {
    let mut f = start(&[("PASSERELLE_DEFENDER_BAN_TIME", "3s"), ("PASSERELLE_DEFENDER_BAN_TIME_INCREMENT", "300")]);
    // 25 tries for a user that does not exist: 2 points each, banned at 15.
    fail_logins(&f, "mallory", "127.0.0.2", 25);
    let ban = ban_of(&f, "127.0.0.2").expect("127.0.0.2 banned after failed logins");
    assert_eq!(ban["offences"], 1);
    assert_eq!(ban_length_ms(&ban), 3000);
    assert!(!logs_in(&f, "alice", PASSWORD, "127.0.0.2"), "a banned address must be dropped");
    assert!(logs_in(&f, "alice", PASSWORD, "127.0.0.3"), "other addresses keep working");

    // The ban expires.
    assert!(wait_for(Duration::from_secs(10), || ban_of(&f, "127.0.0.2").is_none().then_some(())).is_some());
    assert!(logs_in(&f, "alice", PASSWORD, "127.0.0.2"), "an expired ban lets the address in again");

    // A repeat offence bans four times longer (increment 300 %).
    fail_logins(&f, "mallory", "127.0.0.2", 25);
    let ban = ban_of(&f, "127.0.0.2").expect("banned again");
    assert_eq!(ban["offences"], 2);
    assert_eq!(ban_length_ms(&ban), 12_000);

    // The ban survives a restart.
    f.restart();
    assert!(!logs_in(&f, "alice", PASSWORD, "127.0.0.2"), "the ban must survive a restart");

    // `ban remove` lifts it while the server runs.
    f.p.ok(&["ban", "remove", "127.0.0.2"]);
    assert!(bans(&f).is_empty());
    let back = wait_for(Duration::from_secs(5), || logs_in(&f, "alice", PASSWORD, "127.0.0.2").then_some(()));
    assert!(back.is_some(), "ban remove must take effect within seconds");

    let bans = audit(&f, &["--since", "1h"]);
    assert!(bans.iter().any(|e| e["action"] == "ban" && e["ip"] == "127.0.0.2"), "ban audited: {bans:#?}");
    assert!(bans.iter().any(|e| e["action"] == "ban_remove"), "ban remove audited");
}

#[test]
fn an_account_lock_applies_across_addresses_until_unlocked() {
    let f = start(&[("PASSERELLE_ACCOUNT_LOCK_MAX_FAILURES", "4"), ("PASSERELLE_ACCOUNT_LOCK_LOCK_TIME", "1h")]);
    for source in ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"] {
        assert!(!logs_in(&f, "alice", WRONG, source));
    }
    let locked = wait_for(Duration::from_secs(5), || {
        audit(&f, &["--login", "alice"]).into_iter().find(|e| e["action"] == "account_lock")
    });
    assert!(locked.is_some(), "the lock is audited");
    assert!(!logs_in(&f, "alice", PASSWORD, "127.0.0.4"), "a locked login refuses even the right password");
    let users = f.p.run(&["user", "list", "--json"]).json();
    assert!(users[0]["locked_until"].is_string(), "{users}");

    f.p.ok(&["user", "unlock", "alice"]);
    assert!(logs_in(&f, "alice", PASSWORD, "127.0.0.4"), "user unlock lifts the lock");
    assert!(bans(&f).is_empty(), "four failures are not enough for a ban");
}

#[test]
fn tenant_and_user_allowlists_refuse_other_addresses() {
    let f = start(&[]);
    f.p.ok(&["tenant", "add", "fenced", "--allow-ip", "127.0.0.5/32"]);
    let out = f.p.run_with_stdin(&["user", "add", "fenced", "carol", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert!(out.success(), "{}", out.stderr);
    assert!(!logs_in(&f, "carol", PASSWORD, "127.0.0.4"), "outside the tenant's allowlist");
    assert!(logs_in(&f, "carol", PASSWORD, "127.0.0.5"), "inside the tenant's allowlist");
    let denied = audit(&f, &["--login", "carol", "--tenant", "fenced"]);
    assert!(
        denied.iter().any(|e| e["outcome"] == "denied_ip" && e["ip"] == "127.0.0.4"),
        "denied_ip audited: {denied:#?}"
    );

    // A user allowlist, given at creation, then edited.
    let out = f.p.run_with_stdin(
        &["user", "add", "acme", "dave", "--password-stdin", "--allow-ip", "127.0.0.6"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(!logs_in(&f, "dave", PASSWORD, "127.0.0.4"));
    assert!(logs_in(&f, "dave", PASSWORD, "127.0.0.6"));
    f.p.ok(&["user", "allow-ip", "dave", "--set", "127.0.0.4/32", "::1/128"]);
    assert!(logs_in(&f, "dave", PASSWORD, "127.0.0.4"));
    assert!(!logs_in(&f, "dave", PASSWORD, "127.0.0.6"));
    // Both lists must admit the address.
    f.p.ok(&["tenant", "allow-ip", "acme", "--set", "127.0.0.6/32"]);
    assert!(!logs_in(&f, "dave", PASSWORD, "127.0.0.4"), "the tenant's list applies too");
    f.p.ok(&["tenant", "allow-ip", "acme", "--clear"]);
    f.p.ok(&["user", "allow-ip", "dave", "--clear"]);
    assert!(logs_in(&f, "dave", PASSWORD, "127.0.0.6"));
    let refused = f.p.run(&["user", "allow-ip", "dave", "--set", "not-a-network"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
}

/// A v1 PROXY header for a client at `source`.
fn proxy_v1(source: &str, port: u16) -> String {
    hex(format!("PROXY TCP4 {source} 127.0.0.1 5555 {port}\r\n").as_bytes())
}

/// A v2 PROXY header (PROXY command, TCP over IPv4) for a client at `source`.
fn proxy_v2(source: [u8; 4], port: u16) -> String {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1, 0x15, 0xb3]);
    header.extend_from_slice(&port.to_be_bytes());
    hex(&header)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn proxy_headers_are_taken_from_trusted_proxies_only() {
    let f = start(&[("PASSERELLE_PROXY_PROTOCOL_TRUSTED_PROXIES", "127.0.0.6/32")]);
    let port = f.p.sftp_port();
    let alice = |source: &str| client(&f, "alice", PASSWORD, source);

    // From an untrusted source, a PROXY header is refused.
    let report = alice("127.0.0.2").paramiko_plan(json!({"proxy_header": proxy_v1("127.0.0.9", port)}));
    assert_ne!(report["auth"], "ok", "{report}");
    // Without one, that source is served as itself.
    assert!(logs_in(&f, "alice", PASSWORD, "127.0.0.2"));

    // Through the trusted proxy, the header's address is the client's.
    let report = alice("127.0.0.6").paramiko_plan(json!({"proxy_header": proxy_v1("127.0.0.9", port)}));
    assert_eq!(report["auth"], "ok", "{report}");
    let report = alice("127.0.0.6").paramiko_plan(json!({"proxy_header": proxy_v2([127, 0, 0, 11], port)}));
    assert_eq!(report["auth"], "ok", "{report}");
    let logins = wait_for(Duration::from_secs(10), || {
        let events = audit(&f, &["--login", "alice", "--since", "1h"]);
        let ok_ips: Vec<String> = events
            .iter()
            .filter(|e| e["action"] == "login" && e["outcome"] == "ok")
            .filter_map(|e| e["ip"].as_str().map(str::to_owned))
            .collect();
        (ok_ips.iter().any(|ip| ip == "127.0.0.9") && ok_ips.iter().any(|ip| ip == "127.0.0.11")).then_some(ok_ips)
    });
    let logins = logins.expect("logins through the proxy audited with the header's addresses");
    assert!(!logins.iter().any(|ip| ip == "127.0.0.6"), "{logins:?}");
    // The trusted proxy must send a header.
    assert!(!logs_in(&f, "alice", PASSWORD, "127.0.0.6"));

    // Failed logins through the proxy ban the client, not the proxy.
    // (One attempt per connection: paramiko's retries on one connection stall on russh.)
    let mallory = client(&f, "mallory", WRONG, "127.0.0.6");
    for _ in 0..12 {
        let report = mallory.paramiko_plan(json!({"proxy_header": proxy_v1("127.0.0.9", port)}));
        assert_ne!(report["auth"], "ok", "{report}");
        if ban_of(&f, "127.0.0.9").is_some() {
            break;
        }
    }
    assert!(ban_of(&f, "127.0.0.9").is_some(), "127.0.0.9 banned: {:?}", bans(&f));
    assert!(ban_of(&f, "127.0.0.6").is_none());
    let report = alice("127.0.0.6").paramiko_plan(json!({"proxy_header": proxy_v1("127.0.0.9", port)}));
    assert_ne!(report["auth"], "ok", "the banned client is dropped behind the proxy too");
    let report = alice("127.0.0.6").paramiko_plan(json!({"proxy_header": proxy_v1("127.0.0.10", port)}));
    assert_eq!(report["auth"], "ok", "other clients behind the proxy keep working: {report}");
}

/// Python: 500 connects within 10 s from 127.0.0.7, one in three sending
/// garbage, up to 40 held open; prints how many connects succeeded.
const FLOOD: &str = r#"
import os, socket, sys, time
port = int(sys.argv[1]); start = time.time(); held = []; ok = 0
for i in range(500):
    if time.time() - start > 10:
        break
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1, source_address=("127.0.0.7", 0))
        ok += 1
        if i % 3 == 0:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(256))
        held.append(s)
        if len(held) > 40:
            held.pop(0).close()
    except OSError:
        pass
    time.sleep(0.01)
print(ok)
"#;

#[test]
fn a_connection_flood_does_not_keep_a_legitimate_client_out() {
    let f = start(&[]);
    let port = f.p.sftp_port();
    let mut flood = bounded(python(), 30);
    flood.arg("-c").arg(FLOOD).arg(port.to_string());
    let flood = std::thread::spawn(move || run_command(&mut flood, b""));
    std::thread::sleep(Duration::from_secs(2));
    let file: PathBuf = f.p.scratch().join("payload.csv");
    std::fs::write(&file, "id;name\n1;alice\n").unwrap();
    let alice = client(&f, "alice", PASSWORD, "127.0.0.8");
    let upload = alice.sftp_batch(&format!("put {} /inbox/payload.csv\n", file.display()));
    assert!(upload.success(), "upload during the flood failed: {}", upload.stderr);
    let out = flood.join().expect("flood thread");
    assert!(out.success(), "flood script: {}", out.stderr);
    // The whole file arrived: the import pipeline took it from /inbox and its
    // receipt names it with the SHA-256 of the uploaded bytes.
    let receipt = f.outbox("acme").join("payload.csv.result.json");
    let receipt = wait_for(IMPORT_VERDICT, || std::fs::read(&receipt).ok())
        .unwrap_or_else(|| panic!("no receipt for payload.csv; jobs: {}", f.p.ok(&["import", "list"])));
    let receipt: Value = serde_json::from_slice(&receipt).expect("receipt JSON");
    assert_eq!(receipt["file"], "payload.csv", "{receipt:#}");
    assert_eq!(receipt["sha256"], sha256sum(&file).as_str(), "{receipt:#}");
    assert!(ban_of(&f, "127.0.0.7").is_some(), "the flooding address is banned: {:?}", bans(&f));
    assert!(ban_of(&f, "127.0.0.8").is_none());
}

#[test]
fn audit_filters_by_login_tenant_and_time() {
    let f = start(&[]);
    assert!(logs_in(&f, "alice", PASSWORD, "127.0.0.3"));
    assert!(!logs_in(&f, "alice", WRONG, "127.0.0.3"));
    let events = wait_for(Duration::from_secs(10), || {
        let events = audit(&f, &["--login", "alice", "--since", "1h"]);
        events.iter().any(|e| e["action"] == "logout").then_some(events)
    })
    .expect("alice's events");
    assert!(events.iter().all(|e| e["login"] == "alice"), "{events:#?}");
    assert!(events.iter().any(|e| e["action"] == "login" && e["outcome"] == "ok"));
    assert!(events.iter().any(|e| e["action"] == "login" && e["outcome"] == "failed"));
    let times: Vec<i64> = events.iter().map(|e| json_time_ms(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");

    assert!(audit(&f, &["--login", "alice", "--since", "2030-01-01T00:00:00Z"]).is_empty());
    assert!(audit(&f, &["--tenant", "nobody-here"]).is_empty());
    let limited = audit(&f, &["--limit", "2"]);
    assert_eq!(limited.len(), 2);
    let all = audit(&f, &[]);
    assert_eq!(limited[1], all[all.len() - 1], "--limit keeps the newest");
    let text = f.p.ok(&["audit", "--login", "alice", "--since", "30m"]);
    assert!(text.contains("127.0.0.3"), "{text}");
    let bad = f.p.run(&["audit", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
