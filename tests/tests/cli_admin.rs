//! The admin CLI as an operator uses it: tenants, users and SSH keys, on the
//! default SQLite installation. Fingerprints are checked against `ssh-keygen`,
//! files against their permissions, the catalog with `sqlite3`.

use std::path::{Path, PathBuf};

use passerelle_tests::{Outcome, Passerelle, mode, sqlite3, ssh_keygen, ssh_keygen_lf};
use serde_json::Value;

const PASSWORD: &str = "Correct-Horse-Battery-42";

/// Runs a command that must succeed and returns the whole outcome.
fn ok_with_stdin(p: &Passerelle, args: &[&str], stdin: &str) -> Outcome {
    let out = p.run_with_stdin(args, stdin);
    assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
    out
}

fn json(p: &Passerelle, args: &[&str]) -> Value {
    let out = p.run(args);
    assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
    out.json()
}

fn catalog(p: &Passerelle) -> PathBuf {
    p.layout().catalog_db()
}

/// The `SHA256:...` field of an `ssh-keygen -lf` line.
fn fingerprint_of(line: &str) -> String {
    line.split_whitespace().nth(1).expect("ssh-keygen -lf line").to_owned()
}

fn logins(users: &Value) -> Vec<String> {
    users.as_array().expect("array").iter().map(|u| u["login"].as_str().expect("login").to_owned()).collect()
}

fn user<'a>(users: &'a Value, login: &str) -> &'a Value {
    users
        .as_array()
        .expect("array")
        .iter()
        .find(|u| u["login"] == login)
        .unwrap_or_else(|| panic!("{login} in {users}"))
}

/// Tenant `acme` with user `alice` (password `PASSWORD`).
fn acme_with_alice() -> Passerelle {
    let p = Passerelle::new();
    p.tenant_with_user("acme", "alice", PASSWORD);
    p
}

#[test]
fn key_list_prints_what_ssh_keygen_prints() {
    let p = acme_with_alice();
    let scratch = p.scratch();
    let files = [
        ssh_keygen(&scratch, "id_ed25519", "ed25519", None, "alice@example"),
        ssh_keygen(&scratch, "id_ecdsa", "ecdsa", None, "alice@example"),
        ssh_keygen(&scratch, "id_rsa", "rsa", Some(3072), "alice@example"),
    ];
    let mut expected = String::new();
    for file in &files {
        let added = p.ok(&["key", "add", "alice", file.to_str().unwrap()]);
        assert_eq!(added, ssh_keygen_lf(file), "key add prints the key as ssh-keygen -lf does");
        expected.push_str(&ssh_keygen_lf(file));
    }

    assert_eq!(p.ok(&["key", "list", "alice"]), expected);

    let listed = json(&p, &["key", "list", "alice", "--json"]);
    let listed = listed.as_array().expect("key list --json is an array");
    assert_eq!(listed.len(), 3);
    for (key, file) in listed.iter().zip(&files) {
        let line = ssh_keygen_lf(file);
        assert_eq!(key["fingerprint"], fingerprint_of(&line));
        assert_eq!(key["comment"], "alice@example");
        assert_eq!(key["bits"].to_string(), line.split_whitespace().next().unwrap());
        let public = std::fs::read_to_string(file).unwrap();
        assert_eq!(key["public_key"], public.trim(), "the stored key is the .pub line");
    }
    assert_eq!(user(&json(&p, &["user", "list", "--json"]), "alice")["key_count"], 3);
}

#[test]
fn keys_come_from_standard_input_or_from_user_add() {
    let p = Passerelle::new();
    p.ok(&["tenant", "add", "acme"]);
    let scratch = p.scratch();
    let first = ssh_keygen(&scratch, "first", "ed25519", None, "bob@laptop");
    let second = ssh_keygen(&scratch, "second", "ecdsa", None, "bob@desktop");

    let created = p.run(&["user", "add", "acme", "bob", "--key", first.to_str().unwrap()]);
    assert!(created.success(), "{}", created.stderr);
    let from_stdin = ok_with_stdin(&p, &["key", "add", "bob", "-"], &std::fs::read_to_string(&second).unwrap());
    assert_eq!(from_stdin.stdout, ssh_keygen_lf(&second));

    assert_eq!(p.ok(&["key", "list", "bob"]), ssh_keygen_lf(&first) + &ssh_keygen_lf(&second));
    let bob = user(&json(&p, &["user", "list", "--json"]), "bob").clone();
    assert_eq!(bob["has_password"], false, "bob has keys only: {bob}");
    assert_eq!(bob["key_count"], 2);
}

#[test]
fn lists_and_show_give_valid_json() {
    let p = acme_with_alice();
    p.ok(&["tenant", "add", "beta"]);
    ok_with_stdin(&p, &["user", "add", "beta", "bob", "--password-stdin"], "Staple-Orbit-Lantern-77\n");

    let tenants = json(&p, &["tenant", "list", "--json"]);
    let names: Vec<&str> = tenants.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "beta"]);

    let acme = json(&p, &["tenant", "show", "acme", "--json"]);
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["database_backend"], "sqlite");
    assert!(acme["database_name"].is_string(), "{acme}");

    let users = json(&p, &["user", "list", "--json"]);
    assert_eq!(logins(&users), ["alice", "bob"]);
    let alice = user(&users, "alice");
    assert_eq!(alice["tenant"], "acme");
    assert_eq!(alice["has_password"], true);
    assert_eq!(alice["admin_locked"], false);
    assert_eq!(alice["key_count"], 0);
    assert_eq!(user(&users, "bob")["tenant"], "beta");

    assert_eq!(logins(&json(&p, &["user", "list", "--tenant", "beta", "--json"])), ["bob"]);
    assert_eq!(json(&p, &["key", "list", "alice", "--json"]), Value::Array(vec![]));

    // The text forms show the same things.
    let text = p.ok(&["tenant", "list"]);
    assert!(text.contains("acme") && text.contains("beta"), "{text}");
    let text = p.ok(&["user", "list"]);
    assert!(text.lines().any(|l| l.starts_with("alice") && l.contains("acme")), "{text}");
}

#[test]
fn tenant_tree_and_databases_are_private() {
    let p = acme_with_alice();
    let data = p.data_dir();
    let layout = p.layout();
    assert_eq!(mode(&data), 0o700, "data_dir");
    for dir in [layout.tenant_root("acme"), layout.inbox("acme"), layout.outbox("acme")] {
        assert!(dir.is_dir(), "{} exists", dir.display());
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    let entries: Vec<String> = std::fs::read_dir(layout.tenant_root("acme"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut entries = entries;
    entries.sort();
    assert_eq!(entries, ["inbox", "outbox"], "a tenant sees only its inbox and outbox");

    let show = json(&p, &["tenant", "show", "acme", "--json"]);
    let database = PathBuf::from(show["database_name"].as_str().expect("database_name"));
    assert!(database.is_file(), "tenant database {} exists", database.display());
    assert_eq!(mode(&database), 0o600, "tenant database");
    let database = database.canonicalize().unwrap();
    assert!(
        !database.starts_with(layout.tenants().canonicalize().unwrap()),
        "the tenant database {} must be out of every tenant tree",
        database.display()
    );
    assert_eq!(sqlite3(&database, "PRAGMA integrity_check"), "ok\n", "it is a real SQLite database");

    assert_eq!(mode(&catalog(&p)), 0o600, "catalog.db");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path) & 0o077, 0, "{} is private to passerelle's user", path.display());
    }
}

#[test]
fn passwords_are_stored_hashed_and_never_printed() {
    let p = Passerelle::new();
    let mut outcomes = vec![p.run(&["tenant", "add", "acme"])];
    outcomes.push(p.run_with_stdin(&["user", "add", "acme", "alice", "--password-stdin"], &format!("{PASSWORD}\n")));
    let changed = "Violet-Kettle-Summit-1987";
    outcomes.push(p.run_with_stdin(&["user", "passwd", "alice", "--password-stdin"], &format!("{changed}\r\n")));
    for args in [
        &["user", "list"][..],
        &["user", "list", "--json"],
        &["tenant", "show", "acme"],
        &["tenant", "show", "acme", "--json"],
        &["config", "show"],
    ] {
        outcomes.push(p.run(args));
    }
    for out in &outcomes {
        assert!(out.success(), "{out:?}");
        for secret in [PASSWORD, changed] {
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "password printed: {out:?}");
        }
    }

    let hash = sqlite3(&catalog(&p), "SELECT password_hash FROM users WHERE login = 'alice'");
    assert!(hash.starts_with("$argon2id$"), "stored as an argon2id hash: {hash}");
    for suffix in ["", "-wal"] {
        let file = PathBuf::from(format!("{}{suffix}", catalog(&p).display()));
        if let Ok(bytes) = std::fs::read(&file) {
            for secret in [PASSWORD, changed] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds a password in clear",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn user_lock_and_unlock_show_in_user_list() {
    let p = acme_with_alice();
    let locked = |p: &Passerelle| user(&json(p, &["user", "list", "--json"]), "alice")["admin_locked"].clone();
    assert_eq!(locked(&p), false);

    assert_eq!(p.ok(&["user", "lock", "alice"]), "user alice locked\n");
    assert_eq!(locked(&p), true);
    assert!(p.ok(&["user", "list"]).lines().any(|l| l.starts_with("alice") && l.ends_with("locked")));

    assert_eq!(p.ok(&["user", "unlock", "alice"]), "user alice unlocked\n");
    assert_eq!(locked(&p), false);
    assert!(p.ok(&["user", "list"]).lines().any(|l| l.starts_with("alice") && l.ends_with("active")));
}

#[test]
fn user_passwd_with_a_strong_password_replaces_the_hash() {
    let p = acme_with_alice();
    let hash = |p: &Passerelle| sqlite3(&catalog(p), "SELECT password_hash FROM users WHERE login = 'alice'");
    let before = hash(&p);
    let out = ok_with_stdin(&p, &["user", "passwd", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n");
    assert_eq!(out.stdout, "password of alice changed\n");
    let after = hash(&p);
    assert_ne!(before, after);
    assert!(after.starts_with("$argon2id$"), "{after}");
}

#[test]
fn user_remove_removes_the_user_and_their_keys() {
    let p = acme_with_alice();
    let key = ssh_keygen(&p.scratch(), "id", "ed25519", None, "alice@example");
    p.ok(&["key", "add", "alice", key.to_str().unwrap()]);

    assert_eq!(p.ok(&["user", "remove", "alice"]), "user alice removed\n");
    assert!(logins(&json(&p, &["user", "list", "--json"])).is_empty());
    let keys = p.run(&["key", "list", "alice"]);
    assert_eq!(keys.code, 2, "{keys:?}");
    assert!(keys.stderr.contains("alice"), "{}", keys.stderr);
    assert_eq!(sqlite3(&catalog(&p), "SELECT count(*) FROM ssh_keys"), "0\n", "no orphan key is left");

    // The login is free again, and the new user does not inherit the old key.
    ok_with_stdin(&p, &["user", "add", "acme", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n");
    assert_eq!(p.ok(&["key", "list", "alice"]), "");
}

#[test]
fn key_remove_by_fingerprint_removes_only_that_key() {
    let p = acme_with_alice();
    let scratch = p.scratch();
    let keep = ssh_keygen(&scratch, "keep", "ed25519", None, "alice@keep");
    let drop = ssh_keygen(&scratch, "drop", "ecdsa", None, "alice@drop");
    for file in [&keep, &drop] {
        p.ok(&["key", "add", "alice", file.to_str().unwrap()]);
    }
    let fingerprint = fingerprint_of(&ssh_keygen_lf(&drop));
    let out = p.ok(&["key", "remove", "alice", &fingerprint]);
    assert!(out.contains(&fingerprint), "{out}");
    assert_eq!(p.ok(&["key", "list", "alice"]), ssh_keygen_lf(&keep));
    assert_eq!(user(&json(&p, &["user", "list", "--json"]), "alice")["key_count"], 1);
}

#[test]
fn tenant_remove_purge_yes_destroys_tree_database_and_users() {
    let p = acme_with_alice();
    p.tenant_with_user("beta", "bob", "Staple-Orbit-Lantern-77");
    let key = ssh_keygen(&p.scratch(), "id", "ed25519", None, "alice@example");
    p.ok(&["key", "add", "alice", key.to_str().unwrap()]);
    p.ok(&["key", "add", "bob", key.to_str().unwrap()]);
    let layout = p.layout();
    std::fs::write(layout.inbox("acme").join("employees.csv"), "id;name\n1;Ada\n").unwrap();
    let acme_db = PathBuf::from(json(&p, &["tenant", "show", "acme", "--json"])["database_name"].as_str().unwrap());
    let beta_db = PathBuf::from(json(&p, &["tenant", "show", "beta", "--json"])["database_name"].as_str().unwrap());

    assert_eq!(p.ok(&["tenant", "remove", "acme", "--purge", "--yes"]), "tenant acme removed\n");

    assert!(!layout.tenant_root("acme").exists(), "the tenant tree is gone");
    assert!(!acme_db.exists(), "the tenant database {} is gone", acme_db.display());
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(!Path::new(&format!("{}{suffix}", acme_db.display())).exists());
    }
    let tenants = json(&p, &["tenant", "list", "--json"]);
    assert!(tenants.as_array().unwrap().iter().all(|t| t["name"] != "acme"), "{tenants}");
    assert_eq!(logins(&json(&p, &["user", "list", "--json"])), ["bob"]);
    assert_eq!(p.run(&["key", "list", "alice"]).code, 2);

    // The other tenant is untouched.
    assert!(layout.inbox("beta").is_dir());
    assert!(beta_db.is_file());
    assert_eq!(p.ok(&["key", "list", "bob"]), ssh_keygen_lf(&key));

    // The name can be used again, and starts empty.
    p.ok(&["tenant", "add", "acme"]);
    assert!(!layout.inbox("acme").join("employees.csv").exists());
    assert!(logins(&json(&p, &["user", "list", "--tenant", "acme", "--json"])).is_empty());
}

#[test]
fn allowed_networks_are_kept_with_the_tenant() {
    let p = Passerelle::new();
    p.ok(&["tenant", "add", "nets", "--allow-ip", "203.0.113.0/24", "--allow-ip", "2001:db8::/32"]);
    let show = json(&p, &["tenant", "show", "nets", "--json"]);
    let mut allowed: Vec<&str> = show["allowed_ips"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["2001:db8::/32", "203.0.113.0/24"]);
    let text = p.ok(&["tenant", "show", "nets"]);
    assert!(text.contains("203.0.113.0/24") && text.contains("2001:db8::/32"), "{text}");
}
