//! asyncssh's SFTP client through the whole conformance scenario (upload,
//! receipt, listing, download, temporary), checking the server's host key
//! against the installation's, with a password and with a key; and refusing
//! a server whose host key is not the one it trusts.

use std::path::PathBuf;

use passerelle_tests::{CONFORMANCE_LOGIN, ClientScript, Fixture, SftpScenario, SftpUser, conformance_setup};
use serde_json::json;

/// The public host keys the server presents (`hostkeys/*.pub`).
fn host_keys(f: &Fixture) -> Vec<PathBuf> {
    let dir = f.p.layout().host_keys();
    let mut keys: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("host key entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "pub"))
        .collect();
    keys.sort();
    assert!(!keys.is_empty(), "no public host key in {}", dir.display());
    keys
}

fn run_scenario(f: &Fixture, client: &str, user: &SftpUser) {
    let script = ClientScript::new(client);
    let scenario = SftpScenario::new(&script, &f.work(client));
    let report = user.asyncssh_plan(json!({"host_keys": host_keys(f), "ops": scenario.ops}));
    scenario.check(f, &script, &report);
}

#[test]
fn asyncssh_with_a_password() {
    let f = conformance_setup().serve();
    run_scenario(&f, "asyncssh-password", &f.sftp_with_password(CONFORMANCE_LOGIN));
}

#[test]
fn asyncssh_with_a_key() {
    let f = conformance_setup().serve();
    run_scenario(&f, "asyncssh-key", &f.sftp(CONFORMANCE_LOGIN));
}

/// The check is real: with another key as the only trusted one, asyncssh
/// refuses the server before sending any credential.
#[test]
fn asyncssh_refuses_a_host_key_it_does_not_trust() {
    let f = conformance_setup().serve();
    let dir = f.work("other-host");
    let other = passerelle_tests::ssh_keygen(&dir, "other_host_key", "ed25519", None, "another host");
    let report = f.sftp_with_password(CONFORMANCE_LOGIN).asyncssh_plan(json!({"host_keys": [other], "ops": []}));
    assert_eq!(report["auth"], "error", "{report}");
    assert!(report["error"].as_str().is_some_and(|e| e.contains("Host key is not trusted")), "{report}");
}
