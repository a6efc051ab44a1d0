//! The master key: 32 random bytes in a 0600 file outside the data
//! directory, from which every other key is derived or under which it is
//! wrapped. Losing it makes every archive and every encrypted catalog value
//! unreadable, so operators keep an offline copy.
//!
//! File format (text, so that it can be copied onto paper or a password
//! manager): `#` comment lines, then one line holding the key in standard
//! base64.

use std::fmt;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use aws_lc_rs::hkdf;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngExt;
use secrecy::zeroize::{Zeroize, Zeroizing};

use crate::KeyError;
use crate::data_key::DataKey;
use crate::secret_file::{read_secret_file, write_secret_file};

/// Length of the master key and of everything derived from it.
const KEY_LEN: usize = 32;
/// Version byte opening a wrapped data key.
const WRAP_VERSION: u8 = 1;
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// HKDF purpose of the key that wraps data keys.
const WRAP_PURPOSE: &str = "data-key-wrap";
/// HKDF purpose of the public identifier of a master key.
const ID_PURPOSE: &str = "key-id";
/// Header written above the key in a new file.
const FILE_HEADER: &str = "# passerelle master key: keep an offline copy; without it no archive can be decrypted\n";

/// The master key (32 random bytes), zeroized when dropped and never shown
/// by `Debug`.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// A data key wrapped (encrypted and authenticated) under a master key, as
/// stored in the catalog: text, `base64(version ‖ nonce ‖ ciphertext ‖ tag)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey(String);

impl WrappedKey {
    /// A wrapped key as read back from storage (checked when unwrapped).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl MasterKey {
    /// Generates a new master key and writes it to `path` (mode 0600, its
    /// directory created 0700 when absent). An existing file is never
    /// overwritten ([`KeyError::AlreadyExists`]).
    pub fn create(path: &Path) -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill(&mut bytes[..]);
        let key = Self { bytes };
        let mut text = Zeroizing::new(String::from(FILE_HEADER));
        text.push_str(&STANDARD.encode(key.bytes.as_slice()));
        text.push('\n');
        write_secret_file(path, text.as_bytes())?;
        Ok(key)
    }

    /// Reads the master key from `path`. A missing file is
    /// [`KeyError::MissingMasterKey`]; a file that group or others can
    /// access, or a symlink, is refused; so is anything but one base64 line
    /// of 32 bytes (comment lines aside).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let contents = match read_secret_file(path) {
            Ok(contents) => Zeroizing::new(contents),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::MissingMasterKey { path: path.to_path_buf() });
            }
            Err(e) => return Err(e),
        };
        let invalid = |reason: &str| KeyError::InvalidMasterKey { path: path.to_path_buf(), reason: reason.into() };
        let text = std::str::from_utf8(&contents).map_err(|_| invalid("not text"))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| invalid("no key line"))?;
        if lines.next().is_some() {
            return Err(invalid("more than one key line"));
        }
        let decoded = Zeroizing::new(STANDARD.decode(line).map_err(|_| invalid("not base64"))?);
        if decoded.len() != KEY_LEN {
            return Err(invalid("not 32 bytes"));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(Self { bytes })
    }

    /// A 32-byte key for `purpose`, derived with HKDF-SHA-256 (no salt, info
    /// = `purpose`): distinct purposes give independent keys, and none
    /// reveals the master key. The caller zeroizes it when done.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(self.bytes.as_slice());
        let info = [purpose.as_bytes()];
        let mut out = [0u8; KEY_LEN];
        // 32 bytes is far below HKDF-SHA-256's limit of 8160: cannot fail.
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF-SHA-256 expands to 32 bytes");
        out
    }

    /// A public identifier of this key (16 hex digits, derived one-way), to
    /// tell keys apart in the catalog and in messages without revealing them.
    pub fn id(&self) -> String {
        let derived = Zeroizing::new(self.derive(ID_PURPOSE));
        derived[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Wraps `key` for `owner` (a tenant name): AES-256-GCM under a key
    /// derived from this one, with `owner` bound as associated data so that a
    /// wrapped key moved to another owner does not unwrap.
    pub fn wrap(&self, key: &DataKey, owner: &str) -> WrappedKey {
        let cipher = self.wrapping_cipher();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce[..]);
        let mut buf = Zeroizing::new(key.bytes().to_vec());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::<Aes256Gcm>::from(nonce), &wrap_aad(owner), buf.as_mut_slice().into())
            .expect("AES-GCM encrypts 32 bytes");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + KEY_LEN + TAG_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        WrappedKey(STANDARD.encode(out))
    }

    /// Unwraps a key made by [`MasterKey::wrap`] for the same `owner`.
    /// A different master key, another owner or a damaged value is
    /// [`KeyError::UnwrapFailed`].
    pub fn unwrap(&self, wrapped: &WrappedKey, owner: &str) -> Result<DataKey, KeyError> {
        let failed = || KeyError::UnwrapFailed { owner: owner.to_owned(), master_key_id: self.id() };
        let raw = STANDARD.decode(&wrapped.0).map_err(|_| failed())?;
        if raw.len() != 1 + NONCE_LEN + KEY_LEN + TAG_LEN || raw[0] != WRAP_VERSION {
            return Err(failed());
        }
        let (nonce, rest) = raw[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(KEY_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| failed())?;
        let tag = Tag::<Aes256Gcm>::try_from(tag).map_err(|_| failed())?;
        let mut buf = Zeroizing::new([0u8; KEY_LEN]);
        buf.copy_from_slice(ciphertext);
        self.wrapping_cipher()
            .decrypt_inout_detached(&nonce, &wrap_aad(owner), buf.as_mut_slice().into(), &tag)
            .map_err(|_| failed())?;
        Ok(DataKey::from_bytes(*buf))
    }

    fn wrapping_cipher(&self) -> Aes256Gcm {
        let mut key = self.derive(WRAP_PURPOSE);
        let cipher = Aes256Gcm::new(&key.into());
        key.zeroize();
        cipher
    }
}

/// What a wrapped key is bound to.
fn wrap_aad(owner: &str) -> Vec<u8> {
    let mut aad = b"passerelle data key v1\0".to_vec();
    aad.extend_from_slice(owner.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_key_is_0600_loads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        let loaded = MasterKey::load(&path).unwrap();
        assert_eq!(key.derive("x"), loaded.derive("x"));
        assert!(matches!(MasterKey::create(&path), Err(KeyError::AlreadyExists { .. })));
        assert_eq!(MasterKey::load(&path).unwrap().id(), key.id());
    }

    #[test]
    fn missing_or_readable_key_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let err = MasterKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::MissingMasterKey { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        MasterKey::create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = MasterKey::load(&path).unwrap_err();
        assert!(err.to_string().contains(&format!("chmod 600 {}", path.display())), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        write_secret_file(&path, b"# comment\nAAAA\n").unwrap();
        assert!(matches!(MasterKey::load(&path), Err(KeyError::InvalidMasterKey { .. })));
    }

    #[test]
    fn derived_keys_differ_per_purpose_and_debug_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::create(&dir.path().join("k")).unwrap();
        assert_ne!(key.derive("audit-chain"), key.derive("data-key-wrap"));
        assert_eq!(key.derive("audit-chain"), key.derive("audit-chain"));
        let shown = format!("{key:?}");
        assert!(!shown.contains(&STANDARD.encode(key.bytes.as_slice())), "{shown}");
        assert!(shown.contains(&key.id()), "{shown}");
    }

    #[test]
    fn wrapped_keys_unwrap_only_with_their_master_key_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::create(&dir.path().join("a")).unwrap();
        let other = MasterKey::create(&dir.path().join("b")).unwrap();
        let data = DataKey::generate();
        let wrapped = master.wrap(&data, "acme");
        assert_eq!(master.unwrap(&wrapped, "acme").unwrap().bytes(), data.bytes());
        assert!(matches!(master.unwrap(&wrapped, "initech"), Err(KeyError::UnwrapFailed { .. })));
        assert!(matches!(other.unwrap(&wrapped, "acme"), Err(KeyError::UnwrapFailed { .. })));
        // One character of the ciphertext changed.
        let mut text = wrapped.as_str().to_owned();
        let flipped = if text.as_bytes()[30] == b'A' { "B" } else { "A" };
        text.replace_range(30..31, flipped);
        let damaged = WrappedKey::from_stored(text);
        assert!(master.unwrap(&damaged, "acme").is_err());
    }
}
