//! What the server and the import pipeline agree on about a tenant's tree.
//!
//! The server's engine writes uploads into `/inbox`; the import pipeline
//! takes them from there. Neither depends on the other for these three
//! things, which both must read the same way:
//!
//! - [`InboxPath`] — where an upload landed, below `/inbox`, checked;
//! - [`UploadCompleted`] — the event the engine emits once a file is
//!   complete under its name, and the pipeline receives;
//! - [`seal`] — the SHA-256 an upload is stamped with on disk, which the
//!   pipeline checks before it imports the file.
//!
//! The client-visible contract of the tree (areas, receipts) is in the
//! README, "Layout" and "Import pipeline".

mod inbox_path;
mod seal;
mod upload;

pub use inbox_path::InboxPath;
pub use seal::{seal, sealed_sha256};
pub use upload::{Sha256, UploadCompleted};
