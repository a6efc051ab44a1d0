//! Two nodes on one PostgreSQL catalog and one data directory (cluster
//! membership, issue #19): `node list` shows both, and a killed node as
//! `gone` once its heartbeat is older than `cluster.lease_timeout`; a ban
//! caused on node A is enforced by node B within 2 s; `user lock` ends a
//! session held on the other node; `limits.max_sessions_per_user` counts the
//! sessions of every live node; a node stopping with SIGTERM drains
//! (`/healthz` 503, listeners closed, live sessions finish) and says
//! `stopped`, and health probes never count as logins.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passerelle_tests::{Passerelle, SftpUser, bounded, psql, run_command, wait_for};
use rustix::process::Signal;
use serde_json::{Value, json};

const ALICE: &str = "Quartz-Lantern-Velvet-93";
const BOB: &str = "Harbor-Thistle-Comet-58";
const WRONG: &str = "Not-The-Password-4711";

/// Short, so that a dead node is gone within seconds (heartbeat every second).
const LEASE_TIMEOUT: &str = "3s";

/// The promise for bans and admin changes: other nodes act within this.
const WITHIN_MS: i64 = 2000;

fn unix_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit")
}

/// A PostgreSQL installation logging JSON, with users alice (tenant acme)
/// and bob (tenant globex), and `env`.
fn installation(env: &[(&str, &str)]) -> Passerelle {
    let mut p = Passerelle::with_postgres();
    p.set_env("PASSERELLE_LOG_FORMAT", "json");
    p.set_env("PASSERELLE_CLUSTER_LEASE_TIMEOUT", LEASE_TIMEOUT);
    for (name, value) in env {
        p.set_env(name, value);
    }
    p.tenant_with_user("acme", "alice", ALICE);
    p.tenant_with_user("globex", "bob", BOB);
    p
}

/// `node list --json`, by id.
fn node_list(p: &Passerelle) -> Vec<Value> {
    p.run(&["node", "list", "--json"]).json().as_array().cloned().expect("a JSON array")
}

/// Node `id` in `node list --json`; panics when absent.
fn listed(p: &Passerelle, id: &str) -> Value {
    let list = node_list(p);
    list.iter().find(|n| n["id"] == id).cloned().unwrap_or_else(|| panic!("no node {id} in {list:#?}"))
}

/// Waits (bounded) until node `id` is listed with `field` = `value`.
fn wait_listed(p: &Passerelle, id: &str, field: &str, value: Value, within: Duration) {
    let seen = wait_for(within, || (listed(p, id)[field] == value).then_some(()));
    assert!(seen.is_some(), "node {id}: {field} never became {value}: {:#?}", node_list(p));
}

/// `user` (password) on the SFTP port `port`, from loopback address `source`.
fn user(p: &Passerelle, port: u16, login: &str, password: &str, source: &str) -> SftpUser {
    let scratch = p.scratch().join(format!("{login}-{port}-{source}-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    SftpUser::with_password(port, login, password, &scratch).from_address(source)
}

/// Whether `login` logs in on `port` (OpenSSH sftp) from `source`.
fn logs_in(p: &Passerelle, port: u16, login: &str, password: &str, source: &str) -> bool {
    user(p, port, login, password, source).sftp_batch("ls /\n").success()
}

/// A paramiko session held open in a thread for up to `secs`.
struct Live {
    ready: PathBuf,
    client: JoinHandle<Value>,
}

impl Live {
    /// Logs `login` in on `port` and waits (bounded) until it is idle.
    fn start(p: &Passerelle, port: u16, login: &str, password: &str, secs: u64) -> Self {
        let client = user(p, port, login, password, "127.0.0.1");
        let ready = p.scratch().join(format!("ready-{:08x}", rand::random::<u32>()));
        let op = json!({ "op": "wait_closed", "ready_file": ready, "timeout": secs });
        let client = std::thread::spawn(move || client.paramiko(json!([op])));
        let up = wait_for(Duration::from_secs(30), || ready.exists().then_some(()));
        assert!(up.is_some(), "the client never logged in");
        Self { ready, client }
    }

    /// The report of `wait_closed`: `{"closed": bool, "closed_at": seconds}`.
    fn wait_closed(self) -> Value {
        assert!(self.ready.exists());
        self.client.join().expect("client thread")["results"][0]["value"].clone()
    }
}

/// `GET path` on the admin endpoint at `port`: status code and body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut command = bounded("curl", 10);
    command.args(["-s", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{port}{path}")]);
    let out = run_command(&mut command, b"");
    let (body, code) = out.stdout.rsplit_once('\n').expect("curl prints the status last");
    (code.to_owned(), body.to_owned())
}

/// The bans node `node` holds in memory (`passerelle_bans` of its `/metrics`).
fn bans_in_force(admin_port: u16) -> f64 {
    let (_, metrics) = get(admin_port, "/metrics");
    metrics.lines().find_map(|l| l.strip_prefix("passerelle_bans ")?.parse().ok()).unwrap_or(0.0)
}

#[test]
fn node_list_shows_each_node_and_a_killed_one_gone_after_the_lease_timeout() {
    let p = installation(&[]);
    let mut a = p.serve_node("node-a", &[]);
    let b = p.serve_node("node-b", &[]);
    for id in ["node-a", "node-b"] {
        let node = listed(&p, id);
        assert_eq!(node["status"], "running", "{node:#}");
        assert_eq!(node["state"], "running", "{node:#}");
        assert_eq!(node["running_jobs"], 0, "{node:#}");
        assert!(node["version"].as_str().is_some_and(|v| !v.is_empty()), "{node:#}");
        assert!(node["heartbeat_age_ms"].as_i64().is_some_and(|age| age < 3000), "{node:#}");
    }
    assert!(listed(&p, "node-b")["addresses"].as_str().unwrap().contains(&format!("sftp 127.0.0.1:{}", b.sftp_port)));

    // A session on node B is in its row at the next heartbeat.
    let live = Live::start(&p, b.sftp_port, "alice", ALICE, 3);
    wait_listed(&p, "node-b", "sessions", json!(1), Duration::from_secs(5));
    assert_eq!(listed(&p, "node-a")["sessions"], 0);
    live.wait_closed();

    // Killed: gone once its heartbeat is older than the lease timeout, not before.
    let killed_at = unix_ms();
    drop(b);
    assert_eq!(listed(&p, "node-b")["status"], "running", "gone only after the lease timeout");
    wait_listed(&p, "node-b", "status", json!("gone"), Duration::from_secs(10));
    assert!(unix_ms() - killed_at >= 2000, "gone too early: the last heartbeat was at most a second old");
    assert_eq!(listed(&p, "node-a")["status"], "running");

    // A clean exit says stopped.
    assert!(a.server.stop_with(Signal::TERM).success());
    assert_eq!(listed(&p, "node-a")["status"], "stopped");
    let table = p.ok(&["node", "list"]);
    let row = table.lines().find(|l| l.starts_with("node-a")).expect("node-a in the table");
    assert!(row.contains("stopped"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("node-b") && l.contains("gone")), "{table}");
}

#[test]
fn a_ban_caused_on_node_a_is_enforced_by_node_b_within_two_seconds() {
    // One invalid user (2 points) bans.
    let p = installation(&[("PASSERELLE_DEFENDER_THRESHOLD", "2"), ("PASSERELLE_DEFENDER_BAN_TIME", "10m")]);
    let a = p.serve_node("node-a", &[]);
    let b = p.serve_node("node-b", &[]);
    assert_eq!(bans_in_force(b.admin_port), 0.0);
    let catalog = p.pg_catalog_url().expect("PostgreSQL installation");
    let banned_at = || psql(&catalog, "SELECT banned_at FROM bans WHERE ip = '127.0.0.2'").trim().parse::<i64>().ok();

    // Node B's bans are watched from now on, every 100 ms.
    let watched = std::thread::scope(|scope| {
        let port = b.admin_port;
        let watcher = scope.spawn(move || {
            wait_for(Duration::from_secs(20), || (bans_in_force(port) >= 1.0).then(unix_ms))
                .expect("node B never saw it")
        });
        let caused = wait_for(Duration::from_secs(15), || {
            assert!(!logs_in(&p, a.sftp_port, "mallory", WRONG, "127.0.0.2"), "mallory logged in");
            banned_at()
        });
        assert!(caused.is_some(), "node A never banned 127.0.0.2");
        watcher.join().expect("watcher")
    });
    let banned_at = banned_at().expect("the ban is in the catalog");
    let after = watched - banned_at;
    assert!(after < WITHIN_MS, "node B enforced the ban {after} ms after node A stored it");
    assert!(!logs_in(&p, b.sftp_port, "alice", ALICE, "127.0.0.2"), "node B must drop the banned address");
    assert!(logs_in(&p, b.sftp_port, "alice", ALICE, "127.0.0.3"), "other addresses log in on node B");
}

#[test]
fn user_lock_ends_a_session_held_on_the_other_node_within_two_seconds() {
    let p = installation(&[]);
    let _a = p.serve_node("node-a", &[]);
    let b = p.serve_node("node-b", &[]);
    let alice = Live::start(&p, b.sftp_port, "alice", ALICE, 15);
    let bob = Live::start(&p, b.sftp_port, "bob", BOB, 4);
    p.ok(&["user", "lock", "alice"]);
    let changed = unix_ms();
    let ended = alice.wait_closed();
    assert_eq!(ended["closed"], true, "the session on node B was not ended: {ended}");
    let closed_ms = (ended["closed_at"].as_f64().expect("closed_at") * 1000.0) as i64;
    assert!(closed_ms - changed < WITHIN_MS, "ended {} ms after the lock", closed_ms - changed);
    assert_eq!(bob.wait_closed()["closed"], false, "bob's session goes on");
}

#[test]
fn the_session_limit_counts_the_sessions_of_every_live_node() {
    // Refused logins are not scored here: the test makes several.
    let p = installation(&[("PASSERELLE_LIMITS_MAX_SESSIONS_PER_USER", "2"), ("PASSERELLE_DEFENDER_ENABLED", "false")]);
    let a = p.serve_node("node-a", &[]);
    let b = p.serve_node("node-b", &[]);
    let held = [Live::start(&p, a.sftp_port, "alice", ALICE, 30), Live::start(&p, a.sftp_port, "alice", ALICE, 30)];
    wait_listed(&p, "node-a", "sessions", json!(2), Duration::from_secs(5));
    // Node B reads them with its next heartbeat (every second).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!logs_in(&p, b.sftp_port, "alice", ALICE, "127.0.0.1"), "a third session of alice on node B");
    assert!(logs_in(&p, b.sftp_port, "bob", BOB, "127.0.0.1"), "other users are not limited");

    // Node A dies: once it is gone, its sessions count no more.
    drop(a);
    let back =
        wait_for(Duration::from_secs(15), || logs_in(&p, b.sftp_port, "alice", ALICE, "127.0.0.1").then_some(()));
    assert!(back.is_some(), "the sessions of a dead node still count");
    for live in held {
        assert_eq!(live.wait_closed()["closed"], true);
    }
}

#[test]
fn sigterm_drains_with_healthz_503_and_health_probes_are_no_logins() {
    let p = installation(&[("PASSERELLE_SHUTDOWN_DRAIN_TIMEOUT", "30s")]);
    let mut a = p.serve_node("node-a", &[]);
    for _ in 0..20 {
        assert_eq!(get(a.admin_port, "/healthz"), ("200".into(), "ok\n".into()));
    }
    // A session that leaves on its own after 5 s holds the drain that long.
    let live = Live::start(&p, a.sftp_port, "alice", ALICE, 5);
    a.server.signal(Signal::TERM);
    let draining = wait_for(Duration::from_secs(5), || {
        let (code, body) = get(a.admin_port, "/healthz");
        (code == "503").then_some(body)
    });
    assert_eq!(draining.as_deref(), Some("draining: no new connections\n"));
    assert_eq!(listed(&p, "node-a")["status"], "draining");
    a.server.wait_for_line("listeners closed", Duration::from_secs(5));
    assert!(!logs_in(&p, a.sftp_port, "bob", BOB, "127.0.0.1"), "a draining node takes no new session");
    assert!(a.server.is_running(), "the live session holds the drain");
    assert_eq!(live.wait_closed()["closed"], false, "the live session was not cut");
    a.server.wait_for_line("node recorded as stopped", Duration::from_secs(20));
    assert_eq!(listed(&p, "node-a")["status"], "stopped");

    // The probes left no trace among the logins, and banned nothing.
    let audit = p.run(&["audit", "--json"]).json();
    let logins: Vec<&Value> = audit.as_array().expect("rows").iter().filter(|r| r["action"] == "login").collect();
    assert_eq!(logins.len(), 1, "only alice's login: {logins:#?}");
    assert_eq!(p.run(&["ban", "list", "--json"]).json(), json!([]));
}

#[test]
fn a_session_still_open_at_the_drain_timeout_is_ended() {
    let p = installation(&[("PASSERELLE_SHUTDOWN_DRAIN_TIMEOUT", "2s")]);
    let mut a = p.serve_node("node-a", &[]);
    let live = Live::start(&p, a.sftp_port, "alice", ALICE, 30);
    let stopping = unix_ms();
    assert!(a.server.stop_with(Signal::TERM).success());
    let ended = live.wait_closed();
    assert_eq!(ended["closed"], true, "{ended}");
    let after = (ended["closed_at"].as_f64().expect("closed_at") * 1000.0) as i64 - stopping;
    assert!((2000..7000).contains(&after), "the session ended {after} ms after SIGTERM, not at the drain timeout");
    assert!(a.server.output().contains("still open after shutdown.drain_timeout"));
    assert_eq!(listed(&p, "node-a")["status"], "stopped");
}
