//! The tenant filesystem: one tenant's tree, as every protocol front-end
//! sees it, confined like a chroot.
//!
//! ```text
//!  client bytes ──► resolve (path.rs) ──► TenantPath ──► TenantFs op ──► walk.rs ──► cap-std Dir
//!                   lexical: UTF-8, no NUL,              area rules      one name at a time,
//!                   no controls, `..` clamped            (inbox only     O_NOFOLLOW, beneath
//!                                                         for writes)     the tenant root
//! ```
//!
//! What a client sees:
//!
//! - `/` — read-only, lists only `inbox` and `outbox` (anything else kept in
//!   the tenant root on disk is invisible and reported missing);
//! - `/inbox` — files and sub-directories may be created, renamed, removed
//!   strictly below it; uploads are atomic (`upload.rs`);
//! - `/outbox` — list and read; the import pipeline writes receipts
//!   there by other means, and clients may delete them (`*.result.json`
//!   files), nothing else.
//!
//! Non-features: no symlinks or hard links (not creatable; symlinks planted in
//! the tree are refused by every operation and left out of listings, as are
//! FIFOs, sockets and devices), no names that are not UTF-8 or that contain
//! control characters (unreachable, so unlisted), no access to uploads in
//! progress (their hidden temporaries cannot be named).
//!
//! The root directory is opened once, with ambient authority, in
//! [`TenantFs::open`]; every later access is relative to it through cap-std,
//! which refuses `..` and absolute paths and keeps lookups beneath the root
//! even if the checks here had a bug.
//!
//! Where the work runs: an operation that is a few system calls on metadata
//! the kernel holds in memory (resolving, stat, open, create, mkdir, rename,
//! remove, opening a directory to list it, sealing and renaming a finished upload), writes within an
//! upload's first [`SMALL_FILE`] bytes and reading a file of at most that size
//! run in place, on the runtime thread serving the request: a trip to tokio's blocking pool and back costs two thread
//! switches, more than those calls themselves, and a client moving many small
//! files waits for every one of them. Work whose length grows with the data
//! or waits for the disk — reads and writes beyond that, each batch of a listing,
//! re-reading a file for its digest, flushes, the sweep of stale uploads —
//! runs on the blocking pool, so a large transfer never holds a runtime
//! thread. (This assumes a local data directory, like any file server that
//! stats and opens files on its event loop: on a network filesystem that
//! hangs, the runtime threads would hang with it.)

mod bounds;
mod cursor;
mod digest;
mod error;
mod long_name;
mod path;
mod reader;
mod stat;
mod sweep;
mod upload;
mod walk;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_fs_ext::{DirExt as _, FollowSymlinks, OpenOptionsFollowExt as _, OpenOptionsSyncExt as _};
use cap_std::fs::{Dir, OpenOptions};

pub(crate) use bounds::UploadBounds;
pub(crate) use cursor::DirCursor;
pub(crate) use error::{FsError, TooManyOpen};
pub(crate) use long_name::unix_seconds;
#[cfg(test)]
use path::Area;
pub(crate) use path::{TenantPath, UPLOAD_TEMP_PREFIX};
pub(crate) use reader::FileReader;
pub(crate) use stat::{FileStat, FsStats};
pub(crate) use upload::{Commit, Door, RefusedUpload, Upload};

/// One tenant's tree. Cheap to clone (the root directory is shared); every
/// session of the tenant may hold its own.
#[derive(Clone, Debug)]
pub(crate) struct TenantFs {
    root: Arc<Dir>,
    durable: bool,
}

/// Writes that stay within an upload's first `SMALL_FILE` bytes run in place;
/// a file of at most that size is read whole when it is opened.
const SMALL_FILE: usize = 32 * 1024;

/// Runs filesystem work on the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, FsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}

/// Refuses offsets that the kernel would reject (`off_t` is signed);
/// returns where the piece ends.
fn check_offset(offset: u64, len: usize) -> Result<u64, FsError> {
    match offset.checked_add(len as u64) {
        Some(end) if i64::try_from(end).is_ok() => Ok(end),
        _ => Err(FsError::Unsupported("offset beyond the largest file size")),
    }
}

/// Paths outside `/inbox` and `/outbox` do not exist for a client.
fn ensure_visible(path: &TenantPath) -> Result<(), FsError> {
    if path.is_visible() { Ok(()) } else { Err(FsError::NotFound) }
}

/// Changes are allowed strictly below `/inbox` only.
fn ensure_writable(path: &TenantPath) -> Result<(), FsError> {
    if path.is_writable() { Ok(()) } else { Err(FsError::PermissionDenied) }
}

impl TenantFs {
    /// Opens the tenant root (`<data_dir>/tenants/<tenant>/`). This is the only
    /// place that uses ambient authority.
    pub(crate) fn open(tenant_root: &Path) -> Result<Self, FsError> {
        let root = Dir::open_ambient_dir(tenant_root, cap_std::ambient_authority())?;
        Ok(Self { root: Arc::new(root), durable: true })
    }

    /// Whether every commit flushes the upload to disk before it returns
    /// (`uploads.fsync`); on unless turned off here.
    pub(crate) fn with_durable_commits(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Turns raw client bytes into a path, relative to `cwd` unless absolute.
    /// Lexical only: whether the path exists is for the operation to find.
    pub(crate) fn resolve(&self, cwd: &TenantPath, raw: &[u8]) -> Result<TenantPath, FsError> {
        path::resolve(cwd, raw)
    }

    /// Attributes of a file or directory; symlinks are not followed but
    /// refused (`PermissionDenied`), like FIFOs, sockets and devices.
    pub(crate) async fn stat(&self, path: &TenantPath) -> Result<FileStat, FsError> {
        ensure_visible(path)?;
        if path.is_root() {
            return Ok(FileStat::from_cap(&self.root.dir_metadata()?));
        }
        let (dir, name) = walk::open_parent(&self.root, path)?;
        Ok(FileStat::from_cap(&walk::plain_metadata(&dir, name)?))
    }

    /// Opens a directory for listing in batches (see `cursor.rs` for what
    /// is listed).
    pub(crate) async fn open_dir(&self, path: &TenantPath) -> Result<DirCursor, FsError> {
        ensure_visible(path)?;
        DirCursor::new(walk::open_dir(&self.root, path.components())?, path.is_root())
    }

    /// The whole listing of a directory, sorted by name (tests).
    #[cfg(test)]
    pub(crate) async fn read_dir(&self, path: &TenantPath) -> Result<Vec<(String, FileStat)>, FsError> {
        let cursor = self.open_dir(path).await?;
        let mut entries = Vec::new();
        loop {
            let batch = cursor.next_batch().await?;
            if batch.is_empty() {
                break;
            }
            entries.extend(batch);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Opens a regular file for reading (`IsADirectory` for a directory,
    /// `PermissionDenied` for a symlink or special file).
    pub(crate) async fn open_read(&self, path: &TenantPath) -> Result<FileReader, FsError> {
        ensure_visible(path)?;
        if path.is_root() {
            return Err(FsError::IsADirectory);
        }
        let (dir, name) = walk::open_parent(&self.root, path)?;
        let mut options = OpenOptions::new();
        // O_NONBLOCK: opening a FIFO swapped in after any check must not
        // hang the thread; it changes nothing for regular files.
        options.read(true).follow(FollowSymlinks::No).nonblock(true);
        let file = dir.open_with(name, &options).map_err(|err| walk::refine(&dir, name, err))?.into_std();
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if !meta.is_file() {
            return Err(FsError::PermissionDenied);
        }
        FileReader::new(file, meta.len())
    }

    /// Starts an atomic upload to `path` (strictly below `/inbox`, parent
    /// must exist), held to `bounds`. With `exclusive`, an existing target is
    /// `AlreadyExists`, now and again at commit; otherwise commit replaces it.
    pub(crate) async fn create_upload(
        &self,
        path: &TenantPath,
        exclusive: bool,
        bounds: &UploadBounds,
    ) -> Result<Upload, FsError> {
        ensure_writable(path)?;
        let (dir, name) = walk::open_parent(&self.root, path)?;
        match walk::plain_metadata_if_exists(&dir, name)? {
            Some(meta) if meta.is_dir() => return Err(FsError::IsADirectory),
            Some(_) if exclusive => return Err(FsError::AlreadyExists),
            _ => {}
        }
        upload::start(dir, path.clone(), exclusive, self.durable, bounds)
    }

    /// Creates a directory (strictly below `/inbox`).
    pub(crate) async fn mkdir(&self, path: &TenantPath) -> Result<(), FsError> {
        ensure_writable(path)?;
        let (dir, name) = walk::open_parent(&self.root, path)?;
        Ok(dir.create_dir(name)?)
    }

    /// Removes an empty directory (strictly below `/inbox`). A directory
    /// holding only an upload in progress is not empty.
    pub(crate) async fn rmdir(&self, path: &TenantPath) -> Result<(), FsError> {
        ensure_writable(path)?;
        let (dir, name) = walk::open_parent(&self.root, path)?;
        if !walk::plain_metadata(&dir, name)?.is_dir() {
            return Err(FsError::NotADirectory);
        }
        // rmdir(2) does not follow a symlink swapped in meanwhile.
        Ok(dir.remove_dir(name)?)
    }

    /// Removes a file strictly below `/inbox`, or a receipt in `/outbox`.
    pub(crate) async fn remove_file(&self, path: &TenantPath) -> Result<(), FsError> {
        if !path.is_receipt() {
            ensure_writable(path)?;
        }
        let (dir, name) = walk::open_parent(&self.root, path)?;
        if walk::plain_metadata(&dir, name)?.is_dir() {
            return Err(FsError::IsADirectory);
        }
        Ok(dir.remove_file(name)?)
    }

    /// Renames a file or directory; both paths strictly below `/inbox`. An
    /// existing target file is replaced (POSIX semantics, used for SFTP
    /// `rename` and `posix-rename@openssh.com` alike).
    pub(crate) async fn rename(&self, from: &TenantPath, to: &TenantPath) -> Result<(), FsError> {
        ensure_writable(from)?;
        ensure_writable(to)?;
        if to.is_strictly_below(from) {
            return Err(FsError::InvalidPath("cannot move a directory into itself"));
        }
        let (from_dir, from_name) = walk::open_parent(&self.root, from)?;
        walk::plain_metadata(&from_dir, from_name)?;
        let (to_dir, to_name) = walk::open_parent(&self.root, to)?;
        walk::plain_metadata_if_exists(&to_dir, to_name)?;
        if from == to {
            return Ok(());
        }
        Ok(from_dir.rename(from_name, &to_dir, to_name)?)
    }

    /// Sets access and modification times (strictly below `/inbox`).
    pub(crate) async fn set_times(
        &self,
        path: &TenantPath,
        accessed: SystemTime,
        modified: SystemTime,
    ) -> Result<(), FsError> {
        ensure_writable(path)?;
        let (dir, name) = walk::open_parent(&self.root, path)?;
        walk::plain_metadata(&dir, name)?;
        let time = |t| Some(cap_std::time::SystemTime::from_std(t).into());
        // The no-follow variant: a symlink swapped in after the check gets
        // its own times changed, never its target's.
        Ok(dir.set_symlink_times(name, time(accessed), time(modified))?)
    }

    /// Removes upload temporaries under `/inbox` untouched for `older_than`
    /// (left by a crashed server; a live upload rewrites its temporary all
    /// the time). Returns how many were removed. Meant for start-up and
    /// periodic maintenance, not for client requests.
    pub(crate) async fn remove_stale_uploads(&self, older_than: Duration) -> Result<usize, FsError> {
        let root = Arc::clone(&self.root);
        blocking(move || {
            let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
            let inbox = match walk::open_dir(&root, &["inbox".to_owned()]) {
                Ok(inbox) => inbox,
                Err(FsError::NotFound) => return Ok(0),
                Err(err) => return Err(err),
            };
            sweep::sweep(&inbox, cutoff, 0)
        })
        .await
    }

    /// Space on the filesystem holding the tenant tree; `path` must exist.
    pub(crate) async fn statvfs(&self, path: &TenantPath) -> Result<FsStats, FsError> {
        self.stat(path).await?;
        let vfs = rustix::fs::fstatvfs(&*self.root).map_err(std::io::Error::from)?;
        Ok(FsStats::from_statvfs(&vfs))
    }
}
