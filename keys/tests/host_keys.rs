//! SSH host keys on disk, checked with the real `ssh-keygen`.

mod common;

use common::{chmod, mode, run, ssh_keygen_l};
use passerelle_keys::{HostKeys, KeyError};

#[test]
fn generated_host_keys_match_ssh_keygen_and_reload_identically() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("hostkeys");
    let keys = HostKeys::load_or_generate(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);

    let fingerprints = keys.fingerprints();
    let algorithms: Vec<&str> = fingerprints.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(algorithms, ["ssh-ed25519", "ssh-rsa"]);
    for ((_, line), name) in fingerprints.iter().zip(["ssh_host_ed25519_key", "ssh_host_rsa_key"]) {
        let private = dir.join(name);
        let public = dir.join(format!("{name}.pub"));
        assert_eq!(mode(&private), 0o600);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(line, &ssh_keygen_l(&public));
        // OpenSSH reads the private key and derives the same public key.
        let derived = run("ssh-keygen", &["-y", "-f", private.to_str().unwrap()]);
        let on_disk = std::fs::read_to_string(&public).unwrap();
        let key_part = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(key_part(&derived), key_part(&on_disk));
    }
    assert!(fingerprints[0].1.starts_with("256 SHA256:"));
    assert!(fingerprints[1].1.starts_with("3072 SHA256:"));
    assert!(fingerprints[1].1.ends_with("(RSA)"));

    let again = HostKeys::load_or_generate(&dir).unwrap();
    assert_eq!(again.keys(), keys.keys());
    assert_eq!(keys.keys().len(), 2);
}

#[test]
fn host_keys_made_by_ssh_keygen_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    for (t, bits, name) in [("ed25519", "256", "ssh_host_ed25519_key"), ("rsa", "3072", "ssh_host_rsa_key")] {
        let path = dir.path().join(name);
        run("ssh-keygen", &["-q", "-t", t, "-b", bits, "-N", "", "-C", "admin", "-f", path.to_str().unwrap()]);
    }
    let keys = HostKeys::load_or_generate(dir.path()).unwrap();
    let expected = ssh_keygen_l(&dir.path().join("ssh_host_ed25519_key.pub"));
    assert_eq!(keys.fingerprints()[0].1, expected);
}

#[test]
fn readable_private_key_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    HostKeys::load_or_generate(dir.path()).unwrap();
    let private = dir.path().join("ssh_host_ed25519_key");
    chmod(&private, 0o644);
    let err = HostKeys::load_or_generate(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::InsecureMode { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains(&format!("chmod 600 {}", private.display())), "{err}");
}

#[test]
fn symlinked_private_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    HostKeys::load_or_generate(elsewhere.path()).unwrap();
    for name in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
        std::os::unix::fs::symlink(elsewhere.path().join(name), dir.path().join(name)).unwrap();
    }
    let err = HostKeys::load_or_generate(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::NotRegularFile { .. }), "{err}");
}

#[test]
fn public_file_of_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    HostKeys::load_or_generate(dir.path()).unwrap();
    HostKeys::load_or_generate(other.path()).unwrap();
    let public = dir.path().join("ssh_host_ed25519_key.pub");
    std::fs::remove_file(&public).unwrap();
    std::fs::copy(other.path().join("ssh_host_ed25519_key.pub"), &public).unwrap();
    let err = HostKeys::load_or_generate(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::PublicKeyMismatch { .. }), "{err}");

    // A missing .pub file is re-created.
    std::fs::remove_file(&public).unwrap();
    HostKeys::load_or_generate(dir.path()).unwrap();
    assert_eq!(mode(&public), 0o644);
}

#[test]
fn world_writable_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o777);
    let err = HostKeys::load_or_generate(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::InsecureDirectory { .. }), "{err}");
    assert!(err.to_string().contains("chmod 700"));
}

#[test]
fn load_creates_nothing_and_known_hosts_lines_are_the_public_keys() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("hostkeys");
    assert!(matches!(HostKeys::load(&dir), Err(KeyError::MissingHostKey { .. })));
    assert!(!dir.exists(), "load created the directory");
    let generated = HostKeys::load_or_generate(&dir).unwrap();
    std::fs::remove_file(dir.join("ssh_host_rsa_key")).unwrap();
    std::fs::remove_file(dir.join("ssh_host_rsa_key.pub")).unwrap();
    assert!(
        matches!(HostKeys::load(&dir), Err(KeyError::MissingHostKey { path }) if path.ends_with("ssh_host_rsa_key"))
    );
    assert!(!dir.join("ssh_host_rsa_key").exists(), "load generated a key");

    let keys = HostKeys::load_or_generate(&dir).unwrap();
    let loaded = HostKeys::load(&dir).unwrap();
    assert_eq!(loaded.keys(), keys.keys());
    assert_eq!(loaded.keys()[0], generated.keys()[0]);
    let lines = loaded.known_hosts_lines("[sftp.example.com]:2222").unwrap();
    for (line, name) in lines.iter().zip(["ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"]) {
        let public = std::fs::read_to_string(dir.join(name)).unwrap();
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        assert_eq!(line, &format!("[sftp.example.com]:2222 {}", key.join(" ")));
    }
}
