//! Issue #18: only `serve` and `init` create a data directory, keys or a
//! catalog. Every other administration verb, run where no data directory
//! exists, refuses with exit 2 and one line saying what to do, and leaves
//! the directory absent.

use passerelle_tests::Passerelle;

/// One call of every verb that needs the data directory, with valid arguments.
const VERBS: &[&[&str]] = &[
    &["tenant", "add", "acme"],
    &["tenant", "add", "lab", "--test-zone"],
    &["tenant", "copy-anonymized", "acme", "--to", "lab"],
    &["tenant", "allow-ip", "acme", "--clear"],
    &["tenant", "quota", "acme", "--clear"],
    &["tenant", "list"],
    &["tenant", "list", "--json"],
    &["tenant", "show", "acme"],
    &["tenant", "remove", "acme", "--purge", "--yes"],
    &["user", "add", "acme", "alice", "--no-credentials"],
    &["user", "allow-ip", "alice", "--clear"],
    &["user", "list"],
    &["user", "remove", "alice"],
    &["user", "passwd", "alice", "--password-stdin"],
    &["user", "lock", "alice"],
    &["user", "unlock", "alice"],
    &["key", "add", "alice", "-"],
    &["key", "list", "alice"],
    &["key", "remove", "alice", "SHA256:AAAA"],
    &["hostkey", "show"],
    &["hostkey", "show", "--json"],
    &["hostkey", "show", "--known-hosts"],
    &["ban", "list"],
    &["ban", "add", "192.0.2.1"],
    &["ban", "remove", "192.0.2.1"],
    &["audit"],
    &["profile", "set", "acme", "-"],
    &["profile", "list", "acme"],
    &["profile", "show", "acme"],
    &["import", "list"],
    &["import", "show", "00000000-0000-0000-0000-000000000000"],
    &["import", "retry", "00000000-0000-0000-0000-000000000000"],
    &["tenant", "purge-report", "acme"],
    &["archive", "verify"],
    &["archive", "decrypt", "/dev/null"],
    &["keys", "rotate-master"],
];

#[test]
fn every_admin_verb_refuses_a_missing_data_dir_and_creates_nothing() {
    let p = Passerelle::without_data_dir();
    let expected = format!(
        "passerelle: no passerelle data directory at {}; pass --data-dir or --config, or run `passerelle init`",
        p.data_dir().display()
    );
    for args in VERBS {
        let out = p.run_with_stdin(args, "Correct-Horse-Battery-42\n");
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stderr.trim_end(), expected, "{args:?}: one line saying what to do");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(!p.data_dir().exists(), "{args:?} created {}", p.data_dir().display());
    }
}

#[test]
fn the_default_data_dir_is_named_as_given() {
    let p = Passerelle::without_data_dir();
    let scratch = p.scratch();
    // No --data-dir: the default, relative to the working directory.
    let out = std::process::Command::new(passerelle_tests::binary())
        .args(["tenant", "list"])
        .current_dir(&scratch)
        .env_remove("PASSERELLE_DATA_DIR")
        .env_remove("PASSERELLE_CONFIG")
        .output()
        .expect("run passerelle");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no passerelle data directory at ./passerelle-data;"), "{stderr}");
    assert!(std::fs::read_dir(&scratch).expect("scratch").next().is_none(), "nothing created in {}", scratch.display());
}

#[test]
fn config_verbs_only_read_and_create_nothing() {
    let p = Passerelle::without_data_dir();
    p.ok(&["config", "check"]);
    p.ok(&["config", "show"]);
    assert!(!p.data_dir().exists(), "config verbs created the data directory");
}

#[test]
fn init_creates_what_serve_needs_once() {
    let p = Passerelle::without_data_dir();
    let first = p.ok(&["init"]);
    for what in ["data directory", "catalog", "SSH host keys", "FTPS certificate"] {
        assert!(first.contains(what), "init says it created the {what}:\n{first}");
    }
    let layout = p.layout();
    assert!(layout.catalog_db().is_file() && layout.tls_cert().is_file() && layout.host_keys().is_dir());
    let keys_before = p.ok(&["hostkey", "show"]);
    let second = p.ok(&["init"]);
    assert!(second.contains("nothing created"), "{second}");
    assert_eq!(p.ok(&["hostkey", "show"]), keys_before, "init keeps existing keys");
    p.ok(&["tenant", "list"]);
}

#[test]
fn a_data_directory_of_another_user_is_refused_even_to_root() {
    let p = Passerelle::new();
    p.ok(&["tenant", "add", "acme"]);
    // The service's data directory, as the Debian package makes it: not ours.
    let nobody = 65_534;
    std::os::unix::fs::chown(p.data_dir(), Some(nobody), Some(nobody)).expect("chown (the tests run as root)");
    for verb in [&["tenant", "list"][..], &["tenant", "add", "initech"], &["init"]] {
        let out = p.run(verb);
        assert_eq!(out.code, 2, "{verb:?}: {out:?}");
        assert!(out.stderr.contains("belongs to user nobody, not to root; run passerelle as nobody"), "{out:?}");
    }
    assert!(!p.layout().tenant_root("initech").exists(), "nothing created");
    std::os::unix::fs::chown(p.data_dir(), Some(0), Some(0)).expect("chown back");
    assert!(p.ok(&["tenant", "list"]).contains("acme"));
}
