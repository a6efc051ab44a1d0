//! An authenticated session: one user of one tenant, from one address, with
//! the tenant's filesystem. A front-end translates its protocol into the
//! verbs here and their results into replies; each verb checks, does and
//! records itself, so the same event is audited the same way whatever
//! protocol it came through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use passerelle_catalog::{AuditEvent, Login, TenantName};
use passerelle_tree::{Sha256, UploadCompleted};

use super::fs::{DirCursor, FileReader, FileStat, FsError, FsStats, TenantFs, TenantPath, Upload, UploadBounds};
use super::limits::{FilePermit, SessionPermit};
use super::{Engine, Protocol};

/// What a user did, as the audit trail names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Upload,
    Download,
    Delete,
    Mkdir,
    Rmdir,
    Rename,
    SetTimes,
    Logout,
}

impl Action {
    /// The `action` column of the audit trail (a public interface).
    fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
            Self::Delete => "delete",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
            Self::Rename => "rename",
            Self::SetTimes => "setstat",
            Self::Logout => "logout",
        }
    }
}

/// How a download ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DownloadEnd {
    /// The client read what it wanted and closed the file (or the transfer
    /// reached its end).
    Completed,
    /// The connection or the transfer broke off first.
    Interrupted,
}

/// Whether a rename may replace an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overwrite {
    /// POSIX semantics (FTP `RNTO`, `posix-rename@openssh.com`).
    Replace,
    /// An existing target is refused (SFTP v3 `RENAME`).
    Refuse,
}

/// An upload under way: the tenant filesystem's atomic upload, with the
/// bytes received and the time taken for the audit trail.
pub(crate) struct IncomingFile {
    upload: Upload,
    received: AtomicU64,
    started: Instant,
    _permit: FilePermit,
}

impl IncomingFile {
    /// Where the file appears once the upload completes.
    pub(crate) fn path(&self) -> &TenantPath {
        self.upload.path()
    }

    /// Writes `data` at `offset` (see [`Upload::write_at`]).
    pub(crate) async fn write_at(&self, offset: u64, data: Bytes) -> Result<(), FsError> {
        let len = data.len() as u64;
        self.upload.write_at(offset, data).await?;
        self.received.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Attributes of what was written so far.
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> {
        self.upload.stat().await
    }

    /// Flushes what was written so far to disk.
    pub(crate) async fn sync(&self) -> Result<(), FsError> {
        self.upload.sync().await
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// A file open for download, with the bytes sent and the time taken for the
/// audit trail.
pub(crate) struct OutgoingFile {
    reader: FileReader,
    path: TenantPath,
    sent: AtomicU64,
    started: Instant,
    _permit: FilePermit,
}

impl OutgoingFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &TenantPath {
        &self.path
    }

    /// Up to `len` bytes at `offset`; empty at the end of the file.
    pub(crate) async fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
        self.reader.read_at(offset, len).await
    }

    /// Counts `len` bytes as sent to the client (what the audit trail
    /// reports; a front-end that reads ahead counts only what left).
    pub(crate) fn sent(&self, len: usize) {
        self.sent.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// The file's attributes.
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> {
        self.reader.stat().await
    }
}

/// A directory open for listing.
pub(crate) struct DirListing {
    cursor: DirCursor,
    _permit: FilePermit,
}

impl DirListing {
    /// The next entries (at most 100, sorted by name within the batch);
    /// empty at the end.
    pub(crate) async fn next_batch(&self) -> Result<Vec<(String, FileStat)>, FsError> {
        self.cursor.next_batch().await
    }
}

/// A logged-in user. Dropping it records the logout.
pub(crate) struct Session {
    engine: Engine,
    tenant: TenantName,
    login: Login,
    peer: SocketAddr,
    protocol: Protocol,
    fs: TenantFs,
    /// What this session's uploads are held to (its own buffer budget).
    bounds: UploadBounds,
    /// Files and directories this session holds open (see `limits.rs`).
    open_files: Arc<AtomicU32>,
    started: Instant,
    _permit: SessionPermit,
}

impl Session {
    pub(super) fn new(
        engine: Engine,
        tenant: TenantName,
        login: Login,
        peer: SocketAddr,
        protocol: Protocol,
        fs: TenantFs,
        permit: SessionPermit,
    ) -> Self {
        let config = engine.config();
        let bounds = UploadBounds::new(config.uploads.max_file_size, config.limits.max_buffered_bytes_per_session);
        Self {
            engine,
            tenant,
            login,
            peer,
            protocol,
            fs,
            bounds,
            open_files: Arc::default(),
            started: Instant::now(),
            _permit: permit,
        }
    }

    /// `limits.max_open_files_per_session`, as SFTP's `limits@openssh.com`
    /// advertises it.
    pub(crate) fn max_open_files(&self) -> u32 {
        self.engine.inner.limits.max_open_per_session()
    }

    /// A slot for one more open file or directory.
    fn open_file(&self) -> Result<FilePermit, FsError> {
        Ok(self.engine.inner.limits.open_file(self.login.as_str(), &self.open_files)?)
    }

    /// The user's login.
    pub(crate) fn login(&self) -> &Login {
        &self.login
    }

    /// Turns a client's raw path into a path of the tenant's tree, relative
    /// to `cwd` unless absolute; an empty path is `cwd` itself.
    pub(crate) fn resolve(&self, cwd: &TenantPath, raw: &[u8]) -> Result<TenantPath, FsError> {
        if raw.is_empty() {
            return Ok(cwd.clone());
        }
        self.fs.resolve(cwd, raw)
    }

    /// Attributes of a file or directory (a lookup: not audited).
    pub(crate) async fn stat(&self, path: &TenantPath) -> Result<FileStat, FsError> {
        self.fs.stat(path).await
    }

    /// Opens a directory to list it in batches (a lookup: not audited).
    pub(crate) async fn open_dir(&self, path: &TenantPath) -> Result<DirListing, FsError> {
        let permit = self.open_file()?;
        Ok(DirListing { cursor: self.fs.open_dir(path).await?, _permit: permit })
    }

    /// Space and inodes of the filesystem holding `path` (not audited).
    pub(crate) async fn statvfs(&self, path: &TenantPath) -> Result<FsStats, FsError> {
        self.fs.statvfs(path).await
    }

    /// Creates a directory.
    pub(crate) async fn mkdir(&self, path: &TenantPath) -> Result<(), FsError> {
        let result = self.fs.mkdir(path).await;
        self.record(Action::Mkdir, path, result.as_ref().map(|_| ()), None, None);
        result
    }

    /// Removes an empty directory.
    pub(crate) async fn rmdir(&self, path: &TenantPath) -> Result<(), FsError> {
        let result = self.fs.rmdir(path).await;
        self.record(Action::Rmdir, path, result.as_ref().map(|_| ()), None, None);
        result
    }

    /// Removes a file.
    pub(crate) async fn remove(&self, path: &TenantPath) -> Result<(), FsError> {
        let result = self.fs.remove_file(path).await;
        self.record(Action::Delete, path, result.as_ref().map(|_| ()), None, None);
        result
    }

    /// Renames a file or directory; the source is the audited path, the
    /// target goes in the detail.
    pub(crate) async fn rename(&self, from: &TenantPath, to: &TenantPath, overwrite: Overwrite) -> Result<(), FsError> {
        let result = if overwrite == Overwrite::Refuse && from != to && self.fs.stat(to).await.is_ok() {
            Err(FsError::AlreadyExists)
        } else {
            self.fs.rename(from, to).await
        };
        let (outcome, error) = match &result {
            Ok(()) => ("ok", String::new()),
            Err(e) => ("failed", format!("; {e}")),
        };
        let detail = format!("to {}{error}", to.to_client_string());
        self.audit(Action::Rename, Some(from.to_client_string()), outcome, None, None, Some(detail));
        result
    }

    /// Sets a file's or directory's access and modification times.
    pub(crate) async fn set_times(
        &self,
        path: &TenantPath,
        accessed: SystemTime,
        modified: SystemTime,
    ) -> Result<(), FsError> {
        let result = self.fs.set_times(path, accessed, modified).await;
        self.record(Action::SetTimes, path, result.as_ref().map(|_| ()), None, None);
        result
    }

    /// Starts an atomic upload to `path`; a refusal is audited. With
    /// `exclusive`, an existing file is `AlreadyExists`.
    pub(crate) async fn create_upload(&self, path: &TenantPath, exclusive: bool) -> Result<IncomingFile, FsError> {
        let opened = match self.open_file() {
            Ok(permit) => self.fs.create_upload(path, exclusive, &self.bounds).await.map(|upload| (upload, permit)),
            Err(e) => Err(e),
        };
        match opened {
            Ok((upload, permit)) => {
                Ok(IncomingFile { upload, received: AtomicU64::new(0), started: Instant::now(), _permit: permit })
            }
            Err(e) => {
                self.record(Action::Upload, path, Err(&e), None, None);
                Err(e)
            }
        }
    }

    /// Finishes an upload: the file appears under its final name, the upload
    /// is audited and the upload-completed event is emitted, in that order.
    pub(crate) async fn complete_upload(&self, file: IncomingFile) -> Result<(), FsError> {
        let IncomingFile { upload, started, .. } = file;
        let path = upload.path().clone();
        match upload.commit().await {
            Ok(done) => {
                self.record(Action::Upload, &done.path, Ok(()), Some(done.size), Some(started.elapsed()));
                // Uploads are only ever created strictly below `/inbox`.
                if let Some(path) = done.path.inbox_path() {
                    self.engine.inner.uploads.publish(UploadCompleted {
                        tenant: self.tenant.clone(),
                        login: self.login.clone(),
                        path,
                        size: done.size,
                        sha256: Sha256(done.sha256),
                    });
                }
                Ok(())
            }
            Err(e) => {
                self.record(Action::Upload, &path, Err(&e), None, Some(started.elapsed()));
                Err(e)
            }
        }
    }

    /// Records an upload that was interrupted. It is discarded: its
    /// temporary goes when the last reference to `file` is dropped, nothing
    /// appears in the tree and no upload-completed event is emitted.
    pub(crate) fn abandon_upload(&self, file: &IncomingFile) {
        let detail = match file.upload.refusal() {
            Some(refused) => format!("{refused}; discarded"),
            None => "interrupted before completion; discarded".to_owned(),
        };
        let path = file.path().to_client_string();
        self.audit(
            Action::Upload,
            Some(path),
            "aborted",
            Some(file.received()),
            Some(file.started.elapsed()),
            Some(detail),
        );
    }

    /// Opens a file for download; a refusal is audited.
    pub(crate) async fn open_download(&self, path: &TenantPath) -> Result<OutgoingFile, FsError> {
        let opened = match self.open_file() {
            Ok(permit) => self.fs.open_read(path).await.map(|reader| (reader, permit)),
            Err(e) => Err(e),
        };
        match opened {
            Ok((reader, permit)) => Ok(OutgoingFile {
                reader,
                path: path.clone(),
                sent: AtomicU64::new(0),
                started: Instant::now(),
                _permit: permit,
            }),
            Err(e) => {
                self.record(Action::Download, path, Err(&e), None, None);
                Err(e)
            }
        }
    }

    /// Records the end of a download: what was sent and whether it ended
    /// normally.
    pub(crate) fn end_download(&self, file: &OutgoingFile, end: DownloadEnd) {
        let (outcome, detail) = match end {
            DownloadEnd::Completed => ("ok", None),
            DownloadEnd::Interrupted => ("failed", Some("interrupted before the end of the transfer".to_owned())),
        };
        let sent = file.sent.load(Ordering::Relaxed);
        self.audit(
            Action::Download,
            Some(file.path.to_client_string()),
            outcome,
            Some(sent),
            Some(file.started.elapsed()),
            detail,
        );
    }

    /// Records a file operation with the error's own text as the detail.
    fn record(
        &self,
        action: Action,
        path: &TenantPath,
        result: Result<(), &FsError>,
        bytes: Option<u64>,
        duration: Option<Duration>,
    ) {
        let (outcome, detail) = match result {
            Ok(()) => ("ok", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        self.audit(action, Some(path.to_client_string()), outcome, bytes, duration, detail);
    }

    fn audit(
        &self,
        action: Action,
        path: Option<String>,
        outcome: &str,
        bytes: Option<u64>,
        duration: Option<Duration>,
        detail: Option<String>,
    ) {
        self.engine.inner.audit.record(AuditEvent {
            actor: self.login.to_string(),
            tenant: Some(self.tenant.to_string()),
            login: Some(self.login.to_string()),
            ip: Some(self.peer.ip().to_string()),
            protocol: self.protocol.as_str().into(),
            action: action.as_str().into(),
            outcome: outcome.into(),
            path,
            bytes: bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            duration_ms: duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            detail,
            at: None,
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.audit(Action::Logout, None, "ok", None, Some(self.started.elapsed()), None);
    }
}
