//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with credentials and key material.
///
/// Each message is one line that names the thing at fault and says what to
/// do. No message ever contains a password or private key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    // ----- authorized keys -------------------------------------------------
    /// The public-key line was empty.
    #[error("the public key is empty; paste one line of a .pub file, such as `ssh-ed25519 AAAA... alice@host`")]
    EmptyKey,

    /// Several lines were given where one key was expected.
    #[error("the public key spans several lines; add one key per line, in the one-line OpenSSH format")]
    MultipleLines,

    /// The key is in the multi-line RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`) format.
    #[error(
        "the public key is in RFC 4716 format; convert it with `ssh-keygen -i -f key.pub` and paste the resulting line"
    )]
    Rfc4716Format,

    /// The line starts with `authorized_keys` options (`from=`, `command=`, `restrict`...).
    #[error(
        "the public key line starts with options (`{options}`); remove them, passerelle does not support authorized_keys options"
    )]
    KeyOptions {
        /// The options text before the key type.
        options: String,
    },

    /// The line is not an OpenSSH public key.
    #[error("the public key cannot be read ({reason}); paste the whole line of the .pub file")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },

    /// An RSA key is shorter than the policy minimum.
    #[error("RSA key has {bits} bits; at least {min} are required")]
    RsaTooShort {
        /// Size of the key.
        bits: u32,
        /// Minimum accepted size.
        min: u32,
    },

    /// An RSA key is longer than OpenSSH itself accepts.
    #[error("RSA key has {bits} bits; at most 16384 are supported, use ed25519")]
    RsaTooLong {
        /// Size of the key.
        bits: u32,
    },

    /// DSA keys are refused.
    #[error("DSA keys are insecure and refused; use ed25519")]
    DsaRefused,

    /// OpenSSH certificates are not accepted as authorized keys.
    #[error("OpenSSH certificates ({algorithm}) are not supported; add the plain public key instead")]
    CertificateRefused {
        /// The certificate type.
        algorithm: String,
    },

    /// The key type is not supported.
    #[error("{algorithm} keys are not supported; use ed25519, ecdsa or RSA of at least 3072 bits")]
    UnsupportedAlgorithm {
        /// The key type as written in the line.
        algorithm: String,
    },

    // ----- files -------------------------------------------------------------
    /// A private file can be read or written by group or others.
    #[error("{} has mode {mode:04o}, readable or writable by group or others; run `chmod 600 {}`", .path.display(), .path.display())]
    InsecureMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A directory holding private files can be written by group or others.
    #[error("directory {} has mode {mode:04o}, writable by group or others; run `chmod 700 {}`", .path.display(), .path.display())]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A private file is a symlink, a directory or another non-regular file.
    #[error("{} is not a regular file (symlinks are refused); replace it with a regular file of mode 0600", .path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },

    /// A file that would be created already exists.
    #[error("{} already exists; refusing to overwrite it, move it away first", .path.display())]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },

    /// A file is larger than any key or certificate could be.
    #[error("{} is larger than {limit} bytes, too large for a key or certificate; check the path", .path.display())]
    FileTooLarge {
        /// The path.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// An I/O operation failed.
    #[error("cannot {action} {}: {source}; check the path and its permissions", .path.display())]
    Io {
        /// What was attempted (`read`, `create`...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    // ----- host keys ---------------------------------------------------------
    /// A host key file cannot be used.
    #[error("host key {} is unusable ({reason}); fix it, or move it away to have a new one generated", .path.display())]
    InvalidHostKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A host key that must exist does not (nothing is generated).
    #[error("host key {} does not exist; start the server once (`passerelle serve`) to have the host keys generated", .path.display())]
    MissingHostKey {
        /// The file.
        path: PathBuf,
    },

    /// A host key is protected by a passphrase.
    #[error("host key {} is encrypted; remove the passphrase with `ssh-keygen -p -N '' -f {}`", .path.display(), .path.display())]
    EncryptedHostKey {
        /// The file.
        path: PathBuf,
    },

    /// A `.pub` file exists without its private key, or does not match it.
    #[error("{} does not belong to {}; remove the .pub file to have it re-created", .public.display(), .private.display())]
    PublicKeyMismatch {
        /// The `.pub` file.
        public: PathBuf,
        /// The private key file.
        private: PathBuf,
    },

    /// Key generation failed.
    #[error("cannot generate {what}: {reason}; check that the operating system's random source works")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The underlying error.
        reason: String,
    },

    // ----- TLS -----------------------------------------------------------------
    /// Only one of the certificate and key files exists.
    #[error("{} exists but {} does not; provide both files, or remove both to have a self-signed pair generated", .present.display(), .missing.display())]
    TlsPairIncomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },

    /// The certificate file cannot be used.
    #[error("TLS certificate {} is unusable ({reason}); provide a PEM certificate (leaf first)", .path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The TLS key file cannot be used.
    #[error("TLS key {} is unusable ({reason}); provide an unencrypted PEM key (ECDSA, or RSA of at least 2048 bits)", .path.display())]
    InvalidTlsKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The TLS key does not belong to the certificate.
    #[error("TLS key {} does not match certificate {}; provide the key the certificate was issued for", .key.display(), .cert.display())]
    TlsKeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    // ----- master and data keys ----------------------------------------------------
    /// The master key file does not exist.
    #[error("master key {} does not exist; restore it from your offline copy, or run `passerelle init` on a new installation", .path.display())]
    MissingMasterKey {
        /// The file.
        path: PathBuf,
    },

    /// The master key file holds no usable key.
    #[error("master key {} is unusable ({reason}); restore it from your offline copy", .path.display())]
    InvalidMasterKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A wrapped data key does not unwrap under the master key.
    #[error(
        "the data key of {owner} cannot be unwrapped with master key {master_key_id}; the master key is not the one it was wrapped with, or the catalog is damaged"
    )]
    UnwrapFailed {
        /// Whose key it is (a tenant name).
        owner: String,
        /// The public identifier of the master key tried.
        master_key_id: String,
    },

    /// A sealed value does not decrypt (wrong key, wrong context, damaged).
    #[error("{context} cannot be decrypted: wrong key or damaged value")]
    OpenFailed {
        /// What the value is.
        context: String,
    },

    // ----- passwords -------------------------------------------------------------
    /// The password has fewer than 12 characters.
    #[error("password is too short ({chars} characters); use at least {min}")]
    PasswordTooShort {
        /// Its length in characters.
        chars: usize,
        /// The minimum.
        min: usize,
    },

    /// The password is unreasonably long.
    #[error("password is too long ({chars} characters); use at most {max}")]
    PasswordTooLong {
        /// Its length in characters.
        chars: usize,
        /// The maximum.
        max: usize,
    },

    /// The password contains control characters.
    #[error("password contains control characters; use printable characters only")]
    PasswordControlCharacters,

    /// The password contains the login or tenant name.
    #[error("password contains the login or tenant name; choose one that does not")]
    PasswordContainsName,

    /// zxcvbn considers the password guessable.
    #[error("password is too weak: {hint}")]
    PasswordTooWeak {
        /// zxcvbn's warning, or a generic hint.
        hint: String,
    },

    /// Hashing a password failed.
    #[error("cannot hash the password: {reason}; check that the operating system's random source works")]
    PasswordHash {
        /// The underlying error (never the password).
        reason: String,
    },
}

impl KeyError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        Self::Io { action, path: path.to_path_buf(), source }
    }
}
