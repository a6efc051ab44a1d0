//! User public keys, compared with what the real `ssh-keygen` prints.

mod common;

use common::{ssh_keygen, ssh_keygen_l};
use passerelle_keys::{AuthorizedKey, KeyError};

/// Generates a key of the given type, parses its `.pub` line and checks that
/// every accessor agrees with `ssh-keygen -lf`.
fn agrees_with_ssh_keygen(args: &[&str], comment: &str, bits: u32, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let line = ssh_keygen(dir.path(), "k", args, comment);
    let key = AuthorizedKey::parse(&line).unwrap();
    let expected = ssh_keygen_l(&dir.path().join("k.pub"));

    assert_eq!(key.ssh_keygen_line(), expected);
    assert_eq!(key.bits(), bits);
    assert_eq!(key.type_label(), label);
    assert_eq!(key.comment(), comment);
    assert!(expected.contains(&key.fingerprint()));
    assert!(key.fingerprint().starts_with("SHA256:"));
    assert_eq!(key.to_openssh(), line.trim_end());

    // The stored form parses back to the same key.
    let again = AuthorizedKey::parse(&key.to_openssh()).unwrap();
    assert_eq!(again, key);
    assert!(key.matches(again.public_key()));
}

#[test]
fn ed25519_line_matches_ssh_keygen() {
    agrees_with_ssh_keygen(&["-t", "ed25519"], "alice@host", 256, "ED25519");
}

#[test]
fn ecdsa_lines_match_ssh_keygen() {
    for bits in [256, 384, 521] {
        let b = bits.to_string();
        agrees_with_ssh_keygen(&["-t", "ecdsa", "-b", &b], "bob@laptop", bits, "ECDSA");
    }
}

#[test]
fn rsa_3072_line_matches_ssh_keygen() {
    agrees_with_ssh_keygen(&["-t", "rsa", "-b", "3072"], "carol", 3072, "RSA");
}

#[test]
fn comment_with_spaces_and_empty_comment_match_ssh_keygen() {
    agrees_with_ssh_keygen(&["-t", "ed25519"], "Alice Smith laptop", 256, "ED25519");
    // ssh-keygen prints `no comment` for a key without one.
    let dir = tempfile::tempdir().unwrap();
    let line = ssh_keygen(dir.path(), "k", &["-t", "ed25519"], "");
    let key = AuthorizedKey::parse(&line).unwrap();
    let expected = ssh_keygen_l(&dir.path().join("k.pub"));
    assert!(expected.ends_with("no comment (ED25519)"), "{expected}");
    assert_eq!(key.ssh_keygen_line(), expected);
}

#[test]
fn rsa_2048_is_refused_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let line = ssh_keygen(dir.path(), "k", &["-t", "rsa", "-b", "2048"], "old");
    let err = AuthorizedKey::parse(&line).unwrap_err();
    assert!(matches!(err, KeyError::RsaTooShort { bits: 2048, .. }));
    assert_eq!(err.to_string(), "RSA key has 2048 bits; at least 3072 are required");
}

#[test]
fn dsa_is_refused() {
    // OpenSSH 9.2 can still make DSA keys; later releases cannot.
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "dsa", "-N", "", "-C", "dave@old", "-f"])
        .arg(dir.path().join("k"))
        .status()
        .is_ok_and(|s| s.success());
    let line = if made {
        std::fs::read_to_string(dir.path().join("k.pub")).unwrap()
    } else {
        "ssh-dss AAAAB3NzaC1kc3M= dave@old".to_owned()
    };
    let err = AuthorizedKey::parse(&line).unwrap_err();
    assert_eq!(err.to_string(), "DSA keys are insecure and refused; use ed25519");
}

#[test]
fn options_prefix_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let line = ssh_keygen(dir.path(), "k", &["-t", "ed25519"], "x");
    let err = AuthorizedKey::parse(&format!("restrict,from=\"10.0.0.1\" {line}")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("options"), "{msg}");
    assert!(msg.contains("remove them"), "{msg}");
}
