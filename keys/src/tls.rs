//! The FTPS certificate and its key: loaded from PEM files, or a
//! self-signed pair generated on first start.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rand::RngExt;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ECDSA_P521_SHA512, PKCS_RSA_SHA256, PKCS_RSA_SHA384,
    PKCS_RSA_SHA512, PublicKeyData, SerialNumber,
};
use secrecy::SecretString;
use secrecy::zeroize::Zeroize;
use sha2::{Digest, Sha256};
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey as X509PublicKey;

use crate::KeyError;
use crate::secret_file::{exists, read_public_file, read_secret_file, write_public_file, write_secret_file};

/// Validity of a generated self-signed certificate.
const SELF_SIGNED_DAYS: u64 = 365;
/// Smallest RSA key accepted for TLS.
const MIN_RSA_BITS: usize = 2048;

/// The FTPS server's certificate (chain) and private key, as PEM.
///
/// The certificate file may hold a chain, leaf first. The key must be
/// unencrypted PEM (PKCS#8, PKCS#1 or SEC1) of an ECDSA key, or of an RSA key
/// of at least 2048 bits, and must belong to the leaf certificate.
///
/// `Debug` never shows the private key.
pub struct TlsIdentity {
    cert_pem: String,
    key_pem: SecretString,
    cert_der: Vec<u8>,
    not_after: SystemTime,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint_sha256())
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl TlsIdentity {
    /// Loads the certificate and key, or generates a self-signed pair when
    /// both files are absent.
    ///
    /// The generated certificate is ECDSA P-256, CN `passerelle`, valid for
    /// `localhost`, `127.0.0.1` and `::1` during 365 days; the key is written
    /// as PKCS#8 with mode 0600 and the certificate with mode 0644 (parent
    /// directories are created with mode 0700). Only one of the two files
    /// existing is an error; so is a key file that group or others can
    /// access, or that is a symlink.
    pub fn load_or_generate(cert: &Path, key: &Path) -> Result<Self, KeyError> {
        match (exists(cert)?, exists(key)?) {
            (true, true) => {}
            (false, false) => generate(cert, key)?,
            (true, false) => {
                return Err(KeyError::TlsPairIncomplete { present: cert.to_path_buf(), missing: key.to_path_buf() });
            }
            (false, true) => {
                return Err(KeyError::TlsPairIncomplete { present: key.to_path_buf(), missing: cert.to_path_buf() });
            }
        }
        Self::load(cert, key)
    }

    /// Loads an existing certificate and key with every check of
    /// [`TlsIdentity::load_or_generate`] (a private, regular key file; an
    /// unencrypted ECDSA or RSA >= 2048 key matching the leaf certificate),
    /// never generating anything: what a reload of the files runs.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, KeyError> {
        load(cert, key)
    }

    /// The certificate file's PEM text (the whole chain, leaf first).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key's PEM text; call `expose_secret()` on it where the
    /// TLS configuration is built. It never appears in `Debug` output.
    pub fn key_pem(&self) -> &SecretString {
        &self.key_pem
    }

    /// The leaf certificate in DER form.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The SHA-256 fingerprint of the leaf certificate as `SHA256:AB:CD:...`
    /// (the hex part is what `openssl x509 -noout -fingerprint -sha256`
    /// prints), for users to pin or check.
    pub fn fingerprint_sha256(&self) -> String {
        let digest = Sha256::digest(&self.cert_der);
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        format!("SHA256:{}", hex.join(":"))
    }

    /// When the leaf certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<(), KeyError> {
    let failed = |e: rcgen::Error| KeyError::Generate { what: "a self-signed TLS certificate", reason: e.to_string() };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let mut params = CertificateParams::new(names).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "passerelle");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    // Backdated a little for clients whose clocks run slow.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS as i64);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut serial: [u8; 16] = rand::rng().random();
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // and of full length
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(failed)?;

    // Key first: a certificate without its key would block the next start.
    write_secret_file(key_path, key.serialize_pem().as_bytes())?;
    write_public_file(cert_path, cert.pem().as_bytes())
}

fn load(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, KeyError> {
    let bad_cert = |reason: String| KeyError::InvalidCertificate { path: cert_path.to_path_buf(), reason };
    let bad_key = |reason: &str| KeyError::InvalidTlsKey { path: key_path.to_path_buf(), reason: reason.to_owned() };

    // The certificate (chain).
    let cert_bytes = read_public_file(cert_path)?;
    let cert_pem = String::from_utf8(cert_bytes).map_err(|_| bad_cert("it is not PEM text".into()))?;
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(cert_pem.as_bytes()) {
        let block = block.map_err(|e| bad_cert(format!("bad PEM: {e}")))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    let Some(cert_der) = certs.into_iter().next() else {
        return Err(bad_cert("no CERTIFICATE block found".into()));
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp().max(0) as u64);
    let spki = cert.public_key();
    // Checked on the certificate's copy of the public key: aws-lc-rs does not
    // even parse a private RSA key this short.
    if let Ok(X509PublicKey::RSA(rsa)) = spki.parsed() {
        let bits = rsa.key_size();
        if bits < MIN_RSA_BITS {
            return Err(bad_key(&format!("RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")));
        }
    }

    // The key.
    let key_bytes = read_secret_file(key_path)?;
    let key_text = std::str::from_utf8(&key_bytes).map_err(|_| bad_key("it is not PEM text"))?;
    let mut key_der = None;
    for block in Pem::iter_from_buffer(key_text.as_bytes()) {
        let block = block.map_err(|_| bad_key("bad PEM"))?;
        if block.label.contains("ENCRYPTED") {
            return Err(bad_key("it is encrypted"));
        }
        if block.label.ends_with("PRIVATE KEY") {
            key_der = Some(block.contents);
            break;
        }
    }
    let key_der = key_der.ok_or_else(|| bad_key("no PRIVATE KEY block found"))?;
    let key = KeyPair::try_from(key_der.as_slice()).map_err(|_| bad_key("not a supported private key"))?;
    let alg = key.algorithm();
    let is_ecdsa = [&PKCS_ECDSA_P256_SHA256, &PKCS_ECDSA_P384_SHA384, &PKCS_ECDSA_P521_SHA512].contains(&alg);
    let is_rsa = [&PKCS_RSA_SHA256, &PKCS_RSA_SHA384, &PKCS_RSA_SHA512].contains(&alg);
    if !is_ecdsa && !is_rsa {
        return Err(bad_key("it is neither ECDSA nor RSA"));
    }
    if spki.subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(KeyError::TlsKeyMismatch { cert: cert_path.to_path_buf(), key: key_path.to_path_buf() });
    }
    let key_pem = SecretString::from(key_text.to_owned());
    let (mut key_bytes, mut key_der) = (key_bytes, key_der);
    key_bytes.zeroize();
    key_der.zeroize();
    Ok(TlsIdentity { cert_pem, key_pem, cert_der, not_after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn debug_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let id = TlsIdentity::load_or_generate(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(id.key_pem().expose_secret().contains("BEGIN PRIVATE KEY"));
        assert!(shown.contains(&id.fingerprint_sha256()));
    }
}
