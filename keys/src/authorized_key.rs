//! Users' SSH public keys, checked against the key policy and shown the way
//! `ssh-keygen -lf` shows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey};

use crate::KeyError;

/// Smallest RSA modulus accepted for users' keys.
const MIN_RSA_BITS: u32 = 3072;
/// Largest RSA modulus OpenSSH accepts.
const MAX_RSA_BITS: u32 = 16384;
/// Longer lines cannot be a public key (a 16384-bit RSA key is ~2.8 KB).
const MAX_LINE_LEN: usize = 16 * 1024;

/// Key types accepted as the first word of a line.
const ACCEPTED_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A user's SSH public key, parsed from one OpenSSH public-key line and
/// checked against the key policy: ed25519, ECDSA (P-256/384/521), their
/// security-key (`sk-`) variants, and RSA of at least 3072 bits. DSA keys,
/// certificates and `authorized_keys` options are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedKey {
    key: PublicKey,
    comment: String,
}

impl AuthorizedKey {
    /// Parses one line such as `ssh-ed25519 AAAA... alice@host`.
    ///
    /// Surrounding whitespace is ignored; fields may be separated by any
    /// run of spaces or tabs, as OpenSSH allows.
    pub fn parse(line: &str) -> Result<Self, KeyError> {
        let line = line.trim();
        if line.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        if line.starts_with("---- BEGIN SSH2") {
            return Err(KeyError::Rfc4716Format);
        }
        if line.contains(['\n', '\r']) {
            return Err(KeyError::MultipleLines);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(invalid("the line is far too long for a public key"));
        }

        let (key_type, rest) = split_word(line);
        check_key_type(key_type, line)?;

        let (blob_b64, comment) = split_word(rest);
        if blob_b64.is_empty() {
            return Err(invalid("the base64 key data is missing"));
        }
        let blob = STANDARD.decode(blob_b64).map_err(|_| invalid("the key data is not valid base64"))?;
        let mut key = PublicKey::from_bytes(&blob).map_err(|e| invalid(&format!("the key data is malformed: {e}")))?;
        if key.algorithm().as_str() != key_type {
            return Err(invalid(&format!("the line says {key_type} but the key data is {}", key.algorithm().as_str())));
        }
        if comment.chars().any(char::is_control) {
            return Err(invalid("the comment contains control characters"));
        }
        if let KeyData::Rsa(rsa) = key.key_data() {
            let bits = mpint_bits(rsa.n().as_positive_bytes().unwrap_or_default());
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooShort { bits, min: MIN_RSA_BITS });
            }
            if bits > MAX_RSA_BITS {
                return Err(KeyError::RsaTooLong { bits });
            }
        }
        key.set_comment(comment);
        Ok(Self { key, comment: comment.to_owned() })
    }

    /// The fingerprint as `ssh-keygen -lf` prints it: `SHA256:` followed by
    /// the unpadded base64 SHA-256 of the key blob.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The key size as `ssh-keygen -l` prints it: 256 for ed25519, the
    /// curve size for ECDSA, the modulus size for RSA.
    pub fn bits(&self) -> u32 {
        key_bits(self.key.key_data())
    }

    /// The key type as `ssh-keygen -l` prints it in parentheses: `ED25519`,
    /// `ECDSA`, `RSA`, `ED25519-SK` or `ECDSA-SK`.
    pub fn type_label(&self) -> &'static str {
        type_label(&self.key.algorithm())
    }

    /// The comment that followed the key data (often `user@host`), possibly
    /// empty.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Exactly the line `ssh-keygen -lf key.pub` prints, such as
    /// `256 SHA256:abc... alice@host (ED25519)`.
    pub fn ssh_keygen_line(&self) -> String {
        ssh_keygen_line(&self.key)
    }

    /// The canonical one-line form for storage: `type base64 [comment]`,
    /// single spaces, no options.
    pub fn to_openssh(&self) -> String {
        self.key.to_openssh().expect("a parsed public key always encodes")
    }

    /// The parsed key, to hand to russh or to compare with the key a client
    /// presents.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Whether `key` (as presented by an SSH client) is this key. Comments
    /// are ignored.
    pub fn matches(&self, key: &PublicKey) -> bool {
        self.key.key_data() == key.key_data()
    }
}

impl std::str::FromStr for AuthorizedKey {
    type Err = KeyError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        Self::parse(line)
    }
}

impl std::fmt::Display for AuthorizedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_openssh())
    }
}

/// The `ssh-keygen -lf` line of any public key (user or host key).
pub(crate) fn ssh_keygen_line(key: &PublicKey) -> String {
    let comment = match key.comment().as_str_lossy() {
        "" => "no comment",
        c => c,
    };
    format!(
        "{} {} {} ({})",
        key_bits(key.key_data()),
        key.fingerprint(HashAlg::Sha256),
        comment,
        type_label(&key.algorithm())
    )
}

fn invalid(reason: &str) -> KeyError {
    KeyError::InvalidKey { reason: reason.to_owned() }
}

/// Splits off the first whitespace-separated word; the rest is trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_matches([' ', '\t'])),
        None => (s, ""),
    }
}

fn check_key_type(key_type: &str, line: &str) -> Result<(), KeyError> {
    if ACCEPTED_TYPES.contains(&key_type) {
        return Ok(());
    }
    if key_type == "ssh-dss" || key_type.starts_with("ssh-dss-cert") {
        return Err(KeyError::DsaRefused);
    }
    if key_type.contains("-cert-v0") {
        return Err(KeyError::CertificateRefused { algorithm: key_type.to_owned() });
    }
    if looks_like_key_type(key_type) {
        return Err(KeyError::UnsupportedAlgorithm { algorithm: key_type.to_owned() });
    }
    // Options come before the key type: find where a key type starts.
    let mut rest = line;
    while let Some(i) = rest.find([' ', '\t']) {
        let word = rest[i..].trim_start_matches([' ', '\t']);
        let (next, _) = split_word(word);
        if looks_like_key_type(next) || next == "ssh-dss" {
            let options = line[..line.len() - word.len()].trim_end();
            return Err(KeyError::KeyOptions { options: options.chars().take(60).collect() });
        }
        rest = word;
    }
    Err(invalid("it does not start with a key type such as ssh-ed25519"))
}

fn looks_like_key_type(word: &str) -> bool {
    ACCEPTED_TYPES.contains(&word)
        || ["ssh-", "ecdsa-", "sk-", "rsa-"].iter().any(|p| word.starts_with(p)) && !word.contains(['=', ',', '"'])
}

/// Number of significant bits of a big-endian unsigned integer.
fn mpint_bits(bytes: &[u8]) -> u32 {
    let Some(pos) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    let significant = &bytes[pos..];
    (significant.len() as u32 - 1) * 8 + (8 - significant[0].leading_zeros())
}

fn key_bits(key: &KeyData) -> u32 {
    match key {
        KeyData::Rsa(rsa) => mpint_bits(rsa.n().as_positive_bytes().unwrap_or_default()),
        KeyData::Dsa(dsa) => mpint_bits(dsa.p().as_positive_bytes().unwrap_or_default()),
        KeyData::Ecdsa(ecdsa) => curve_bits(ecdsa.curve()),
        // ed25519, sk-ed25519 and sk-ecdsa (P-256).
        _ => 256,
    }
}

fn curve_bits(curve: EcdsaCurve) -> u32 {
    match curve {
        EcdsaCurve::NistP256 => 256,
        EcdsaCurve::NistP384 => 384,
        EcdsaCurve::NistP521 => 521,
    }
}

fn type_label(algorithm: &Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ED25519",
        Algorithm::Ecdsa { .. } => "ECDSA",
        Algorithm::Rsa { .. } => "RSA",
        Algorithm::Dsa => "DSA",
        Algorithm::SkEd25519 => "ED25519-SK",
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A fixed ed25519 key (public data only; made with ssh-keygen for these tests).
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKL6FdGELCdtb2Y+MS4JnS1FHLSDQyXpN52P6W4P95I alice@host";

    #[test]
    fn keygen_line_matches_ssh_keygen() {
        // `ssh-keygen -lf` printed this for the key above.
        let key = AuthorizedKey::parse(ED25519).unwrap();
        assert_eq!(
            key.ssh_keygen_line(),
            "256 SHA256:HLKG2HMe4avsmnYObMsvsyF4y3gASvJ2kzZk0xG1IEY alice@host (ED25519)"
        );
        let no_comment = AuthorizedKey::parse(ED25519.trim_end_matches(" alice@host")).unwrap();
        assert!(no_comment.ssh_keygen_line().ends_with(" no comment (ED25519)"));
        assert_eq!(no_comment.comment(), "");
        assert!(key.matches(no_comment.public_key()));
    }

    #[test]
    fn bits_of_big_endian_integers() {
        assert_eq!(mpint_bits(&[]), 0);
        assert_eq!(mpint_bits(&[0, 0x01]), 1);
        assert_eq!(mpint_bits(&[0x80, 0]), 16);
        assert_eq!(mpint_bits(&[0x7f, 0xff]), 15);
    }

    #[test]
    fn whitespace_and_tabs_are_tolerated() {
        let key = AuthorizedKey::parse(&format!("  {}\n", ED25519.replace(' ', " \t "))).unwrap();
        assert_eq!(key.comment(), "alice@host");
        assert_eq!(key.to_openssh(), ED25519);
        assert_eq!(key.type_label(), "ED25519");
        assert_eq!(key.bits(), 256);
    }

    #[test]
    fn empty_and_multiline_are_refused() {
        assert!(matches!(AuthorizedKey::parse(" \n"), Err(KeyError::EmptyKey)));
        let two = format!("{ED25519}\n{ED25519}");
        assert!(matches!(AuthorizedKey::parse(&two), Err(KeyError::MultipleLines)));
    }

    #[test]
    fn options_are_refused() {
        for prefix in ["restrict", "from=\"10.0.0.0/8\",no-pty", "command=\"echo hi there\""] {
            let err = AuthorizedKey::parse(&format!("{prefix} {ED25519}")).unwrap_err();
            assert!(matches!(err, KeyError::KeyOptions { .. }), "{prefix}: {err}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for line in ["hello world", "ssh-ed25519", "ssh-ed25519 !!!!", "ssh-ed25519 AAAA"] {
            assert!(AuthorizedKey::parse(line).is_err(), "{line}");
        }
        // Type word and key data disagree.
        let lie = ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(matches!(AuthorizedKey::parse(&lie), Err(KeyError::InvalidKey { .. })));
    }

    #[test]
    fn unknown_and_certificate_types_are_refused() {
        assert!(matches!(AuthorizedKey::parse("ssh-foo AAAA x"), Err(KeyError::UnsupportedAlgorithm { .. })));
        assert!(matches!(
            AuthorizedKey::parse("ssh-ed25519-cert-v01@openssh.com AAAA x"),
            Err(KeyError::CertificateRefused { .. })
        ));
        assert!(matches!(AuthorizedKey::parse("ssh-dss AAAA x"), Err(KeyError::DsaRefused)));
    }
}
