//! What the defender and the connection limits count, end to end: IPv6
//! sources by network (PROXY protocol v2 from a trusted loopback proxy
//! carrying IPv6 clients), `ban list/remove` of a network, the connection
//! rate per source at accept, and a proxy's own health checks (PROXY v2
//! `LOCAL`), answered without authentication and never scored.

use std::net::Ipv6Addr;
use std::time::Duration;

use passerelle_tests::{Fixture, Setup, SftpUser, bounded, python, run_command, wait_for};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";
const WRONG: &str = "Not-The-Password-4711";

/// The trusted proxy's address.
const PROXY: &str = "127.0.0.6";

/// Tenant `acme`, user `alice` (password), `127.0.0.6` a trusted proxy, and `env`.
fn start(env: &[(&str, &str)]) -> Fixture {
    let mut all = vec![("PASSERELLE_PROXY_PROTOCOL_TRUSTED_PROXIES", "127.0.0.6/32")];
    all.extend_from_slice(env);
    Setup::new().user("acme", "alice", PASSWORD).envs(&all).serve()
}

fn bans(f: &Fixture) -> Vec<String> {
    let listed = f.p.run(&["ban", "list", "--json"]).json();
    listed.as_array().into_iter().flatten().filter_map(|b| b["ip"].as_str().map(str::to_owned)).collect()
}

/// A v2 PROXY header (PROXY command, TCP over IPv6) for a client at `source`.
fn proxy_v2_ipv6(source: &str, port: u16) -> String {
    let source: Ipv6Addr = source.parse().expect("an IPv6 address");
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x21, 0, 36]);
    header.extend_from_slice(&source.octets());
    header.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    header.extend_from_slice(&[0x15, 0xb3]);
    header.extend_from_slice(&port.to_be_bytes());
    hex(&header)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `login` with `password` through the trusted proxy for the IPv6 client `source` (paramiko).
fn via_proxy(f: &Fixture, login: &str, password: &str, source: &str) -> Value {
    let scratch = f.work(&format!("client-{login}"));
    let client = SftpUser::with_password(f.p.sftp_port(), login, password, &scratch).from_address(PROXY);
    client.paramiko_plan(json!({"proxy_header": proxy_v2_ipv6(source, f.p.sftp_port())}))
}

#[test]
fn rotating_ipv6_addresses_in_one_64_are_banned_as_the_64_until_removed() {
    let f = start(&[]);
    // An unknown login scores 2: eight rotating addresses reach the threshold of 15.
    for n in 1..=12 {
        let report = via_proxy(&f, "mallory", WRONG, &format!("2001:db8:1:2::{n:x}"));
        assert_ne!(report["auth"], "ok", "{report}");
        if bans(&f).iter().any(|b| b == "2001:db8:1:2::/64") {
            break;
        }
    }
    let listed = wait_for(Duration::from_secs(5), || Some(bans(&f)).filter(|b| !b.is_empty())).unwrap_or_default();
    assert_eq!(listed, ["2001:db8:1:2::/64"], "one ban, of the network");
    let report = via_proxy(&f, "alice", PASSWORD, "2001:db8:1:2:ffff::99");
    assert_ne!(report["auth"], "ok", "any address of the banned /64 is dropped: {report}");
    let report = via_proxy(&f, "alice", PASSWORD, "2001:db8:1:3::1");
    assert_eq!(report["auth"], "ok", "another /64 is another source: {report}");
    assert!(!bans(&f).iter().any(|b| b.starts_with("127.")), "the proxy is never banned: {:?}", bans(&f));

    // An address of the network lifts the network's ban, within about a second.
    let removed = f.p.run(&["ban", "remove", "2001:db8:1:2::5"]);
    assert!(removed.success(), "{}", removed.stderr);
    assert!(removed.stdout.contains("ban of 2001:db8:1:2::/64 removed"), "{}", removed.stdout);
    let lifted = wait_for(Duration::from_secs(3), || {
        (via_proxy(&f, "alice", PASSWORD, "2001:db8:1:2:ffff::99")["auth"] == "ok").then_some(())
    });
    assert!(lifted.is_some(), "ban remove took effect within 3 s");
    assert!(f.p.run(&["ban", "remove", "2001:db8:1:2::/64"]).stderr.contains("ban of 2001:db8:1:2::/64"));

    // An operator bans a network by hand; the server enforces it within about a second.
    let added = f.p.run(&["ban", "add", "2001:db8:7::/48"]);
    assert!(added.success(), "{}", added.stderr);
    let enforced = wait_for(Duration::from_secs(3), || {
        (via_proxy(&f, "alice", PASSWORD, "2001:db8:7:8::1")["auth"] != "ok").then_some(())
    });
    assert!(enforced.is_some(), "ban add took effect within 3 s");
}

/// Python: opens `count` connections from `source` at once, then counts the
/// SSH identification lines received (closed at accept: none).
const BURST: &str = r#"
import socket, sys
port, source, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(count):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=3, source_address=(source, 0)))
    except OSError:
        pass
banners = 0
for s in socks:
    try:
        if s.recv(64).startswith(b"SSH-2.0-"):
            banners += 1
    except OSError:
        pass
    s.close()
print(banners)
"#;

/// How many of `count` simultaneous connections from `source` got the SSH banner.
fn banners(f: &Fixture, source: &str, count: u32) -> u32 {
    let mut burst = bounded(python(), 30);
    burst.arg("-c").arg(BURST).args([f.p.sftp_port().to_string(), source.into(), count.to_string()]);
    let out = run_command(&mut burst, b"");
    assert!(out.success(), "burst script: {}", out.stderr);
    out.stdout.trim().parse().expect("a count")
}

#[test]
fn a_burst_of_connections_from_one_source_is_cut_at_accept_and_scored() {
    // What is measured is the rate bucket: limits.max_startups' random early
    // drop (from 10 connections not logged in) would take its own share.
    let f = start(&[("PASSERELLE_LIMITS_MAX_STARTUPS", "100:30:200")]);
    let reached = banners(&f, "127.0.0.2", 100);
    // The burst (20), and what the bucket refilled meanwhile (10 per second).
    assert!((15..=25).contains(&reached), "{reached} of 100 connections reached the SSH banner");
    let banned = wait_for(Duration::from_secs(5), || bans(&f).iter().any(|b| b == "127.0.0.2").then_some(()));
    assert!(banned.is_some(), "the source is scored and banned: {:?}", bans(&f));
    let rate_refusal = |e: &Value| {
        e["action"] == "connect"
            && e["ip"] == "127.0.0.2"
            && e["detail"].as_str().is_some_and(|d| d.contains("limits.connection_rate (10 per second"))
    };
    let audited = wait_for(Duration::from_secs(5), || {
        let audit = f.p.run(&["audit", "--json", "--since", "1h"]).json();
        audit.as_array().is_some_and(|events| events.iter().any(rate_refusal)).then_some(())
    });
    assert!(audited.is_some(), "the first refusal is audited with the limit");
    assert_eq!(banners(&f, "127.0.0.3", 5), 5, "another source is unaffected");
}

/// Python: `count` PROXY v2 `LOCAL` connections from the trusted proxy;
/// prints what each received, once per distinct answer.
const HEALTH_CHECKS: &str = r#"
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
local = b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0])
answers = set()
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=3, source_address=("127.0.0.6", 0))
    s.sendall(local)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    answers.add(data)
    s.close()
for answer in sorted(answers):
    print(repr(answer))
"#;

/// What `count` health checks on `port` received, one line per distinct answer.
fn health_checks(port: u16, count: u32) -> String {
    let mut checks = bounded(python(), 30);
    checks.arg("-c").arg(HEALTH_CHECKS).args([port.to_string(), count.to_string()]);
    let out = run_command(&mut checks, b"");
    assert!(out.success(), "health checks: {}", out.stderr);
    out.stdout.trim().to_owned()
}

#[test]
fn proxy_health_checks_get_no_authentication_and_never_ban_the_proxy() {
    // A rate that health checks alone would exceed if they were counted.
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .ftps()
        .envs(&[
            ("PASSERELLE_PROXY_PROTOCOL_TRUSTED_PROXIES", "127.0.0.6/32"),
            ("PASSERELLE_LIMITS_CONNECTION_BURST", "5"),
            ("PASSERELLE_DEFENDER_THRESHOLD", "3"),
        ])
        .serve();
    assert_eq!(health_checks(f.p.sftp_port(), 40), r"b'SSH-2.0-passerelle\r\n'", "the identification line only");
    assert_eq!(
        health_checks(f.ftps_ports().explicit, 10),
        r"b'421 Health check answered: no login without a client address (PROXY LOCAL).\r\n'"
    );
    assert!(bans(&f).is_empty(), "{:?}", bans(&f));
    let report = via_proxy(&f, "alice", PASSWORD, "2001:db8:1:2::1");
    assert_eq!(report["auth"], "ok", "clients behind the proxy still log in: {report}");
}
