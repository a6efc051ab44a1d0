//! A tenant's data key: 32 random bytes that encrypt the tenant's archived
//! originals and its secrets kept in the catalog. It is stored only wrapped
//! under the master key ([`crate::MasterKey::wrap`]); deleting the wrapped
//! copy destroys it, and with it everything it encrypted.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngExt;
use secrecy::zeroize::Zeroizing;

use crate::KeyError;

/// Version byte opening a sealed value.
const SEAL_VERSION: u8 = 1;
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// A 32-byte AES-256 key, zeroized when dropped and never shown by `Debug`.
pub struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill(&mut bytes[..]);
        Self { bytes }
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes: Zeroizing::new(bytes) }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.bytes).into())
    }

    /// Encrypts a small value (a password) with AES-256-GCM and a random
    /// nonce, binding `context` (what the value is and whose) as associated
    /// data. Returns text to store: `base64(version ‖ nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce[..]);
        let mut buf = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .cipher()
            .encrypt_inout_detached(&Nonce::<Aes256Gcm>::from(nonce), context.as_bytes(), buf.as_mut_slice().into())
            .expect("AES-GCM encrypts a small value");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len() + TAG_LEN);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        STANDARD.encode(out)
    }

    /// Decrypts a value made by [`DataKey::seal`] with the same `context`;
    /// another key, another context or a damaged value is
    /// [`KeyError::OpenFailed`].
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let failed = || KeyError::OpenFailed { context: context.to_owned() };
        let raw = STANDARD.decode(sealed).map_err(|_| failed())?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != SEAL_VERSION {
            return Err(failed());
        }
        let (nonce, rest) = raw[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| failed())?;
        let tag = Tag::<Aes256Gcm>::try_from(tag).map_err(|_| failed())?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        self.cipher()
            .decrypt_inout_detached(&nonce, context.as_bytes(), buf.as_mut_slice().into(), &tag)
            .map_err(|_| failed())?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let key = DataKey::generate();
        let sealed = key.seal(b"s3cret-password", "tenant-db-password acme");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open(&sealed, "tenant-db-password acme").unwrap().as_slice(), b"s3cret-password");
        assert!(key.open(&sealed, "tenant-db-password initech").is_err());
        assert!(DataKey::generate().open(&sealed, "tenant-db-password acme").is_err());
        assert!(key.open("garbage", "x").is_err());
        assert_eq!(format!("{key:?}"), "DataKey(..)");
    }
}
