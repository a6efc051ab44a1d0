//! The upload seal: the SHA-256 of a file as its upload completed, kept on
//! the file itself in an extended attribute (`user.passerelle.sha256`).
//!
//! passerelle acknowledges an upload once the file is complete under its
//! name, without waiting for the disk (`uploads.fsync = false`, like
//! OpenSSH). A power loss in the next seconds can then leave that name on a
//! file whose data never reached the disk: empty or cut short. The seal is
//! metadata, journaled with the name, so such a file keeps a seal that its
//! content no longer matches, and the pipeline refuses it instead of
//! importing half a file. (A file its validation rejects before reading it
//! whole is rejected for that, seal or not.) Files that other programs put
//! in an inbox carry no seal and are taken as they are.

use std::fs::File;
use std::io;
use std::path::Path;

/// Name of the extended attribute holding the seal (64 lower-case hex digits).
const SEAL_XATTR: &str = "user.passerelle.sha256";

/// Seals `file` with `sha256`, the digest of what the client sent. Fails
/// where the filesystem keeps no user extended attributes; the caller then
/// has to make the upload durable before acknowledging it.
pub fn seal(file: &File, sha256: &[u8; 32]) -> io::Result<()> {
    rustix::fs::fsetxattr(file, SEAL_XATTR, hex::encode(sha256).as_bytes(), rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The seal of the file at `path`, if it has a well-formed one.
pub fn sealed_sha256(path: &Path) -> Option<String> {
    let mut value = [0u8; 64];
    match rustix::fs::getxattr(path, SEAL_XATTR, &mut value[..]) {
        Ok(64) => std::str::from_utf8(&value)
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase),
        _ => None,
    }
}
