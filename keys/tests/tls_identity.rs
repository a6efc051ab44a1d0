//! The FTPS certificate and key on disk, checked with the real `openssl`.

mod common;

use std::path::Path;

use common::{chmod, mode, run};
use passerelle_keys::{KeyError, TlsIdentity};
use secrecy::ExposeSecret;

/// What `openssl x509 -fingerprint -sha256` prints after the `=`.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = run("openssl", &["x509", "-noout", "-fingerprint", "-sha256", "-in", cert.to_str().unwrap()]);
    out.trim_end().split_once('=').unwrap().1.to_owned()
}

/// Makes a self-signed certificate and key with openssl; `key_args` chooses the key.
fn openssl_pair(dir: &Path, key_args: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=ftp.example"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()]);
    run("openssl", &args);
    chmod(&key, 0o600);
    (cert, key)
}

#[test]
fn generated_identity_matches_openssl_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
    let id = TlsIdentity::load_or_generate(&cert, &key).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&dir.path().join("tls")), 0o700);

    assert_eq!(id.fingerprint_sha256(), format!("SHA256:{}", openssl_fingerprint(&cert)));
    assert!(id.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(id.key_pem().expose_secret().starts_with("-----BEGIN PRIVATE KEY-----"));

    let text = run("openssl", &["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    for expected in
        ["CN = passerelle", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "prime256v1"]
    {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    let days = id.not_after().duration_since(std::time::SystemTime::now()).unwrap().as_secs() / 86400;
    assert!((300..=825).contains(&days), "{days} days");

    let again = TlsIdentity::load_or_generate(&cert, &key).unwrap();
    assert_eq!(again.cert_der(), id.cert_der());
}

#[test]
fn only_one_file_present_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    TlsIdentity::load_or_generate(&cert, &key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = TlsIdentity::load_or_generate(&cert, &key).unwrap_err();
    assert!(matches!(err, KeyError::TlsPairIncomplete { .. }), "{err}");
    assert!(!key.exists(), "nothing must be generated beside an existing certificate");
}

#[test]
fn readable_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    TlsIdentity::load_or_generate(&cert, &key).unwrap();
    chmod(&key, 0o640);
    let err = TlsIdentity::load_or_generate(&cert, &key).unwrap_err();
    assert!(err.to_string().contains(&format!("chmod 600 {}", key.display())), "{err}");
}

#[test]
fn openssl_rsa_and_ec_pairs_are_loaded() {
    for key_args in [&["-newkey", "rsa:2048"][..], &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl_pair(dir.path(), key_args);
        let id = TlsIdentity::load_or_generate(&cert, &key).unwrap();
        assert_eq!(id.fingerprint_sha256(), format!("SHA256:{}", openssl_fingerprint(&cert)));
    }
}

#[test]
fn traditional_key_formats_are_loaded() {
    // PKCS#1 (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`) files.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_pair(dir.path(), &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let sec1 = run("openssl", &["ec", "-in", key.to_str().unwrap()]);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    std::fs::remove_file(&key).unwrap();
    passerelle_keys::write_secret_file(&key, sec1.as_bytes()).unwrap();
    TlsIdentity::load_or_generate(&cert, &key).unwrap();
}

#[test]
fn short_rsa_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_pair(dir.path(), &["-newkey", "rsa:1024"]);
    let err = TlsIdentity::load_or_generate(&cert, &key).unwrap_err();
    assert!(err.to_string().contains("RSA key has 1024 bits"), "{err}");
}

#[test]
fn key_of_another_certificate_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (cert_a, _) = openssl_pair(a.path(), &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (_, key_b) = openssl_pair(b.path(), &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let err = TlsIdentity::load_or_generate(&cert_a, &key_b).unwrap_err();
    assert!(matches!(err, KeyError::TlsKeyMismatch { .. }), "{err}");
}
