//! What the server and the import pipeline agree on about a tenant's tree.
//!
//! The server's engine writes uploads into `/inbox`; the import pipeline
//! takes them from there. Neither depends on the other for these four
//! things, which both must read the same way:
//!
//! - [`InboxPath`] — where an upload landed, below `/inbox`, checked;
//! - [`UploadCompleted`] — the event the engine emits once a file is
//!   complete under its name, and the pipeline receives;
//! - [`seal`] — the SHA-256 an upload is stamped with on disk, which the
//!   pipeline checks before it imports the file;
//! - [`DiskSpace`] — the free space of the data directory's filesystem and
//!   the reserve kept there for the catalog: uploads stop short of it, and
//!   imports wait for it.
//!
//! The client-visible contract of the tree (areas, receipts) is in the
//! README, "Layout" and "Import pipeline".

mod inbox_path;
mod seal;
mod space;
mod upload;

pub use inbox_path::InboxPath;
pub use seal::{seal, sealed_sha256};
pub use space::{DiskSpace, LowSpace, is_storage_full};
pub use upload::{Sha256, UploadCompleted};
