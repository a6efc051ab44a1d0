//! Every bad input to the admin CLI is refused with exit status 2 and a
//! one-line reason on standard error, and changes nothing: the lists, the
//! catalog rows and the files under the data directory are the same before
//! and after. Passwords never appear in what a command prints.

use std::path::{Path, PathBuf};

use passerelle_tests::{Passerelle, sqlite3, ssh_keygen, ssh_keygen_lf};

const ALICE_PASSWORD: &str = "Correct-Horse-Battery-42";
const BOB_PASSWORD: &str = "Staple-Orbit-Lantern-77";

/// Tenant `acme` with `alice` (password and one ed25519 key), tenant `beta` with `bob`.
struct Installation {
    p: Passerelle,
    alice_key: PathBuf,
}

fn installation() -> Installation {
    let p = Passerelle::new();
    p.tenant_with_user("acme", "alice", ALICE_PASSWORD);
    p.tenant_with_user("beta", "bob", BOB_PASSWORD);
    let alice_key = ssh_keygen(&p.scratch(), "alice", "ed25519", None, "alice@example");
    p.ok(&["key", "add", "alice", alice_key.to_str().unwrap()]);
    Installation { p, alice_key }
}

/// Everything a refused command must leave as it was.
fn snapshot(p: &Passerelle) -> String {
    let mut state = String::new();
    for args in [
        &["tenant", "list", "--json"][..],
        &["user", "list", "--json"],
        &["key", "list", "alice", "--json"],
        &["key", "list", "bob", "--json"],
    ] {
        let out = p.run(args);
        state.push_str(&format!("$ {args:?} -> {}\n{}{}\n", out.code, out.stdout, out.stderr));
    }
    // Catalog rows, audit trail and its chain head aside (a refusal may well be worth recording).
    let catalog = p.layout().catalog_db();
    let tables = sqlite3(
        &catalog,
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT IN ('audit_events', 'audit_chain', '_sqlx_migrations') \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    );
    for table in tables.lines() {
        state.push_str(&format!("table {table}:\n{}", sqlite3(&catalog, &format!("SELECT * FROM \"{table}\""))));
    }
    // Files and their modes; SQLite's own -wal/-shm files come and go.
    let mut files = Vec::new();
    walk(&p.data_dir(), &p.data_dir(), &mut files);
    files.sort();
    state.push_str(&files.join("\n"));
    state
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy();
        if name.ends_with("-wal") || name.ends_with("-shm") {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        files.push(format!("{relative} {:o}", passerelle_tests::mode(&path)));
        if path.is_dir() {
            walk(root, &path, files);
        }
    }
}

/// Runs `args` with `stdin` and checks that it is refused (exit 2, one line on
/// standard error naming `reason`, nothing on standard output) and changes nothing.
fn assert_refused(p: &Passerelle, args: &[&str], stdin: &str, reason: &str) {
    let before = snapshot(p);
    let out = p.run_with_stdin(args, stdin);
    assert_eq!(out.code, 2, "{args:?} must be refused with exit 2: {out:?}");
    let message = out.stderr.trim_end();
    assert_eq!(message.lines().count(), 1, "{args:?}: the reason is one line: {:?}", out.stderr);
    assert!(
        message.to_lowercase().contains(&reason.to_lowercase()),
        "{args:?}: the reason {message:?} should mention {reason:?}"
    );
    assert_eq!(out.stdout, "", "{args:?} prints nothing on standard output");
    let typed = if args.contains(&"--password-stdin") { stdin.trim_end() } else { "" };
    for secret in [typed, ALICE_PASSWORD, BOB_PASSWORD] {
        if !secret.is_empty() {
            assert!(!out.stderr.contains(secret), "{args:?} printed a password: {}", out.stderr);
        }
    }
    assert_eq!(before, snapshot(p), "{args:?} was refused but changed something");
}

fn too_long() -> String {
    "a".repeat(300)
}

#[test]
fn bad_tenant_names_are_refused() {
    let Installation { p, .. } = installation();
    let long = too_long();
    for name in ["../x", "a/b", "", "Acme", "a b", "acmé", ".", long.as_str()] {
        assert_refused(&p, &["tenant", "add", name], "", "tenant name");
        assert_refused(
            &p,
            &["user", "add", name, "carol", "--password-stdin"],
            "Violet-Kettle-Summit-1987\n",
            "tenant",
        );
    }
    for name in ["../x", "a/b"] {
        assert_refused(&p, &["tenant", "show", name], "", "tenant name");
        assert_refused(&p, &["tenant", "remove", name, "--purge", "--yes"], "", "tenant name");
    }
    assert!(!p.data_dir().join("x").exists() && !p.scratch().join("x").exists());
}

#[test]
fn bad_logins_are_refused() {
    let Installation { p, .. } = installation();
    let long = too_long();
    for login in ["../x", "a/b", "", "Alice", "a b", ".", long.as_str()] {
        assert_refused(&p, &["user", "add", "acme", login, "--password-stdin"], "Violet-Kettle-Summit-1987\n", "login");
    }
    for login in ["../x", "Alice"] {
        for verb in ["remove", "lock", "unlock"] {
            assert_refused(&p, &["user", verb, login], "", "login");
        }
        assert_refused(&p, &["key", "list", login], "", "login");
    }
}

#[test]
fn duplicate_tenants_and_logins_are_refused() {
    let Installation { p, .. } = installation();
    assert_refused(&p, &["tenant", "add", "acme"], "", "already exists");
    assert_refused(&p, &["user", "add", "acme", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n", "alice");
    // Logins are unique across tenants.
    assert_refused(&p, &["user", "add", "beta", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n", "alice");
    assert_refused(&p, &["user", "add", "acme", "bob"], "", "bob");
}

#[test]
fn users_of_missing_tenants_and_missing_users_are_refused() {
    let Installation { p, alice_key } = installation();
    assert_refused(&p, &["user", "add", "nope", "carol", "--password-stdin"], "Violet-Kettle-Summit-1987\n", "nope");
    assert_refused(&p, &["tenant", "show", "nope"], "", "nope");
    assert_refused(&p, &["tenant", "remove", "nope", "--purge", "--yes"], "", "nope");
    for verb in ["remove", "lock", "unlock"] {
        assert_refused(&p, &["user", verb, "carol"], "", "carol");
    }
    assert_refused(&p, &["user", "passwd", "carol", "--password-stdin"], "Violet-Kettle-Summit-1987\n", "carol");
    assert_refused(&p, &["key", "add", "carol", alice_key.to_str().unwrap()], "", "carol");
    assert_refused(&p, &["key", "list", "carol"], "", "carol");
}

#[test]
fn weak_passwords_are_refused_and_never_echoed() {
    let Installation { p, .. } = installation();
    let add = ["user", "add", "acme", "carol", "--password-stdin"];
    assert_refused(&p, &add, "Sh0rt-Pass!\n", "12");
    assert_refused(&p, &add, "password1234\n", "weak");
    assert_refused(&p, &add, "\n", "password");
    assert_refused(&p, &add, "", "password");
    assert_refused(&p, &add, "Violet-carol-Summit-1987\n", "login");
    assert_refused(&p, &add, "Violet-acme-Summit-1987\n", "tenant");
    // A login long enough to be a password of its own.
    let login = "carol.wonderland-1987";
    let same = ["user", "add", "acme", login, "--password-stdin"];
    assert_refused(&p, &same, &format!("{login}\n"), "login");
    assert_refused(&p, &same, &format!("Xx-{login}-Yy\n"), "login");

    let passwd = ["user", "passwd", "alice", "--password-stdin"];
    assert_refused(&p, &passwd, "weak\n", "12");
    assert_refused(&p, &passwd, "password1234\n", "weak");
    assert_refused(&p, &passwd, "Violet-alice-Summit-1987\n", "login");
    assert_refused(&p, &passwd, "", "password");
}

#[test]
fn unacceptable_ssh_keys_are_refused() {
    let Installation { p, alice_key } = installation();
    let scratch = p.scratch();
    let path = |file: &Path| file.to_str().unwrap().to_owned();

    let dsa = ssh_keygen(&scratch, "dsa", "dsa", None, "old");
    assert_refused(&p, &["key", "add", "alice", &path(&dsa)], "", "DSA");
    let rsa2048 = ssh_keygen(&scratch, "rsa2048", "rsa", Some(2048), "small");
    assert_refused(&p, &["key", "add", "alice", &path(&rsa2048)], "", "3072");
    assert_refused(&p, &["key", "add", "alice", "-"], &std::fs::read_to_string(&rsa2048).unwrap(), "3072");

    let garbage = scratch.join("garbage.pub");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    assert_refused(&p, &["key", "add", "alice", &path(&garbage)], "", "garbage.pub");
    let empty = scratch.join("empty.pub");
    std::fs::write(&empty, "\n# nothing\n").unwrap();
    assert_refused(&p, &["key", "add", "alice", &path(&empty)], "", "empty.pub");
    assert_refused(&p, &["key", "add", "alice", &path(&scratch.join("missing.pub"))], "", "missing.pub");

    // A good key next to a bad one: none of them is added.
    let good = ssh_keygen(&scratch, "good", "ecdsa", None, "good");
    let mixed = scratch.join("mixed.pub");
    std::fs::write(&mixed, std::fs::read_to_string(&good).unwrap() + "ssh-ed25519 AAAAnotbase64\n").unwrap();
    assert_refused(&p, &["key", "add", "alice", &path(&mixed)], "", "line 2");

    // authorized_keys options are not silently dropped.
    let options = scratch.join("options.pub");
    std::fs::write(&options, format!("from=\"10.0.0.0/8\" {}", std::fs::read_to_string(&good).unwrap())).unwrap();
    assert_refused(&p, &["key", "add", "alice", &path(&options)], "", "options");

    // The private key by mistake: refused, and none of it is echoed.
    let private = scratch.join("good");
    let out = p.run(&["key", "add", "alice", &path(&private)]);
    assert_eq!(out.code, 2, "{out:?}");
    let secret = std::fs::read_to_string(&private).unwrap();
    let body = secret.lines().nth(1).expect("PEM body");
    assert!(!out.stderr.contains(body), "private key material printed: {}", out.stderr);

    assert_refused(&p, &["key", "add", "alice", &path(&alice_key)], "", "already");
    assert_refused(&p, &["key", "add", "nobody", &path(&good)], "", "nobody");
    // The same key twice in one file.
    let twice = scratch.join("twice.pub");
    std::fs::write(&twice, std::fs::read_to_string(&good).unwrap().repeat(2)).unwrap();
    assert_refused(&p, &["key", "add", "alice", &path(&twice)], "", "twice");

    // A refused key in `user add --key` creates no user.
    assert_refused(
        &p,
        &["user", "add", "acme", "carol", "--password-stdin", "--key", &path(&good), "--key", &path(&dsa)],
        "Violet-Kettle-Summit-1987\n",
        "DSA",
    );
}

#[test]
fn key_remove_of_an_unknown_fingerprint_is_refused() {
    let Installation { p, alice_key } = installation();
    assert_refused(&p, &["key", "remove", "alice", "SHA256:doesnotexist"], "", "not found");
    // alice's key cannot be removed through bob.
    let fingerprint = ssh_keygen_lf(&alice_key).split_whitespace().nth(1).unwrap().to_owned();
    assert_refused(&p, &["key", "remove", "bob", &fingerprint], "", "not found");
    assert_refused(&p, &["key", "remove", "nobody", &fingerprint], "", "nobody");
}

#[test]
fn allow_ip_that_is_not_a_network_is_refused() {
    let Installation { p, .. } = installation();
    for bad in ["notacidr", "10.0.0.0/33", "300.1.2.3", ""] {
        assert_refused(
            &p,
            &["tenant", "add", "gamma", "--allow-ip", "10.0.0.0/8", "--allow-ip", bad],
            "",
            "--allow-ip",
        );
    }
}

#[test]
fn tenant_remove_needs_purge_and_a_confirmation() {
    let Installation { p, .. } = installation();
    assert_refused(&p, &["tenant", "remove", "acme"], "", "--purge");
    assert_refused(&p, &["tenant", "remove", "acme", "--yes"], "", "--purge");
    // Standard input is a pipe here, not a terminal: typing the name is not possible.
    assert_refused(&p, &["tenant", "remove", "acme", "--purge"], "acme\n", "--yes");
}
