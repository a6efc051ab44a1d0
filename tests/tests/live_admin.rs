//! Admin changes reach live sessions: `user lock`, `user remove`, `key
//! remove` (of the key a session used), `user passwd` (sessions that logged
//! in with a password), allowlist changes and `tenant remove --purge` end
//! the sessions they concern within 2 s of the change, over SFTP (paramiko
//! sees the connection closed) and FTPS (an unasked 421 saying why), with a
//! `session_end` row in the audit trail; everyone else's sessions go on.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passerelle_tests::{Fixture, FtpsUser, Setup, SftpUser, wait_for, wait_for_audit};
use serde_json::{Value, json};

const ALICE: &str = "Quartz-Lantern-Velvet-93";
const BOB: &str = "Harbor-Thistle-Comet-58";

/// The promise: a session ends within this many seconds of the change.
const WITHIN_SECS: f64 = 2.0;

/// How long a session that must be ended waits before giving up.
const ENDED_WAIT_SECS: u64 = 15;

/// How long a session that must go on is watched.
const UNTOUCHED_WAIT_SECS: u64 = 4;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// A client holding a session open in a thread of its own.
struct Live {
    ready: PathBuf,
    client: JoinHandle<Value>,
}

impl Live {
    /// `user` stays logged in over SFTP (paramiko) for up to `secs`, then
    /// lists `/inbox` if it still can.
    fn sftp(f: &Fixture, name: &str, user: SftpUser, secs: u64) -> Self {
        let ready = f.work("ready").join(name);
        let op = json!({ "op": "wait_closed", "ready_file": ready, "timeout": secs });
        let client = std::thread::spawn(move || user.paramiko(json!([op, { "op": "listdir", "path": "/inbox" }])));
        Self::connected(ready, client)
    }

    /// `user` stays logged in over explicit FTPS for up to `secs`, waiting
    /// for an unasked reply, then sends NOOP if it still can.
    fn ftps(f: &Fixture, name: &str, user: FtpsUser, secs: u64) -> Self {
        let ready = f.work("ready").join(name);
        let op = json!({ "op": "wait_reply", "ready_file": ready, "timeout": secs });
        let client = std::thread::spawn(move || user.script(json!({ "ops": [op, { "op": "raw", "line": "NOOP" }] })));
        Self::connected(ready, client)
    }

    /// Waits (bounded) until the client is logged in and idle.
    fn connected(ready: PathBuf, client: JoinHandle<Value>) -> Self {
        let up = wait_for(Duration::from_secs(30), || ready.exists().then_some(()));
        assert!(up.is_some() || client.is_finished(), "the client never logged in");
        Self { ready, client }
    }

    fn report(self) -> Value {
        assert!(self.ready.exists(), "the client never logged in");
        self.client.join().expect("client thread")
    }
}

/// Runs an admin command that must succeed; returns the time it finished.
fn change(f: &Fixture, args: &[&str], stdin: &str) -> f64 {
    let out = f.p.run_with_stdin(args, stdin);
    assert!(out.success(), "passerelle {args:?}: {}", out.stderr);
    unix_now()
}

/// The SFTP session was closed by the server within the promise after `changed`.
fn assert_ended(report: &Value, changed: f64, what: &str) {
    let waited = &report["results"][0];
    assert_eq!(waited["value"]["closed"], true, "{what}: the session was not ended: {report:#}");
    let after = waited["value"]["closed_at"].as_f64().expect("closed_at") - changed;
    assert!(after < WITHIN_SECS, "{what}: the session ended {after:.2} s after the change");
}

/// The SFTP session went on, and still works.
fn assert_untouched(report: &Value, what: &str) {
    assert_eq!(report["results"][0]["value"]["closed"], false, "{what}: {report:#}");
    assert_eq!(report["results"][1]["ok"], true, "{what}: the session no longer works: {report:#}");
}

/// The audit trail has the `session_end` row of `login` with `reason`.
fn assert_audited(f: &Fixture, protocol: &str, reason: &str) {
    wait_for_audit(&f.p, &format!("session_end ({reason})"), |r| {
        r.action == "session_end" && r.protocol == protocol && r.detail == reason
    });
}

#[test]
fn user_lock_ends_the_users_sessions_within_two_seconds_and_no_one_elses() {
    let f = Setup::new().user("acme", "alice", ALICE).user("globex", "bob", BOB).serve();
    let alice = Live::sftp(&f, "alice", f.sftp("alice"), ENDED_WAIT_SECS);
    let bob = Live::sftp(&f, "bob", f.sftp("bob"), UNTOUCHED_WAIT_SECS);

    let changed = change(&f, &["user", "lock", "alice"], "");

    assert_ended(&alice.report(), changed, "user lock");
    assert_untouched(&bob.report(), "bob's session");
    assert_audited(&f, "sftp", "user locked by an administrator");
    let refused = f.sftp("alice").paramiko(json!([]));
    assert_eq!(refused["auth"], "failed", "a locked user cannot log in again: {refused:#}");
}

#[test]
fn key_remove_ends_that_keys_sessions_and_passwd_ends_password_sessions() {
    let f = Setup::new().user("acme", "alice", ALICE).serve();
    let keys = f.p.run(&["key", "list", "alice", "--json"]).json();
    let fingerprint = keys[0]["fingerprint"].as_str().expect("alice's key").to_owned();

    let by_key = Live::sftp(&f, "key", f.sftp("alice"), ENDED_WAIT_SECS);
    let by_password = Live::sftp(&f, "password-1", f.sftp_with_password("alice"), UNTOUCHED_WAIT_SECS);
    let changed = change(&f, &["key", "remove", "alice", &fingerprint], "");
    assert_ended(&by_key.report(), changed, "key remove");
    assert_untouched(&by_password.report(), "a password session when a key goes");
    assert_audited(&f, "sftp", &format!("key {fingerprint} removed by an administrator"));

    let by_password = Live::sftp(&f, "password-2", f.sftp_with_password("alice"), ENDED_WAIT_SECS);
    let changed = change(&f, &["user", "passwd", "alice", "--password-stdin"], "Maple-Orbit-Canyon-4721\n");
    assert_ended(&by_password.report(), changed, "user passwd");
    assert_audited(&f, "sftp", "password changed by an administrator");
}

#[test]
fn allowlist_changes_and_tenant_removal_end_the_sessions_they_exclude() {
    let f = Setup::new().user("acme", "alice", ALICE).user("globex", "bob", BOB).serve();

    let alice = Live::sftp(&f, "alice-1", f.sftp("alice"), ENDED_WAIT_SECS);
    let changed = change(&f, &["user", "allow-ip", "alice", "--set", "192.0.2.0/24"], "");
    assert_ended(&alice.report(), changed, "user allow-ip");
    assert_audited(&f, "sftp", "address 127.0.0.1 no longer allowed for user alice");

    change(&f, &["user", "allow-ip", "alice", "--clear"], "");
    let alice = Live::sftp(&f, "alice-2", f.sftp("alice"), ENDED_WAIT_SECS);
    let bob = Live::sftp(&f, "bob", f.sftp("bob"), UNTOUCHED_WAIT_SECS + 4);
    let started = unix_now();
    change(&f, &["tenant", "remove", "acme", "--purge", "--yes"], "");
    // The command itself waits for the sessions to end before it takes the tree apart.
    assert_ended(&alice.report(), started, "tenant remove");
    assert_untouched(&bob.report(), "another tenant's session");
    assert_audited(&f, "sftp", "tenant removed by an administrator");
}

#[test]
fn user_remove_ends_an_ftps_session_with_421_saying_why() {
    let f = Setup::new().user("acme", "alice", ALICE).user("globex", "bob", BOB).ftps().serve();
    let alice = Live::ftps(&f, "alice", f.ftps("alice"), ENDED_WAIT_SECS);
    let bob = Live::ftps(&f, "bob", f.ftps("bob"), UNTOUCHED_WAIT_SECS);

    let changed = change(&f, &["user", "remove", "alice"], "");

    let alice = alice.report();
    let told = &alice["results"][0];
    assert_eq!(told["code"], 421, "{alice:#}");
    assert_eq!(told["reply"], "421 session ended: user removed by an administrator", "{alice:#}");
    let after = told["value"]["closed_at"].as_f64().expect("closed_at") - changed;
    assert!(after < WITHIN_SECS, "the FTPS session ended {after:.2} s after the change");
    let bob = bob.report();
    assert_eq!(bob["results"][0]["value"]["silent"], true, "bob was told something: {bob:#}");
    assert_eq!(bob["results"][1]["code"], 200, "bob's session no longer works: {bob:#}");
    assert_audited(&f, "ftps", "user removed by an administrator");
}
