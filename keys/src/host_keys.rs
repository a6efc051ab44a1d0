//! The server's SSH host keys: loaded from a directory, or generated there
//! on first start.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::RsaKeypair;
use russh::keys::{Algorithm, PrivateKey, PublicKey};

use secrecy::zeroize::Zeroize;

use crate::KeyError;
use crate::authorized_key::ssh_keygen_line;
use crate::secret_file::{
    check_private_dir, create_private_dir, exists, read_public_file, read_secret_file, write_public_file,
    write_secret_file,
};

/// Size of generated RSA host keys.
const RSA_BITS: usize = 3072;
/// Comment stored in generated host keys.
const COMMENT: &str = "passerelle host key";

/// The kinds of host key kept, in the order they are offered to clients.
#[derive(Clone, Copy)]
enum Kind {
    Ed25519,
    Rsa,
}

impl Kind {
    const ALL: [Self; 2] = [Self::Ed25519, Self::Rsa];

    fn file_name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ssh_host_ed25519_key",
            Self::Rsa => "ssh_host_rsa_key",
        }
    }

    fn matches(self, algorithm: &Algorithm) -> bool {
        matches!((self, algorithm), (Self::Ed25519, Algorithm::Ed25519) | (Self::Rsa, Algorithm::Rsa { .. }))
    }

    fn generate(self) -> Result<PrivateKey, KeyError> {
        let mut rng = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
        let key = match self {
            Self::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
            Self::Rsa => RsaKeypair::random(&mut rng, RSA_BITS).map(PrivateKey::from),
        };
        let mut key = key.map_err(|e| KeyError::Generate { what: "an SSH host key", reason: e.to_string() })?;
        key.set_comment(COMMENT);
        Ok(key)
    }
}

/// The SSH host keys of the server: `ssh_host_ed25519_key` and
/// `ssh_host_rsa_key` (3072 bits) in one directory, in OpenSSH's private key
/// format with their `.pub` files beside them, as sshd keeps them.
///
/// Keys that are missing are generated; keys that exist are never
/// overwritten. A private key file that group or others can access, or that
/// is a symlink, is refused, as sshd refuses it.
pub struct HostKeys {
    keys: Vec<PrivateKey>,
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKeys").field("fingerprints", &self.fingerprints()).finish()
    }
}

impl HostKeys {
    /// Loads the host keys from `dir`, generating any that are absent.
    ///
    /// `dir` is created with mode 0700 when absent, and refused when group or
    /// others can write to it. Generated private keys get mode 0600 and their
    /// `.pub` files 0644. A `.pub` file that does not match its private key
    /// is an error; a missing one is re-created.
    pub fn load_or_generate(dir: &Path) -> Result<Self, KeyError> {
        create_private_dir(dir)?;
        check_private_dir(dir)?;
        let keys = Kind::ALL.iter().map(|&kind| load_or_generate_one(dir, kind)).collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Loads the host keys from `dir`, creating nothing: a missing directory
    /// or key is an error ([`KeyError::MissingHostKey`]), for the
    /// administration commands that must not create state.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let keys = Kind::ALL
            .iter()
            .map(|&kind| {
                let private = dir.join(kind.file_name());
                if !exists(&private)? {
                    return Err(KeyError::MissingHostKey { path: private });
                }
                check_private_dir(dir)?;
                load_private(&private, kind)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// The private keys, ed25519 first, for russh's server `Config::keys`.
    pub fn keys(&self) -> &[PrivateKey] {
        &self.keys
    }

    /// For each key, its algorithm (`ssh-ed25519`, `ssh-rsa`) and the line
    /// `ssh-keygen -lf` prints for it, such as
    /// `256 SHA256:abc... passerelle host key (ED25519)`: what to log at start
    /// and to publish so that users can check the server.
    pub fn fingerprints(&self) -> Vec<(String, String)> {
        self.keys.iter().map(|k| (k.algorithm().as_str().to_owned(), ssh_keygen_line(k.public_key()))).collect()
    }

    /// For each key, its `known_hosts` line for `hosts` (already written as
    /// `known_hosts` wants them, such as `[sftp.example.com]:2222`):
    /// `hosts keytype base64`, without the key's comment.
    pub fn known_hosts_lines(&self, hosts: &str) -> Result<Vec<String>, KeyError> {
        self.keys
            .iter()
            .map(|k| {
                let mut public = k.public_key().clone();
                public.set_comment("");
                let line = public
                    .to_openssh()
                    .map_err(|e| KeyError::Generate { what: "an SSH public key line", reason: e.to_string() })?;
                Ok(format!("{hosts} {}", line.trim_end()))
            })
            .collect()
    }
}

fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn load_or_generate_one(dir: &Path, kind: Kind) -> Result<PrivateKey, KeyError> {
    let private = dir.join(kind.file_name());
    let public = public_path(&private);
    if !exists(&private)? {
        if exists(&public)? {
            return Err(KeyError::PublicKeyMismatch { public, private });
        }
        let key = kind.generate()?;
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| KeyError::Generate { what: "an SSH host key", reason: e.to_string() })?;
        match write_secret_file(&private, pem.as_bytes()) {
            // Another process generated it first: use theirs.
            Ok(()) | Err(KeyError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let key = load_private(&private, kind)?;
    sync_public(&public, &private, key.public_key())?;
    Ok(key)
}

fn load_private(path: &Path, kind: Kind) -> Result<PrivateKey, KeyError> {
    let invalid = |reason: String| KeyError::InvalidHostKey { path: path.to_path_buf(), reason };
    let mut bytes = read_secret_file(path)?;
    let parsed = PrivateKey::from_openssh(&bytes);
    bytes.zeroize();
    let key = parsed.map_err(|e| invalid(format!("not an OpenSSH private key: {e}")))?;
    if key.is_encrypted() {
        return Err(KeyError::EncryptedHostKey { path: path.to_path_buf() });
    }
    if !kind.matches(&key.algorithm()) {
        return Err(invalid(format!("it holds a {} key, not the type its name says", key.algorithm().as_str())));
    }
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa.key_size();
        if bits < RSA_BITS as u32 {
            return Err(invalid(format!("RSA key has {bits} bits; at least {RSA_BITS} are required")));
        }
    }
    Ok(key)
}

/// Checks the `.pub` file against the private key, or writes it when absent.
fn sync_public(public: &Path, private: &Path, key: &PublicKey) -> Result<(), KeyError> {
    let mismatch = || KeyError::PublicKeyMismatch { public: public.to_path_buf(), private: private.to_path_buf() };
    if exists(public)? {
        let text = String::from_utf8(read_public_file(public)?).map_err(|_| mismatch())?;
        let on_disk = PublicKey::from_openssh(text.trim()).map_err(|_| mismatch())?;
        return if on_disk.key_data() == key.key_data() { Ok(()) } else { Err(mismatch()) };
    }
    let mut line =
        key.to_openssh().map_err(|e| KeyError::Generate { what: "an SSH public key line", reason: e.to_string() })?;
    line.push('\n');
    match write_public_file(public, line.as_bytes()) {
        Ok(()) | Err(KeyError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
