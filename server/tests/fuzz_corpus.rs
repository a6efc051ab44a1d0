//! Replays the fuzz corpus (`tests/fuzz-corpus/<target>/`: the inputs that
//! once crashed a target, and a small minimized corpus per target) through
//! the same entry points the fuzzer calls. A target that panics here has
//! regressed; `scripts/fuzz` grows the corpus.

use std::path::PathBuf;

use passerelle_server::fuzz::{TARGETS, Target};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-corpus")
}

/// Feeds every file of `name`'s corpus to its target; there must be some.
fn replay(name: &str) {
    let target: Target = TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t).expect("a known target");
    let dir = corpus_root().join(name);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        // Shown (captured output) when the input below makes the test fail.
        eprintln!("replaying {}", path.display());
        target(&input);
        replayed += 1;
    }
    assert!(replayed > 0, "{} holds no input", dir.display());
}

#[test]
fn every_corpus_directory_is_a_target() {
    for entry in std::fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(TARGETS.iter().any(|(n, _)| *n == name), "tests/fuzz-corpus/{name} is no target");
    }
}

#[test]
fn sftp_packets() {
    replay("sftp_packets");
}

#[test]
fn ftp_control() {
    replay("ftp_control");
}

#[test]
fn proxy_header() {
    replay("proxy_header");
}

#[test]
fn tenant_path() {
    replay("tenant_path");
}

#[test]
fn authorized_key() {
    replay("authorized_key");
}

#[test]
fn config_toml() {
    replay("config_toml");
}

#[test]
fn import_profile() {
    replay("import_profile");
}

#[test]
fn csv_validate() {
    replay("csv_validate");
}

#[test]
fn ssh_kexinit() {
    replay("ssh_kexinit");
}
