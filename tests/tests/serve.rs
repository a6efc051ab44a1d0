//! `passerelle serve`: the demo account, clean stops on SIGTERM and SIGINT,
//! admin commands while it runs, the host keys and TLS certificate it
//! generates, and refusing an unsafe data directory.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use passerelle_tests::{Passerelle, Server, free_port, mode, sqlite3, ssh_keygen, ssh_keygen_lf};
use rustix::process::Signal;
use serde_json::Value;

/// An installation whose admin endpoint has a port of its own, so that
/// servers of parallel tests do not compete for the default one.
fn installation() -> Passerelle {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
    p
}

/// Stops the server with `signal` and checks that it exits 0, promptly.
fn stop(mut server: Server, signal: Signal) {
    let started = Instant::now();
    let status: ExitStatus = server.stop_with(signal);
    assert!(status.success(), "exit after {signal:?}: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?} to stop", started.elapsed());
}

/// The credential announced on a line such as `... password XXXX (shown once)`,
/// if the word after "password" looks like one.
fn announced_password(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.trim_end_matches([':', '=']).eq_ignore_ascii_case("password"))
        .and_then(|i| words.get(i + 1))
        .map(|w| w.trim_matches(|c: char| matches!(c, ',' | ';' | '"' | '\'' | '(' | ')')))
        .filter(|w| w.len() >= 12)
        .map(str::to_owned)
}

fn demo_password_hash(p: &Passerelle) -> String {
    sqlite3(&p.layout().catalog_db(), "SELECT password_hash FROM users WHERE login = 'demo'")
}

#[test]
fn demo_prints_its_password_exactly_once() {
    let p = installation();
    let mut server = p.serve(&["--demo"]);
    let line = server.wait_for_line("password", Duration::from_secs(5));
    let password = announced_password(&line).unwrap_or_else(|| panic!("no password on line {line:?}"));

    let users = p.ok(&["user", "list", "--json"]);
    let users: Value = serde_json::from_str(&users).unwrap();
    let demo = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "demo")
        .unwrap_or_else(|| panic!("no demo user: {users}"));
    assert_eq!(demo["tenant"], "demo");
    assert_eq!(demo["has_password"], true);
    assert!(p.layout().inbox("demo").is_dir());
    assert!(demo_password_hash(&p).starts_with("$argon2id$"));

    let output = server.output();
    stop(server, Signal::TERM);
    let times = output.lines().filter(|l| l.contains(&password)).count();
    assert_eq!(times, 1, "the password is printed once:\n{output}");
}

#[test]
fn second_demo_start_keeps_the_password_and_prints_none() {
    let p = installation();
    let mut first = p.serve(&["--demo"]);
    let line = first.wait_for_line("password", Duration::from_secs(5));
    let password = announced_password(&line).expect("first start announces a password");
    stop(first, Signal::TERM);
    let hash = demo_password_hash(&p);

    let mut second = p.serve(&["--demo"]);
    let output = second.output();
    stop(second, Signal::INT);
    assert!(!output.contains(&password), "old password printed again:\n{output}");
    for line in output.lines() {
        assert_eq!(announced_password(line), None, "a new password was announced: {line}");
    }
    assert_eq!(demo_password_hash(&p), hash, "the password is unchanged");
    let users = p.ok(&["user", "list", "--tenant", "demo", "--json"]);
    let users: Value = serde_json::from_str(&users).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_on_sigint() {
    let p = installation();
    let server = p.serve(&[]);
    stop(server, Signal::TERM);
    let server = p.serve(&[]);
    stop(server, Signal::INT);
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let p = installation();
    let server = p.serve(&["--demo"]);
    let started = Instant::now();
    p.ok(&["tenant", "add", "other"]);
    let out = p.run_with_stdin(&["user", "add", "other", "olga", "--password-stdin"], "Correct-Horse-Battery-42\n");
    assert!(out.success(), "{out:?}");
    let key = ssh_keygen(&p.scratch(), "olga", "ed25519", None, "olga@example");
    p.ok(&["key", "add", "olga", key.to_str().unwrap()]);
    assert_eq!(p.ok(&["key", "list", "olga"]), ssh_keygen_lf(&key));
    p.ok(&["user", "lock", "olga"]);
    p.ok(&["user", "unlock", "olga"]);
    let tenants = p.ok(&["tenant", "list", "--json"]);
    assert!(tenants.contains("\"other\""), "{tenants}");
    p.ok(&["tenant", "remove", "other", "--purge", "--yes"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "admin commands waited for the server: {:?}",
        started.elapsed()
    );
    stop(server, Signal::TERM);
}

/// What `openssl x509 -noout -fingerprint -sha256` prints after the `=`.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split_once('=').expect("Fingerprint=...").1.to_owned()
}

#[test]
fn host_keys_are_private_and_hostkey_show_matches_ssh_keygen_and_openssl() {
    let p = installation();
    let mut server = p.serve(&[]);
    let log = server.output();
    stop(server, Signal::TERM);

    let hostkeys = p.layout().host_keys();
    assert_eq!(mode(&hostkeys) & 0o077, 0, "hostkeys/ is private");
    let ed25519 = hostkeys.join("ssh_host_ed25519_key.pub");
    assert!(ed25519.is_file(), "{} exists", ed25519.display());
    for entry in std::fs::read_dir(&hostkeys).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pub") {
            assert_eq!(mode(&path) & 0o022, 0, "{} is writable by others", path.display());
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(&p.layout().tls_key()), 0o600, "TLS private key");

    let show = p.ok(&["hostkey", "show"]);
    let ed25519_line = ssh_keygen_lf(&ed25519);
    let ed25519_fingerprint = ed25519_line.split_whitespace().nth(1).unwrap();
    assert!(show.contains(ed25519_line.trim()), "hostkey show:\n{show}\nssh-keygen -lf:\n{ed25519_line}");
    assert!(log.contains(ed25519_fingerprint), "serve logs the host key:\n{log}");
    let tls_fingerprint = openssl_fingerprint(&p.layout().tls_cert());
    assert!(
        show.lines().any(|l| l.contains("tls") && l.contains(&tls_fingerprint)),
        "hostkey show:\n{show}\nopenssl: {tls_fingerprint}"
    );
    assert!(log.contains(&tls_fingerprint), "serve logs the certificate:\n{log}");

    let json: Value = serde_json::from_str(&p.ok(&["hostkey", "show", "--json"])).unwrap();
    let all = json.to_string();
    assert!(all.contains(ed25519_fingerprint) && all.contains(&tls_fingerprint), "{json}");
}

#[test]
fn init_before_the_first_start_makes_the_keys_serve_uses() {
    let p = installation();
    let out = p.run(&["hostkey", "show"]);
    assert_eq!(out.code, 2, "hostkey show generates nothing: {out:?}");
    assert!(out.stderr.contains("passerelle init"), "{}", out.stderr);
    assert!(!p.layout().host_keys().exists(), "hostkey show created host keys");
    let created = p.ok(&["init"]);
    assert!(created.contains("SSH host keys") && created.contains("FTPS certificate"), "{created}");
    assert!(p.ok(&["init"]).contains("nothing created"), "init is idempotent");
    let before = p.ok(&["hostkey", "show"]);
    let ed25519 = p.layout().host_keys().join("ssh_host_ed25519_key.pub");
    let key_before = std::fs::read(&ed25519).unwrap();
    let cert_before = std::fs::read(p.layout().tls_cert()).unwrap();

    let server = p.serve(&[]);
    stop(server, Signal::TERM);

    assert_eq!(std::fs::read(&ed25519).unwrap(), key_before);
    assert_eq!(std::fs::read(p.layout().tls_cert()).unwrap(), cert_before);
    assert_eq!(p.ok(&["hostkey", "show"]), before);
}

#[test]
fn data_dir_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    for unsafe_mode in [0o777, 0o770] {
        let p = installation();
        let data = p.data_dir();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(unsafe_mode)).unwrap();

        for args in [&["serve"][..], &["serve", "--demo"], &["tenant", "add", "acme"]] {
            let out = p.run(args);
            assert_eq!(out.code, 2, "{args:?} with mode {unsafe_mode:o}: {out:?}");
            let message = out.stderr.trim_end();
            assert_eq!(message.lines().count(), 1, "one line: {message:?}");
            assert!(message.contains("data_dir") && message.contains(&format!("{unsafe_mode:o}")), "{message}");
            assert!(!message.contains("password"), "{message}");
        }
        let left: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
        assert!(left.is_empty(), "nothing is created in an unsafe data_dir");
    }
}
