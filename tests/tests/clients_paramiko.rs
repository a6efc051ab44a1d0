//! paramiko as integration scripts use it, through the whole conformance
//! scenario (upload, receipt, listing, download, temporary): with a password,
//! with a key, and falling back from one method to another on one
//! connection — an unknown key then the password (the everyday script with a
//! password and some key at hand), unknown keys of an ssh-agent then the
//! password, a wrong password then the key, keyboard-interactive then the
//! password. paramiko asks for the "ssh-userauth" service again before each
//! method; the server must answer every time (patches/russh/PATCH.md), and
//! still end the connection after `limits.max_auth_tries` failures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use passerelle_tests::{
    CONFORMANCE_LOGIN, CONFORMANCE_PASSWORD, ClientScript, Fixture, SftpScenario, SftpUser, audit_rows,
    conformance_setup, ssh_keygen, wait_for,
};
use serde_json::{Value, json};

const WRONG_PASSWORD: &str = "Wrong-Pelican-Harbour-71";

/// Runs the scenario of a client named `client` with paramiko, `plan` giving
/// how it logs in (the user's password or key is filled in), and checks it.
fn run_scenario(f: &Fixture, client: &str, password: bool, plan: Value) -> Value {
    let script = ClientScript::new(client);
    let scenario = SftpScenario::new(&script, &f.work(client));
    let user = if password { f.sftp_with_password(CONFORMANCE_LOGIN) } else { f.sftp(CONFORMANCE_LOGIN) };
    let mut plan = plan;
    plan["ops"] = scenario.ops.clone();
    let report = user.paramiko_plan(plan);
    scenario.check(f, &script, &report);
    report
}

/// How often paramiko logged `line` about its authentication.
fn logged(report: &Value, line: &str) -> usize {
    report["auth_log"].as_array().map_or(0, |lines| lines.iter().filter(|l| l.as_str() == Some(line)).count())
}

/// Checks that paramiko tried `keys` keys, each refused, before its password logged in.
fn assert_keys_then_password(report: &Value, keys: usize) {
    assert_eq!(logged(report, "Authentication (publickey) failed."), keys, "{report}");
    assert_eq!(logged(report, "Authentication (password) successful!"), 1, "{report}");
    let log = report["auth_log"].as_array().unwrap_or_else(|| panic!("no auth_log: {report}"));
    assert_eq!(log.last().and_then(Value::as_str), Some("Authentication (password) successful!"), "{report}");
}

/// A valid ed25519 key the server does not know; returns the private key file.
fn unknown_key(f: &Fixture, name: &str) -> PathBuf {
    let dir = f.work("unknown-keys");
    ssh_keygen(&dir, name, "ed25519", None, &format!("{name}@elsewhere"));
    dir.join(name)
}

#[test]
fn paramiko_with_a_password() {
    let f = conformance_setup().serve();
    run_scenario(&f, "paramiko-password", true, json!({}));
}

#[test]
fn paramiko_with_a_key() {
    let f = conformance_setup().serve();
    run_scenario(&f, "paramiko-key", false, json!({}));
}

/// The case: `SSHClient.connect(password=..., key_filename=<a key
/// the server does not know>)`. paramiko offers the key, then the password.
#[test]
fn paramiko_with_a_wrong_key_then_a_password() {
    let f = conformance_setup().serve();
    let key = unknown_key(&f, "id_stranger");
    let report =
        run_scenario(&f, "paramiko-wrong-key-password", true, json!({"client": "sshclient", "key_files": [key]}));
    assert_keys_then_password(&report, 1);
}

#[test]
fn paramiko_with_two_wrong_keys_then_a_password() {
    let f = conformance_setup().serve();
    let keys = [unknown_key(&f, "id_first"), unknown_key(&f, "id_second")];
    let report =
        run_scenario(&f, "paramiko-wrong-keys-password", true, json!({"client": "sshclient", "key_files": keys}));
    assert_keys_then_password(&report, 2);
}

/// An ssh-agent of the test's own, ended when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    /// Starts `ssh-agent` in the foreground on a socket in `dir` and adds `keys`.
    fn start(dir: &Path, keys: &[PathBuf]) -> Self {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("ssh-agent must be installed");
        let agent = Self { child, socket };
        assert!(
            wait_for(Duration::from_secs(10), || agent.socket.exists().then_some(())).is_some(),
            "ssh-agent made no socket"
        );
        let mut add = passerelle_tests::bounded("ssh-add", 20);
        add.env("SSH_AUTH_SOCK", &agent.socket).arg("-q").args(keys);
        let out = passerelle_tests::run_command(&mut add, b"");
        assert!(out.success(), "ssh-add failed: {}", out.stderr);
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// paramiko with `allow_agent=True`: every key of the agent (two the server
/// does not know), then the password.
#[test]
fn paramiko_with_agent_keys_then_a_password() {
    let f = conformance_setup().serve();
    let keys = [unknown_key(&f, "id_agent_one"), unknown_key(&f, "id_agent_two")];
    let agent = Agent::start(&f.work("agent"), &keys);
    let report = run_scenario(
        &f,
        "paramiko-agent-password",
        true,
        json!({"client": "sshclient", "allow_agent": true, "agent_socket": agent.socket}),
    );
    let tried = report["auth_log"].as_array().map_or(0, |lines| {
        lines.iter().filter_map(Value::as_str).filter(|l| l.starts_with("Trying SSH agent key")).count()
    });
    assert_eq!(tried, 2, "paramiko did not try both keys of the agent: {report}");
    assert_keys_then_password(&report, 2);
}

/// On one connection: `auth_password` with a wrong password is refused, then
/// `auth_publickey` with the user's key logs in.
#[test]
fn paramiko_with_a_wrong_password_then_a_key() {
    let f = conformance_setup().serve();
    let key = f.key(CONFORMANCE_LOGIN);
    let report = run_scenario(
        &f,
        "paramiko-wrong-password-key",
        false,
        json!({"auth_steps": [
            {"method": "password", "password": WRONG_PASSWORD},
            {"method": "publickey", "key": key},
        ]}),
    );
    assert_eq!(report["auth_steps"], json!(["rejected", "ok"]), "{report}");
    assert_eq!(logged(&report, "Authentication (password) failed."), 1, "{report}");
    assert_eq!(logged(&report, "Authentication (publickey) successful!"), 1, "{report}");
}

/// On one connection: keyboard-interactive is refused with the methods that
/// are open (publickey and password), then the password logs in.
#[test]
fn paramiko_with_keyboard_interactive_then_a_password() {
    let f = conformance_setup().serve();
    let report = run_scenario(
        &f,
        "paramiko-interactive-password",
        true,
        json!({"auth_steps": [
            {"method": "interactive"},
            {"method": "password", "password": CONFORMANCE_PASSWORD},
        ]}),
    );
    assert_eq!(report["auth_steps"], json!(["bad_type:publickey,password", "ok"]), "{report}");
}

/// The service request paramiko repeats before each attempt does not reset
/// the count: wrong passwords on one connection are checked
/// `limits.max_auth_tries` (6) times, then the connection ends.
#[test]
fn paramiko_wrong_passwords_on_one_connection_stop_at_max_auth_tries() {
    let f = conformance_setup().serve();
    let user = SftpUser::with_password(f.p.sftp_port(), CONFORMANCE_LOGIN, WRONG_PASSWORD, &f.work("wrong"));
    let report = user.paramiko_plan(json!({"mode": "auth_tries", "attempts": 12}));
    let outcomes: Vec<&str> =
        report["outcomes"].as_array().unwrap_or_else(|| panic!("{report}")).iter().filter_map(Value::as_str).collect();
    let rejected = outcomes.iter().filter(|o| **o == "rejected").count();
    assert!(outcomes.last().is_some_and(|o| o.starts_with("closed")), "the connection stayed open: {report}");
    // Six checked and refused; russh's own bound is one more (it counts the
    // "none" probe paramiko does not send), and paramiko may report the
    // disconnect itself as one more refusal.
    assert!((6..=8).contains(&rejected), "{rejected} refusals before the end: {report}");
    let failed = || audit_rows(&f.p).iter().filter(|r| r.action == "login" && r.outcome == "failed").count();
    assert_eq!(wait_for(Duration::from_secs(5), || (failed() >= 6).then_some(failed())), Some(6), "{report}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(failed(), 6, "more than max_auth_tries passwords were checked: {report}");
}
