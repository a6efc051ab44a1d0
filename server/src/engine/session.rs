//! An authenticated session: one user of one tenant, from one address, with
//! the tenant's filesystem. A front-end translates its protocol into the
//! verbs here and their results into replies; each verb checks, does and
//! records itself, so the same event is audited the same way whatever
//! protocol it came through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use passerelle_catalog::{AuditEvent, Login, TenantName};
use passerelle_import::{DoorPlan, DoorProfiles, DoorRejection};
use passerelle_tree::{DiskSpace, Sha256, UploadCompleted};
use tokio::sync::OnceCell;

use super::fs::{
    Commit, DirCursor, Door, FileReader, FileStat, FsError, FsStats, RefusedUpload, TenantFs, TenantPath, Upload,
    UploadBounds,
};
use super::grants::{Ending, Grant, Registration};
use super::limits::{FilePermit, SessionPermit};
use super::quota::{Reservation, TenantUsage};
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
/// bytes received and the time taken for the audit trail, and what it holds
/// of the tenant's quota.
pub(crate) struct IncomingFile {
    upload: Upload,
    /// The data directory's free space: every write must leave the reserve.
    space: DiskSpace,
    received: AtomicU64,
    started: Instant,
    reservation: Reservation,
    /// A slot among the open files of the session and the user.
    _permit: FilePermit,
}

impl IncomingFile {
    /// Where the file appears once the upload completes.
    pub(crate) fn path(&self) -> &TenantPath {
        self.upload.path()
    }

    /// Writes `data` at `offset` (see [`Upload::write_at`]), within the
    /// tenant's quota.
    pub(crate) async fn write_at(&self, offset: u64, data: Bytes) -> Result<(), FsError> {
        let len = data.len() as u64;
        self.space.admit(len).map_err(|low| self.upload.fail(FsError::LowSpace(low)))?;
        self.within_quota(offset, len).map_err(|refused| self.upload.fail(refused))?;
        self.upload.write_at(offset, data).await?;
        self.received.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Reserves the tenant's quota up to the end of a write, before it
    /// lands (a refusal then fails the whole upload). Writes the filesystem
    /// refuses anyway (empty, beyond the largest offset) reserve nothing.
    fn within_quota(&self, offset: u64, len: u64) -> Result<(), FsError> {
        let Some(end) = offset.checked_add(len).filter(|end| len > 0 && i64::try_from(*end).is_ok()) else {
            return Ok(());
        };
        self.reservation.grow_to(end)
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
    /// The tenant's quota tracker, once an operation needed it.
    quota: OnceCell<Arc<TenantUsage>>,
    /// The tenant's import profiles as the door reads them, and the catalog
    /// revision they are current for: read at the session's first upload,
    /// again once the revision moves (a profile change bumps it).
    door_profiles: Mutex<Option<(i64, DoorProfiles)>>,
    _permit: SessionPermit,
    /// In the engine's registry of live sessions while the session lives.
    registration: Registration,
}

impl Session {
    /// The session `grant` allows, over the tenant's filesystem.
    pub(super) fn new(
        engine: Engine,
        grant: &Grant,
        fs: TenantFs,
        permit: SessionPermit,
        registration: Registration,
    ) -> Self {
        let config = engine.config();
        let bounds = UploadBounds::new(config.uploads.max_file_size, config.limits.max_buffered_bytes_per_session);
        Self {
            engine,
            tenant: grant.tenant.clone(),
            login: grant.login.clone(),
            peer: grant.peer,
            protocol: grant.protocol,
            fs,
            bounds,
            open_files: Arc::default(),
            started: Instant::now(),
            quota: OnceCell::new(),
            door_profiles: Mutex::new(None),
            _permit: permit,
            registration,
        }
    }

    /// The tenant's quota tracker (measured on first use).
    async fn quota(&self) -> Result<&Arc<TenantUsage>, FsError> {
        self.quota.get_or_try_init(|| self.engine.inner.quotas.tenant(&self.tenant)).await
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

    /// Fires when an administrator's change (lock, removal, password, key,
    /// allowlist) ends the session: the front-end then tells the client why
    /// and closes the connection.
    pub(crate) fn ending(&self) -> Ending {
        self.registration.ending()
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

    /// Space and inodes of the filesystem holding `path`, or of the
    /// tenant's quota where it has one (not audited).
    pub(crate) async fn statvfs(&self, path: &TenantPath) -> Result<FsStats, FsError> {
        let disk = self.fs.statvfs(path).await?;
        Ok(self.quota().await?.as_filesystem(disk))
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

    /// Removes a file; its size leaves the tenant's quota at once when a
    /// limit applies (otherwise at the next measure).
    pub(crate) async fn remove(&self, path: &TenantPath) -> Result<(), FsError> {
        let tracked = self.quota.get().cloned().or_else(|| self.engine.inner.quotas.measured(&self.tenant));
        let limited = tracked.filter(|usage| usage.is_limited());
        let size = match limited {
            Some(_) => self.fs.stat(path).await.ok().filter(|stat| !stat.is_dir).map(|stat| stat.size),
            None => None,
        };
        let result = self.fs.remove_file(path).await;
        if let (Ok(()), Some(usage), Some(size)) = (&result, &limited, size) {
            usage.apply(0, 0, size, 1);
        }
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

    /// Starts an atomic upload to `path`, within the tenant's file quota; a
    /// refusal is audited. With `exclusive`, an existing file is `AlreadyExists`.
    pub(crate) async fn create_upload(&self, path: &TenantPath, exclusive: bool) -> Result<IncomingFile, FsError> {
        let space = self.engine.disk_space();
        let started = async {
            space.admit(0).map_err(FsError::LowSpace)?;
            let permit = self.open_file()?;
            let mut upload = self.fs.create_upload(path, exclusive, &self.bounds).await?;
            if let Some(door) = self.door(path).await {
                upload.set_door(door);
            }
            let reservation = self.reserve_file(path).await?;
            Ok(IncomingFile {
                upload,
                _permit: permit,
                space,
                received: AtomicU64::new(0),
                started: Instant::now(),
                reservation,
            })
        };
        started.await.inspect_err(|e| self.record(Action::Upload, path, Err(e), None, None))
    }

    /// One more file of the tenant's quota for an upload to `path`; at the
    /// limit, an upload that replaces an existing file may still go ahead.
    async fn reserve_file(&self, path: &TenantPath) -> Result<Reservation, FsError> {
        let usage = self.quota().await?;
        match usage.reserve_file() {
            Ok(reservation) => Ok(reservation),
            Err(refused) => match self.fs.stat(path).await {
                Ok(stat) if !stat.is_dir => Ok(usage.reserve_replacement()),
                _ => Err(refused),
            },
        }
    }

    /// The check at the door for an upload to `path`: the tenant's import
    /// profiles say whether (and against what) it is validated as it
    /// streams in, or refused at its close whatever it holds.
    async fn door(&self, path: &TenantPath) -> Option<Door> {
        let inbox_path = path.inbox_path()?;
        let plan = self.door_profiles().await.map_or(DoorPlan::Pass, |p| p.plan(inbox_path.as_relative()));
        match plan {
            DoorPlan::Pass => None,
            DoorPlan::Validate(profile) => Some(Door::Validate(profile)),
            DoorPlan::Refuse(reason) => Some(Door::Refuse(reason)),
        }
    }

    /// The tenant's import profiles, read again only when the catalog
    /// revision moved since the last read; `None` when the catalog cannot
    /// be read (the upload passes, its job decides).
    async fn door_profiles(&self) -> Option<DoorProfiles> {
        let revision = self.engine.inner.grants.latest_revision();
        let kept = self.door_profiles.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match kept {
            Some((read_at, profiles)) if read_at == revision => Some(profiles),
            _ => {
                // Read after the revision: a change in between is read now,
                // and read again once the watcher sees its revision.
                let profiles = DoorProfiles::read(&self.engine.inner.catalog, &self.tenant).await?;
                *self.door_profiles.lock().unwrap_or_else(PoisonError::into_inner) = Some((revision, profiles.clone()));
                Some(profiles)
            }
        }
    }

    /// Finishes an upload: the file appears under its final name, the upload
    /// is audited and the upload-completed event is emitted, in that order.
    /// An upload the door refuses appears nowhere: it is recorded as a
    /// rejected import (receipt, `import list`), and the error says why.
    pub(crate) async fn complete_upload(&self, file: IncomingFile) -> Result<(), FsError> {
        let IncomingFile { upload, started, reservation, .. } = file;
        let path = upload.path().clone();
        let replaced = self.replaced_size(&reservation, &path).await;
        let committed = match upload.commit().await {
            Ok(Commit::Published(done)) => Ok(done),
            Ok(Commit::Refused(refused)) => match self.refuse(&refused).await {
                Some(sentence) => Err(FsError::Rejected(sentence)),
                None => refused.publish().await,
            },
            Err(e) => Err(e),
        };
        match committed {
            Ok(done) => {
                reservation.commit(done.size, replaced);
                self.record(Action::Upload, &done.path, Ok(()), Some(done.size), Some(started.elapsed()));
                // Uploads are only ever created strictly below `/inbox`.
                if let Some(path) = done.path.inbox_path() {
                    self.engine
                        .inner
                        .uploads
                        .publish(UploadCompleted {
                            tenant: self.tenant.clone(),
                            login: self.login.clone(),
                            path,
                            size: done.size,
                            sha256: Sha256(done.sha256),
                        })
                        .await;
                }
                Ok(())
            }
            Err(e) => {
                self.record(Action::Upload, &path, Err(&e), None, Some(started.elapsed()));
                Err(e)
            }
        }
    }

    /// Records an upload the door refused as a rejected import; the
    /// client's sentence, or `None` when it could not be recorded (the
    /// upload is then published, and its job rejects it).
    async fn refuse(&self, refused: &RefusedUpload) -> Option<String> {
        let inbox_path = refused.path.inbox_path()?;
        let rejection = DoorRejection {
            tenant: &self.tenant,
            path: inbox_path.as_relative(),
            profile: refused.profile.as_deref(),
            sha256: refused.sha256,
            bytes: refused.size,
            errors: refused.errors.clone(),
            error_count: refused.error_count,
        };
        // No pipeline yet (the server is starting): its job rejects the upload.
        let intake = self.engine.inner.uploads.intake()?;
        match intake.refuse_at_door(&rejection, |to| refused.keep(to)).await {
            Ok(recorded) => Some(recorded.sentence),
            Err(e) => {
                tracing::warn!(path = %refused.path, error = %e, "refusal at the door not recorded; the upload is published");
                None
            }
        }
    }

    /// The size of the file an upload to `path` replaces, when the tenant
    /// has a quota to keep exact (one lookup per upload, not per write).
    async fn replaced_size(&self, reservation: &Reservation, path: &TenantPath) -> Option<u64> {
        if !reservation.usage().is_limited() {
            return None;
        }
        self.fs.stat(path).await.ok().filter(|stat| !stat.is_dir).map(|stat| stat.size)
    }

    /// Records an upload that was interrupted, or that failed (a write was
    /// refused) and the front-end gave up on. It is discarded: its
    /// temporary goes when the last reference to `file` is dropped, nothing
    /// appears in the tree and no upload-completed event is emitted.
    pub(crate) fn abandon_upload(&self, file: &IncomingFile) {
        // A write that failed (a full disk, the quota, a bound) is why the front-end gave up.
        let (outcome, detail) = match file.upload.failure() {
            Some(error) => ("failed", error),
            None => ("aborted", "interrupted before completion; discarded".to_owned()),
        };
        let path = file.path().to_client_string();
        self.audit(
            Action::Upload,
            Some(path),
            outcome,
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
