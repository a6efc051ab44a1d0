//! Logins under attack, end to end with real clients bound to loopback
//! source addresses (127.0.0.x): password guesses from outside an account's
//! allowlists, or against a key-only account, lock nobody out; guesses from
//! an admitted address lock a password account at the threshold even when
//! they arrive in parallel; a burst of password logins runs at most
//! `limits.max_concurrent_password_checks` argon2 verifications at once,
//! refuses the rest like a wrong password, and keeps key logins fast.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use passerelle_tests::{
    AuditRow, Fixture, Outcome, Setup, SftpUser, audit_rows, bounded, login_burst, run_command, ssh_keygen, wait_for,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";
const WRONG: &str = "Not-The-Password-4711";

/// Failed logins audited for `login` with `reason` in their detail.
fn failures(f: &Fixture, login: &str, reason: &str) -> usize {
    let events = f.p.run(&["audit", "--json", "--login", login, "--limit", "10000"]).json();
    let events = events.as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["action"] == "login" && e["detail"].as_str().is_some_and(|d| d.ends_with(reason)))
        .count()
}

fn locked_until(f: &Fixture, login: &str) -> Value {
    let users = f.p.run(&["user", "list", "--json"]).json();
    let user = users.as_array().and_then(|u| u.iter().find(|u| u["login"] == login).cloned());
    user.unwrap_or_else(|| panic!("{login} in {users}"))["locked_until"].clone()
}

fn account_locks(f: &Fixture) -> usize {
    audit_rows(&f.p).iter().filter(|r: &&AuditRow| r.action == "account_lock").count()
}

/// `connections` password logins at once on SFTP port `port`, spread over
/// `logins` and `sources`.
fn burst(port: u16, logins: &[&str], password: &str, sources: &[&str], connections: usize) -> Value {
    login_burst(&json!({
        "port": port, "users": logins, "password": password,
        "sources": sources, "connections": connections, "timeout": 20,
    }))
}

/// A key-only user `kara` of tenant `acme`, who may log in from 127.0.0.5 only.
fn add_key_only_user(f: &Fixture) -> SftpUser {
    let public = ssh_keygen(&f.p.scratch(), "id_kara", "ed25519", None, "kara@test");
    f.p.ok(&["user", "add", "acme", "kara", "--key", &public.display().to_string(), "--allow-ip", "127.0.0.5"]);
    let scratch = f.work("kara");
    SftpUser::with_key(f.p.sftp_port(), "kara", &f.p.scratch().join("id_kara"), &scratch).from_address("127.0.0.5")
}

#[test]
fn password_guesses_from_outside_the_allowlists_or_against_a_key_only_account_lock_nobody_out() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .envs(&[
            ("PASSERELLE_ACCOUNT_LOCK_MAX_FAILURES", "4"),
            ("PASSERELLE_ACCOUNT_LOCK_LOCK_TIME", "1h"),
            ("PASSERELLE_LIMITS_MAX_STARTUPS", "100:30:200"),
            // Bursts from few sources on purpose (the rate per source: defence_sources.rs).
            ("PASSERELLE_LIMITS_CONNECTION_RATE", "100000"),
            ("PASSERELLE_LIMITS_CONNECTION_BURST", "100000"),
        ])
        .serve();
    let kara = add_key_only_user(&f);
    f.p.ok(&["user", "allow-ip", "alice", "--set", "127.0.0.6/32"]);

    // 30 guesses for each, from five addresses outside the allowlists (six
    // per address: not enough for a ban, which is not what is tested here).
    for (login, first) in [("kara", 20), ("alice", 30)] {
        let outsiders: Vec<String> = (first..first + 5).map(|n| format!("127.0.0.{n}")).collect();
        let outsiders: Vec<&str> = outsiders.iter().map(String::as_str).collect();
        let report = burst(f.p.sftp_port(), &[login], WRONG, &outsiders, 30);
        assert_eq!(report["outcomes"]["rejected"], 30, "{report}");
    }
    // Five guesses from kara's own address: a key-only account has no password to guess.
    let report = burst(f.p.sftp_port(), &["kara"], WRONG, &["127.0.0.5"], 5);
    assert_eq!(report["outcomes"]["rejected"], 5, "{report}");

    let out = kara.sftp_batch("ls /\n");
    assert!(out.success(), "kara logs in with its key from its address: {}", out.stderr);
    let alice = f.sftp_with_password("alice").from_address("127.0.0.6");
    let out = alice.sftp_batch("ls /\n");
    assert!(out.success(), "alice logs in with her password from her address: {}", out.stderr);
    assert_eq!(locked_until(&f, "kara"), Value::Null);
    assert_eq!(locked_until(&f, "alice"), Value::Null);
    assert_eq!(account_locks(&f), 0);
    // Each guess is audited as coming from outside the allowlists, or as
    // refused for want of a verification slot when the machine is busy.
    for login in ["kara", "alice"] {
        let (denied, busy) = (failures(&f, login, "denied_ip"), failures(&f, login, "password_checks_busy"));
        assert!(denied > 0 && denied + busy == 30, "{login}: {denied} denied_ip, {busy} busy");
    }
    assert!(failures(&f, "kara", "no_password") > 0, "guesses against a key-only account audited as such");
}

#[test]
fn parallel_wrong_passwords_from_an_admitted_address_lock_at_the_threshold() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .envs(&[
            ("PASSERELLE_ACCOUNT_LOCK_MAX_FAILURES", "10"),
            ("PASSERELLE_ACCOUNT_LOCK_LOCK_TIME", "1h"),
            ("PASSERELLE_DEFENDER_THRESHOLD", "1000"),
            ("PASSERELLE_LIMITS_MAX_CONNECTIONS_PER_IP", "100"),
            ("PASSERELLE_LIMITS_MAX_STARTUPS", "100:30:200"),
            // Bursts from few sources on purpose (the rate per source: defence_sources.rs).
            ("PASSERELLE_LIMITS_CONNECTION_RATE", "100000"),
            ("PASSERELLE_LIMITS_CONNECTION_BURST", "100000"),
        ])
        .serve();
    // Bursts of 30 at once until the lock (on a busy machine part of a burst
    // may be refused for want of a verification slot, which does not count).
    for _ in 0..6 {
        let report = burst(f.p.sftp_port(), &["alice"], WRONG, &["127.0.0.31", "127.0.0.32"], 30);
        assert_eq!(report["outcomes"]["rejected"], 30, "{report}");
        if wait_for(Duration::from_secs(2), || (account_locks(&f) > 0).then_some(())).is_some() {
            break;
        }
    }
    assert!(account_locks(&f) > 0, "the account is locked: {:?}", audit_rows(&f.p));
    assert_eq!(account_locks(&f), 1, "one lock for parallel failures");
    let counted = failures(&f, "alice", "wrong_password");
    assert!((10..20).contains(&counted), "the lock comes at the threshold (10), not later: {counted} wrong passwords");
    assert!(locked_until(&f, "alice").is_string());
    let out = f.sftp_with_password("alice").from_address("127.0.0.33").sftp_batch("ls /\n");
    assert!(!out.success(), "a locked account refuses even the right password");
    f.p.ok(&["user", "unlock", "alice"]);
    assert!(f.sftp("alice").from_address("127.0.0.33").sftp_batch("ls /\n").success());
}

/// `curl` of the admin endpoint's `/metrics`.
fn metrics(port: u16) -> String {
    let mut command = bounded("curl", 10);
    command.args(["-s", &format!("http://127.0.0.1:{port}/metrics")]);
    let out: Outcome = run_command(&mut command, b"");
    out.stdout
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_burst_of_password_logins_is_bounded_and_key_logins_stay_fast() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .envs(&[
            ("PASSERELLE_LIMITS_MAX_CONCURRENT_PASSWORD_CHECKS", "2"),
            ("PASSERELLE_DEFENDER_THRESHOLD", "1000"),
            ("PASSERELLE_LIMITS_MAX_CONNECTIONS_PER_IP", "300"),
            ("PASSERELLE_LIMITS_MAX_STARTUPS", "300:30:400"),
            // Bursts from few sources on purpose (the rate per source: defence_sources.rs).
            ("PASSERELLE_LIMITS_CONNECTION_RATE", "100000"),
            ("PASSERELLE_LIMITS_CONNECTION_BURST", "100000"),
        ])
        .serve();
    let (admin, port) = (f.p.admin_port(), f.p.sftp_port());
    let done = AtomicBool::new(false);
    let (report, peak, key_login) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0.0_f64;
            let started = Instant::now();
            while !done.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(120) {
                let in_flight = sample(&metrics(admin), "passerelle_password_checks_in_flight").unwrap_or(0.0);
                peak = peak.max(in_flight);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        let attack = s.spawn(move || {
            let sources = ["127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"];
            // Half known, half unknown logins: decoy verifications take turns too.
            burst(port, &["alice", "mallory"], WRONG, &sources, 200)
        });
        let ready = wait_for(Duration::from_secs(30), || {
            (sample(&metrics(admin), "passerelle_password_checks_in_flight").unwrap_or(0.0) > 0.0).then_some(())
        });
        assert!(ready.is_some(), "the burst reached the password checks");
        let started = Instant::now();
        let out = f.sftp("alice").from_address("127.0.0.45").sftp_batch("ls /\n");
        let key_login = (out, started.elapsed());
        let report = attack.join().expect("attack thread");
        done.store(true, Ordering::Release);
        (report, sampler.join().expect("sampler thread"), key_login)
    });
    let (out, took) = key_login;
    assert!(out.success(), "alice's key login during the burst: {}", out.stderr);
    assert!(took < Duration::from_secs(2), "alice's key login took {took:?}");
    assert!((1.0..=2.0).contains(&peak), "password checks in flight peaked at {peak} (bound 2)");
    assert_eq!(report["outcomes"]["rejected"], 200, "every attempt gets the wrong-password answer: {report}");
    let refused = sample(&metrics(admin), "passerelle_password_checks_refused_total").unwrap_or(0.0);
    assert!(refused > 0.0, "the queue overflowed and refused checks");
    assert!(failures(&f, "alice", "password_checks_busy") > 0, "refusals audited as password_checks_busy");
}
