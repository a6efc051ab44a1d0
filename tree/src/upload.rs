//! The upload-completed event.

use std::fmt;

use passerelle_catalog::{Login, TenantName};

use crate::InboxPath;

/// A file whose upload finished cleanly and that now sits at its final name
/// in its tenant's `/inbox`. Emitted once per such file, never for an
/// interrupted upload.
#[derive(Clone, Debug)]
pub struct UploadCompleted {
    /// Its tenant.
    pub tenant: TenantName,
    /// Who uploaded it.
    pub login: Login,
    /// Where it is.
    pub path: InboxPath,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, computed while it streamed in.
    pub sha256: Sha256,
}

/// A SHA-256 digest; displayed as 64 lower-case hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha256(pub [u8; 32]);

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
