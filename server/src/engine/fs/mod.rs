//! STUB — being replaced by the tenant filesystem implementation (helper).
//! The signatures below are the contract the protocol front-ends use.
#![allow(dead_code, unused_variables, missing_docs)]

use std::path::Path;
use std::time::SystemTime;

/// Which part of the tenant tree a path is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area { Root, Inbox, Outbox }

/// A normalised path inside one tenant's tree; only `TenantFs::resolve` builds one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TenantPath { components: Vec<String> }

impl TenantPath {
    pub(crate) fn root() -> Self { Self { components: Vec::new() } }
    /// As clients see it: `/inbox/a.csv`, `/` for the root.
    pub(crate) fn to_client_string(&self) -> String { todo!() }
    pub(crate) fn area(&self) -> Area { todo!() }
    pub(crate) fn file_name(&self) -> Option<&str> { todo!() }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("no such file or directory")] NotFound,
    #[error("permission denied")] PermissionDenied,
    #[error("already exists")] AlreadyExists,
    #[error("not a directory")] NotADirectory,
    #[error("is a directory")] IsADirectory,
    #[error("directory not empty")] DirectoryNotEmpty,
    #[error("invalid path: {0}")] InvalidPath(&'static str),
    #[error("not supported: {0}")] Unsupported(&'static str),
    #[error("no space left on device")] NoSpace,
    #[error("i/o error: {0}")] Io(std::io::Error),
}

#[derive(Clone, Debug)]
pub(crate) struct FileStat { pub(crate) size: u64, pub(crate) is_dir: bool, pub(crate) permissions: u32, pub(crate) modified: SystemTime, pub(crate) accessed: SystemTime }

#[derive(Clone, Debug)]
pub(crate) struct FsStats { pub(crate) block_size: u64, pub(crate) blocks: u64, pub(crate) blocks_free: u64, pub(crate) blocks_available: u64, pub(crate) files: u64, pub(crate) files_free: u64, pub(crate) name_max: u64 }

#[derive(Clone, Debug)]
pub(crate) struct TenantFs;
pub(crate) struct FileReader;
pub(crate) struct Upload;
#[derive(Clone, Debug)]
pub(crate) struct CommittedUpload { pub(crate) path: TenantPath, pub(crate) size: u64, pub(crate) sha256: [u8; 32] }

impl TenantFs {
    pub(crate) fn open(tenant_root: &Path) -> Result<Self, FsError> { todo!() }
    pub(crate) fn resolve(&self, cwd: &TenantPath, raw: &[u8]) -> Result<TenantPath, FsError> { todo!() }
    pub(crate) async fn stat(&self, path: &TenantPath) -> Result<FileStat, FsError> { todo!() }
    pub(crate) async fn read_dir(&self, path: &TenantPath) -> Result<Vec<(String, FileStat)>, FsError> { todo!() }
    pub(crate) async fn open_read(&self, path: &TenantPath) -> Result<FileReader, FsError> { todo!() }
    pub(crate) async fn create_upload(&self, path: &TenantPath, exclusive: bool) -> Result<Upload, FsError> { todo!() }
    pub(crate) async fn mkdir(&self, path: &TenantPath) -> Result<(), FsError> { todo!() }
    pub(crate) async fn rmdir(&self, path: &TenantPath) -> Result<(), FsError> { todo!() }
    pub(crate) async fn remove_file(&self, path: &TenantPath) -> Result<(), FsError> { todo!() }
    pub(crate) async fn rename(&self, from: &TenantPath, to: &TenantPath) -> Result<(), FsError> { todo!() }
    pub(crate) async fn set_times(&self, path: &TenantPath, accessed: SystemTime, modified: SystemTime) -> Result<(), FsError> { todo!() }
    pub(crate) async fn statvfs(&self, path: &TenantPath) -> Result<FsStats, FsError> { todo!() }
}

impl FileReader {
    pub(crate) async fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, FsError> { todo!() }
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> { todo!() }
}

impl Upload {
    pub(crate) fn path(&self) -> &TenantPath { todo!() }
    pub(crate) async fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), FsError> { todo!() }
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> { todo!() }
    pub(crate) async fn sync(&self) -> Result<(), FsError> { todo!() }
    pub(crate) async fn commit(self) -> Result<CommittedUpload, FsError> { todo!() }
    pub(crate) async fn abort(self) { todo!() }
}
