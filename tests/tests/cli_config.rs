//! `config check` and `config show`: the example file is valid, anything
//! unknown, mistyped or unsafe is refused with exit 2 and a message naming the
//! key, precedence is flags > environment > file > defaults, and secrets are
//! never printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use passerelle_tests::{Outcome, Passerelle, binary};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/passerelle.example.toml");

fn write_config(p: &Passerelle, name: &str, text: &str) -> PathBuf {
    let path = p.scratch().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Checks a refusal: exit 2, one line on standard error that names `key`.
fn assert_refused_naming(out: &Outcome, key: &str) {
    assert_eq!(out.code, 2, "must be refused with exit 2: {out:?}");
    let message = out.stderr.trim_end();
    assert_eq!(message.lines().count(), 1, "one-line reason: {:?}", out.stderr);
    assert!(message.contains(key), "the reason {message:?} should name {key:?}");
}

fn check_with_file(text: &str) -> Outcome {
    let p = Passerelle::new();
    let file = write_config(&p, "passerelle.toml", text);
    p.run(&["--config", file.to_str().unwrap(), "config", "check"])
}

/// The value of `key = ...` in section `[section]` of `config show` output.
fn shown(show: &str, section: &str, key: &str) -> String {
    let mut current = String::new();
    for line in show.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
        } else if let Some((k, v)) = line.split_once(" = ")
            && current == section
            && k == key
        {
            return v.to_owned();
        }
    }
    panic!("no {section}.{key} in:\n{show}")
}

#[test]
fn example_config_file_is_valid() {
    let p = Passerelle::new();
    let out = p.run(&["--config", EXAMPLE, "config", "check"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stderr, "");
}

#[test]
fn unknown_key_is_refused_naming_it() {
    assert_refused_naming(&check_with_file("[sftp]\nlisen = [\"127.0.0.1:2222\"]\n"), "sftp.lisen");
    assert_refused_naming(&check_with_file("colour = \"blue\"\n"), "colour");
    assert_refused_naming(&check_with_file("[sftpp]\n"), "sftpp");
}

#[test]
fn value_of_the_wrong_type_is_refused_naming_the_key() {
    assert_refused_naming(&check_with_file("[archive]\nretention_days = \"thirty\"\n"), "archive.retention_days");
    // (sftp.listen and the FTPS listeners are set by the fixture's environment,
    // which wins over the file; admin.listen is not.)
    assert_refused_naming(&check_with_file("[admin]\nlisten = [\"127.0.0.1:9100\"]\n"), "admin.listen");
    assert_refused_naming(&check_with_file("[admin]\nlisten = \"not an address\"\n"), "admin.listen");
    assert_refused_naming(&check_with_file("[limits]\nmax_auth_tries = \"six\"\n"), "limits.max_auth_tries");
    assert_refused_naming(&check_with_file("[ftps]\nrequire_session_reuse = \"yes\"\n"), "ftps.require_session_reuse");
    assert_refused_naming(&check_with_file("this is not toml\n"), "TOML");
}

#[test]
fn unsafe_or_out_of_range_values_are_refused() {
    for old in ["1.0", "1.1", "SSLv3"] {
        assert_refused_naming(&check_with_file(&format!("[ftps]\ntls_versions = [\"{old}\"]\n")), "ftps.tls_versions");
    }
    assert_refused_naming(&check_with_file("[ftps]\ntls_versions = []\n"), "ftps.tls_versions");
    assert_refused_naming(&check_with_file("[ftps]\npassive_ports = \"21-100\"\n"), "ftps.passive_ports");
    assert_refused_naming(&check_with_file("[archive]\nretention_days = 0\n"), "archive.retention_days");
    assert_refused_naming(&check_with_file("[tenant_db]\nbackend = \"postgres\"\n"), "tenant_db.admin_url");
    assert_refused_naming(&check_with_file("[tenant_db]\nname_prefix = \"Bad-Prefix\"\n"), "tenant_db.name_prefix");
}

#[test]
fn environment_values_are_checked_and_name_the_key() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_ARCHIVE_RETENTION_DAYS", "0");
    let out = p.run(&["config", "check"]);
    assert_refused_naming(&out, "archive.retention_days");
    assert!(out.stderr.contains("PASSERELLE_ARCHIVE_RETENTION_DAYS"), "{}", out.stderr);

    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_SFTP_LISEN", "127.0.0.1:2222");
    assert_refused_naming(&p.run(&["config", "check"]), "PASSERELLE_SFTP_LISEN");

    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_FTPS_TLS_VERSIONS", "1.2,1.0");
    assert_refused_naming(&p.run(&["config", "check"]), "ftps.tls_versions");
}

#[test]
fn config_show_redacts_database_passwords() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_CATALOG_URL", "postgres://u:s3cretpw@127.0.0.1/x");
    p.set_env("PASSERELLE_TENANT_DB_BACKEND", "postgres");
    p.set_env("PASSERELLE_TENANT_DB_ADMIN_URL", "postgres://admin:t0p-s3cret@db.example:5432/postgres");
    for command in ["show", "check"] {
        let out = p.run(&["config", command]);
        assert!(out.success(), "{out:?}");
        for secret in ["s3cretpw", "t0p-s3cret"] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "config {command} printed a password: {out:?}"
            );
        }
    }
    let show = p.ok(&["config", "show"]);
    assert!(show.contains("127.0.0.1/x"), "the URL is shown: {show}");
    assert!(show.contains("db.example"), "the URL is shown: {show}");

    // Nor in the message refusing a bad URL.
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_CATALOG_URL", "mysql://u:s3cretpw@127.0.0.1/x");
    let out = p.run(&["config", "check"]);
    assert_refused_naming(&out, "catalog.url");
    assert!(!out.stderr.contains("s3cretpw"), "{}", out.stderr);
}

#[test]
fn config_show_is_a_valid_config_file() {
    let p = Passerelle::new();
    let show = p.ok(&["config", "show"]);
    let file = write_config(&p, "shown.toml", &show);
    let out = p.run(&["--config", file.to_str().unwrap(), "config", "check"]);
    assert!(out.success(), "{out:?}\n{show}");
    assert_eq!(p.ok(&["--config", file.to_str().unwrap(), "config", "show"]), show);
}

#[test]
fn passerelle_config_points_at_the_file() {
    let mut p = Passerelle::new();
    let file = write_config(&p, "from-env.toml", "[archive]\nretention_days = 45\n");
    p.set_env("PASSERELLE_CONFIG", file.to_str().unwrap());
    assert_eq!(shown(&p.ok(&["config", "show"]), "archive", "retention_days"), "45");

    // It is really read: a bad file there is refused.
    let mut bad = Passerelle::new();
    let file = write_config(&bad, "bad.toml", "[sftp]\nlisen = []\n");
    bad.set_env("PASSERELLE_CONFIG", file.to_str().unwrap());
    assert_refused_naming(&bad.run(&["config", "check"]), "sftp.lisen");

    // A missing file is an error, not an empty configuration.
    let mut missing = Passerelle::new();
    let path = missing.scratch().join("missing.toml");
    missing.set_env("PASSERELLE_CONFIG", path.to_str().unwrap());
    assert_refused_naming(&missing.run(&["config", "check"]), "missing.toml");
}

#[test]
fn flags_beat_environment_beats_file() {
    let mut p = Passerelle::new();
    let env_file = write_config(&p, "env.toml", "[archive]\nretention_days = 45\n");
    let flag_file = write_config(&p, "flag.toml", "[archive]\nretention_days = 50\n[log]\nlevel = \"debug\"\n");
    p.set_env("PASSERELLE_CONFIG", env_file.to_str().unwrap());
    let show = p.ok(&["--config", flag_file.to_str().unwrap(), "config", "show"]);
    assert_eq!(shown(&show, "archive", "retention_days"), "50", "--config wins over PASSERELLE_CONFIG");

    p.set_env("PASSERELLE_ARCHIVE_RETENTION_DAYS", "60");
    let show = p.ok(&["--config", flag_file.to_str().unwrap(), "config", "show"]);
    assert_eq!(shown(&show, "archive", "retention_days"), "60", "environment wins over the file");
    assert_eq!(shown(&show, "log", "level"), "\"debug\"", "the file wins over defaults");
    assert_eq!(shown(&show, "admin", "listen"), "\"127.0.0.1:9100\"", "default");
}

#[test]
fn data_dir_flag_beats_environment_beats_file() {
    let p = Passerelle::new();
    let root = p.scratch();
    let file = write_config(&p, "dirs.toml", &format!("data_dir = \"{}\"\n", root.join("from-file").display()));
    let show = |env: Option<&Path>, flag: Option<&Path>| {
        let mut command = Command::new(binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PASSERELLE_") {
                command.env_remove(name);
            }
        }
        if let Some(dir) = env {
            command.env("PASSERELLE_DATA_DIR", dir);
        }
        command.arg("--config").arg(&file);
        if let Some(dir) = flag {
            command.arg("--data-dir").arg(dir);
        }
        let out = Outcome::from(command.args(["config", "show"]).output().unwrap());
        assert!(out.success(), "{out:?}");
        out.stdout
    };
    let quoted = |name: &str| format!("\"{}\"", root.join(name).display());
    assert_eq!(shown(&show(None, None), "", "data_dir"), quoted("from-file"));
    let env = root.join("from-env");
    assert_eq!(shown(&show(Some(&env), None), "", "data_dir"), quoted("from-env"));
    let flag = root.join("from-flag");
    let both = show(Some(&env), Some(&flag));
    assert_eq!(shown(&both, "", "data_dir"), quoted("from-flag"));
    assert_eq!(
        shown(&both, "ftps", "cert"),
        format!("\"{}\"", flag.join("tls/cert.pem").display()),
        "paths that default from data_dir follow it"
    );
}
