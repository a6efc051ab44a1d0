//! Text chosen by an anonymous client (a login name with terminal escapes,
//! line breaks and bidi overrides) reaches the operator escaped: in the
//! `audit` table and in plain-text logs no control byte of the client's
//! survives, while `audit --json` and JSON logs keep the exact string the
//! client sent.

use std::time::Duration;

use passerelle_tests::{Fixture, Setup, SftpUser, field, wait_for};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// The login an FTPS client sends (its `\n` ends the command line).
const FTPS_LOGIN: &str = "eve\x1b[2J\x1b]0;pwned\x07\u{202e}gpj.exe";
/// The login an SSH client sends: SSH carries a line break in a name.
const SSH_LOGIN: &str = "mallory\x1b[31m\r\nFORGED audit line\u{9b}";

/// Tenant `acme`, user `alice`, FTPS on, logs in `format`.
fn start(format: &str) -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).ftps().envs(&[("PASSERELLE_LOG_FORMAT", format)]).serve()
}

/// A failed FTPS login as [`FTPS_LOGIN`] (the command line goes on with a
/// forged one).
fn ftps_login_attempt(f: &Fixture) {
    let ftps = f.ftps("alice").script(json!({"mode": "implicit", "login": false, "ops": [
        {"op": "raw", "line": format!("USER {FTPS_LOGIN}\nFORGED")},
        {"op": "raw", "line": "PASS Wrong-Pelican-Harbour-71"},
    ]}));
    assert!(ftps.get("results").is_some(), "{ftps}");
}

/// The `audit --json` events whose login is `login`, waited for (bounded).
fn audited(f: &Fixture, login: &str) -> Vec<Value> {
    wait_for(Duration::from_secs(10), || {
        let events = f.p.run(&["audit", "--json"]).json().as_array().cloned().unwrap_or_default();
        let found: Vec<Value> = events.into_iter().filter(|e| e["login"] == login).collect();
        (!found.is_empty()).then_some(found)
    })
    .unwrap_or_else(|| panic!("no audit event for login {login:?}: {}", f.p.run(&["audit"]).stdout))
}

/// Control bytes other than the line breaks of `text` itself.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|&c| (c.is_control() && c != '\n') || c == '\u{202e}').collect()
}

#[test]
fn a_login_with_escapes_is_shown_escaped_and_stored_exactly() {
    let mut f = start("text");
    ftps_login_attempt(&f);
    let scratch = f.work("ssh");
    let ssh = SftpUser::with_password(f.p.sftp_port(), SSH_LOGIN, "Wrong-Pelican-Harbour-71", &scratch)
        .paramiko_plan(json!({"ops": []}));
    assert_eq!(ssh["auth"], "failed", "{ssh}");

    // The catalog and JSON keep what was received.
    for login in [FTPS_LOGIN, SSH_LOGIN] {
        let events = audited(&f, login);
        assert!(events.iter().all(|e| e["action"] == "login" && e["outcome"] == "failed"), "{events:?}");
    }

    // The table shows every byte as a visible escape.
    let table = f.p.run(&["audit"]);
    assert!(table.success(), "{}", table.stderr);
    assert_eq!(raw_controls(&table.stdout), Vec::<char>::new(), "raw control bytes in:\n{}", table.stdout);
    assert!(table.stdout.contains("eve\\x1b[2J\\x1b]0;pwned\\x07\\u{202e}gpj.exe"), "{}", table.stdout);
    assert!(table.stdout.contains("mallory\\x1b[31m\\r\\nFORGED audit line\\u{9b}"), "{}", table.stdout);
    assert!(!table.stdout.lines().any(|l| l.starts_with("FORGED")), "{}", table.stdout);

    // So do the plain-text logs.
    f.server.wait_for_line("mallory\\x1b[31m\\r\\nFORGED", Duration::from_secs(10));
    let logs = f.server.output();
    assert_eq!(raw_controls(&logs), Vec::<char>::new(), "raw control bytes in the log:\n{logs}");
    assert!(logs.contains("login=eve\\x1b[2J"), "{logs}");
    assert!(!logs.lines().any(|l| l.starts_with("FORGED")), "a forged log line:\n{logs}");
}

#[test]
fn json_logs_carry_the_exact_login() {
    let mut f = start("json");
    ftps_login_attempt(&f);
    let logged = wait_for(Duration::from_secs(10), || {
        f.server.json_events("audit").into_iter().find(|e| field(e, "login") == Some(FTPS_LOGIN))
    });
    assert!(logged.is_some(), "no audit log event with the exact login:\n{}", f.server.output());
    assert!(!f.server.output().contains('\x1b'), "JSON escapes control characters itself");
}
