//! Credentials and key material for passerelle.
//!
//! This crate owns every secret the server keeps and every credential a user
//! presents, and the policy that applies to them:
//!
//! ```text
//!   users' public keys ──► AuthorizedKey::parse ──► policy ──► stored line
//!                                                      │       (to_openssh)
//!   passwords ──► check_password_strength ──► hash_password ──► PHC string
//!   login ──► verify_password / dummy_verify (same effort for unknown users)
//!
//!   host key dir ──► HostKeys::load_or_generate ──► russh server Config
//!   cert + key ───► TlsIdentity::load_or_generate ──► rustls server config
//!
//!   master key file ──► MasterKey::load / create ──► derive(purpose) (HKDF-SHA-256)
//!                                                └─► wrap / unwrap ◄── DataKey (per tenant)
//!   DataKey ──► seal / open (small secrets)   stream::encrypt / decrypt (archives)
//!
//!   all of them ──► write_secret_file / read_secret_file
//!                   (0600, atomic, no overwrite, no symlinks)
//! ```
//!
//! # Policy
//! - User keys: ed25519, ECDSA P-256/384/521 and their `sk-` security-key
//!   forms; RSA of at least 3072 bits. DSA, certificates and
//!   `authorized_keys` options are refused with a message saying what to do.
//! - Keys are shown as `ssh-keygen -lf` shows them, so that users can compare
//!   with what their own tools print.
//! - Passwords: 12 to 1024 characters, zxcvbn score 3 or more, not containing
//!   the login or tenant name; hashed with argon2id.
//! - Private files (host keys, TLS key, other crates' secrets) are written
//!   with mode 0600 into a 0700 directory, atomically, never over an existing
//!   file, and refused at load when group or others can access them.
//!
//! # Non-features
//! - No encrypted (passphrase-protected) host or TLS keys: the server starts
//!   unattended; file permissions protect them instead.
//! - No `authorized_keys` options (`command=`, `from=`...) and no OpenSSH
//!   certificates.
//! - No key rotation or overwriting of host and TLS keys: a key that exists
//!   is used as is. The master key is replaced only by rotation, which
//!   re-wraps the data keys (the caller's job) and never touches the data.
//! - No ACME or certificate renewal; the self-signed certificate is for
//!   first start and tests.
//!
//! Types from russh appear in the interface: [`HostKeys::keys`] gives
//! `russh::keys::PrivateKey` values and [`AuthorizedKey::public_key`] a
//! `russh::keys::PublicKey` (both re-exported from russh's `ssh-key`).

mod authorized_key;
mod data_key;
mod error;
mod host_keys;
mod master_key;
mod password;
mod secret_file;
pub mod stream;
mod tls;

pub use authorized_key::AuthorizedKey;
pub use data_key::DataKey;
pub use error::KeyError;
pub use host_keys::HostKeys;
pub use master_key::{MasterKey, WrappedKey};
pub use password::{check_password_strength, dummy_verify, generate_password, hash_password, verify_password};
pub use secret_file::{check_private_file_mode, read_secret_file, write_secret_file};
pub use tls::TlsIdentity;
