//! Atomic uploads.
//!
//! An upload writes to a hidden temporary file (`.passerelle-upload-<hex>`,
//! mode 0600) next to its target; clients cannot name it and listings skip it.
//! `commit` seals it with its SHA-256 and renames it onto the target in one
//! step, so the target name only ever shows a complete file — which is what
//! lets the import pipeline take any file it sees under a final name. Anything
//! that does not commit (abort, error, dropped connection) removes the
//! temporary. A write that fails ends the upload there: its data goes at
//! once (a full disk gets its space back without waiting for the client to
//! close), and every later write and the commit fail the same way, so a
//! file with a gap in it is never published.
//!
//! Whether the commit also waits for the disk is the durability choice:
//! `uploads.fsync`, or a client's `fsync@openssh.com`, flushes data and
//! directory entry first. Otherwise, as with OpenSSH, the kernel writes the
//! file back a few seconds later, and the seal is what lets the import
//! pipeline refuse a file that a power loss left empty or cut short. Where the
//! filesystem cannot keep the seal, the upload is flushed.
//!
//! ```text
//!  write_at ──► bounds ──► pwrite(temp) ──► StreamHasher   (&self; blocking pool beyond the first 32 KiB)
//!  commit   ──► wait for writes ─► digest ─► seal ─► [fsync] ─► rename(temp, target) ─► [fsync(dir)]
//!              (in place; blocking pool to re-read a file for its digest or to flush)
//!  drop     ──► unlink(temp)     (unless committed)
//! ```
//!
//! A write that breaks the upload's bounds (`bounds.rs`: its size, a gap
//! before it) fails the upload the same way.

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use cap_std::fs::Dir;
use passerelle_import::{Discard, ImportError, Profile, ValidateError, ValidationReport};
use rustix::fs::RenameFlags;
use tokio::sync::RwLock;

use super::bounds::{UploadBounds, check_gap, check_size};
use super::digest::StreamHasher;
use super::error::FsError;
use super::path::{TenantPath, UPLOAD_TEMP_PREFIX};
use super::reader::MAX_READ;
use super::stat::FileStat;
use super::{SMALL_FILE, blocking, check_offset};

/// A finished upload, visible under its final name.
#[derive(Clone, Debug)]
pub(crate) struct CommittedUpload {
    /// Where it now is.
    pub(crate) path: TenantPath,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// SHA-256 of exactly the bytes on disk.
    pub(crate) sha256: [u8; 32],
}

/// The verdict at the door for an upload (see `passerelle_import::DoorPlan`):
/// checked at its commit, before anything is published.
#[derive(Clone, Debug)]
pub(crate) enum Door {
    /// Validated against this profile: as the bytes stream in, or from the
    /// disk at commit when they did not all arrive in order.
    Validate(Arc<Profile>),
    /// Refused whatever it holds, for this reason.
    Refuse(String),
}

/// An upload the door refused: nothing was published, and the temporary is
/// still there until this is dropped (removed) or [`RefusedUpload::keep`]
/// moves it away.
#[derive(Debug)]
pub(crate) struct RefusedUpload {
    /// Where it would have appeared.
    pub(crate) path: TenantPath,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// SHA-256 of exactly the bytes on disk.
    pub(crate) sha256: [u8; 32],
    /// The profile it was validated against, if one matched.
    pub(crate) profile: Option<String>,
    /// The first errors, as a receipt lists them.
    pub(crate) errors: Vec<ImportError>,
    /// Every error, counted.
    pub(crate) error_count: u64,
    exclusive: bool,
    staged: Arc<Staged>,
}

impl RefusedUpload {
    fn new(
        path: &TenantPath,
        size: u64,
        sha256: [u8; 32],
        reasons: Reasons,
        exclusive: bool,
        staged: &Arc<Staged>,
    ) -> Self {
        let Reasons { profile, errors, error_count } = reasons;
        Self { path: path.clone(), size, sha256, profile, errors, error_count, exclusive, staged: Arc::clone(staged) }
    }

    /// Moves the refused file to `to` (an absolute path on the same
    /// filesystem, outside every tenant tree), so that it is kept like the
    /// original of any rejected import.
    pub(crate) fn keep(&self, to: &Path) -> io::Result<()> {
        rustix::fs::renameat(&self.staged.dir, self.staged.temp_name.as_str(), rustix::fs::CWD, to)?;
        self.staged.done.store(true, Ordering::Release);
        Ok(())
    }

    /// Publishes the upload after all, when its refusal could not be
    /// recorded: its import job then rejects it, as without the door.
    pub(crate) async fn publish(self) -> Result<CommittedUpload, FsError> {
        let Self { path, size, sha256, exclusive, staged, .. } = self;
        blocking(move || {
            if !staged.seal(&path, &sha256) {
                staged.file.sync_all()?;
            }
            staged.publish(&path, exclusive)?;
            Ok(CommittedUpload { path, size, sha256 })
        })
        .await
    }
}

/// How a commit ended.
#[derive(Debug)]
pub(crate) enum Commit {
    /// The file is visible under its name.
    Published(CommittedUpload),
    /// The door refused it; nothing is visible.
    Refused(RefusedUpload),
}

#[cfg(test)]
impl Commit {
    /// The published upload; panics on a refusal (tests without a door).
    pub(crate) fn published(self) -> CommittedUpload {
        match self {
            Self::Published(done) => done,
            Self::Refused(refused) => panic!("refused at the door: {:?}", refused.errors),
        }
    }
}

/// An upload in progress. Writes take `&self` and may run concurrently (the
/// SFTP front-end shares it through an `Arc`); `commit` and `abort` consume it.
#[derive(Debug)]
pub(crate) struct Upload {
    path: TenantPath,
    /// The check at the door, if the upload has one.
    door: Option<Door>,
    exclusive: bool,
    /// Flush data and directory entry before the commit returns.
    durable: bool,
    staged: Arc<Staged>,
    /// Writes hold it shared for as long as their blocking task runs, commit
    /// takes it exclusively: nothing lands in the file after it was hashed
    /// and renamed, even if a write's future was dropped mid-way.
    gate: Arc<RwLock<()>>,
}

/// The temporary file; removing it on drop is what makes every path that
/// does not commit clean up after itself.
struct Staged {
    /// The directory holding temporary and target: the rename happens
    /// relative to it, so it stays right even if that directory is renamed.
    dir: Dir,
    temp_name: String,
    file: std::fs::File,
    hasher: Mutex<StreamHasher>,
    /// The hasher's frontier after the last write, read without its lock by
    /// the next write's gap check.
    frontier: AtomicU64,
    /// `uploads.max_file_size`.
    max_size: passerelle_config::ByteSize,
    /// Set when the client asked for a flush: the commit then flushes too.
    flush_requested: AtomicBool,
    /// Set once the temporary is gone (renamed by commit, or removed).
    done: AtomicBool,
    /// Why the upload failed, once a write did (see [`Staged::fail`]).
    failed: Mutex<Option<FsError>>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("temp_name", &self.temp_name).finish_non_exhaustive()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !*self.done.get_mut() {
            // One unlinkat: quick enough to do in place, even on a runtime
            // thread, and works without a runtime.
            if let Err(err) = self.dir.remove_file(&self.temp_name) {
                tracing::warn!(temp = %self.temp_name, error = %err, "could not remove an abandoned upload");
            }
        }
    }
}

impl Staged {
    /// Refuses a write from `offset` to `end` that breaks the upload's
    /// bounds: the upload then fails (see [`Staged::fail`]).
    fn admit(&self, offset: u64, end: u64) -> Result<(), FsError> {
        self.ensure_intact()?;
        check_size(end, self.max_size)
            .and_then(|()| check_gap(offset, self.frontier.load(Ordering::Acquire)))
            .map_err(|refused| self.fail(refused.into()))
    }

    /// Writes a piece and feeds it to the digest.
    fn write_at(&self, offset: u64, data: Bytes) -> Result<(), FsError> {
        self.ensure_intact()?;
        if let Err(err) = self.file.write_all_at(&data, offset) {
            return Err(self.fail(err.into()));
        }
        let mut hasher = self.hasher.lock().unwrap_or_else(PoisonError::into_inner);
        hasher.feed(offset, data);
        self.frontier.store(hasher.frontier(), Ordering::Release);
        Ok(())
    }

    /// The error the upload failed with, again, if it did.
    fn ensure_intact(&self) -> Result<(), FsError> {
        match &*self.failed.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(error) => Err(error.duplicate()),
            None => Ok(()),
        }
    }

    /// Ends the upload with `error`: the temporary is emptied and removed
    /// now (the space it held is back even while the client keeps its
    /// handle open), and later writes and the commit fail with the same
    /// error. A write already under way may still land in the unlinked
    /// file; its space comes back when the upload is dropped.
    fn fail(&self, error: FsError) -> FsError {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.is_none() {
            if let Err(err) = self.file.set_len(0) {
                tracing::debug!(temp = %self.temp_name, error = %err, "could not empty a failed upload");
            }
            if !self.done.swap(true, Ordering::AcqRel)
                && let Err(err) = self.dir.remove_file(&self.temp_name)
            {
                tracing::warn!(temp = %self.temp_name, error = %err, "could not remove a failed upload");
            }
            *failed = Some(error.duplicate());
        }
        error
    }

    /// Stores the digest on the file; `false` (logged) where the filesystem
    /// cannot keep it, and the upload must then be flushed instead.
    fn seal(&self, path: &TenantPath, sha256: &[u8; 32]) -> bool {
        match passerelle_tree::seal(&self.file, sha256) {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!(path = %path, error = %err, "upload not sealed; flushing it instead");
                false
            }
        }
    }

    /// Renames the temporary onto the upload's target.
    fn publish(&self, path: &TenantPath, exclusive: bool) -> Result<(), FsError> {
        let target = path.file_name().ok_or(FsError::PermissionDenied)?;
        publish(&self.dir, &self.temp_name, target, exclusive)?;
        self.done.store(true, Ordering::Release);
        Ok(())
    }
}

/// Creates the temporary for an upload to `path` in `dir`, held to `bounds`.
pub(super) fn start(
    dir: Dir,
    path: TenantPath,
    exclusive: bool,
    durable: bool,
    bounds: &UploadBounds,
) -> Result<Upload, FsError> {
    use cap_std::fs::{OpenOptions, OpenOptionsExt as _};

    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true).mode(0o600);
    // A collision of 128 random bits means a broken random source; retrying
    // a few times only guards against a stale temporary with the same name.
    let mut last_err = None;
    for _ in 0..4 {
        let temp_name = format!("{UPLOAD_TEMP_PREFIX}{}", random_hex()?);
        match dir.open_with(&temp_name, &options) {
            Ok(file) => {
                let staged = Staged {
                    dir,
                    temp_name,
                    file: file.into_std(),
                    hasher: Mutex::new(StreamHasher::new(Arc::clone(&bounds.buffered))),
                    frontier: AtomicU64::new(0),
                    max_size: bounds.max_file_size,
                    flush_requested: AtomicBool::new(false),
                    done: AtomicBool::new(false),
                    failed: Mutex::new(None),
                };
                return Ok(Upload {
                    path,
                    door: None,
                    exclusive,
                    durable,
                    staged: Arc::new(staged),
                    gate: Arc::new(RwLock::new(())),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_err = Some(err),
            Err(err) => return Err(err.into()),
        }
    }
    Err(FsError::Io(last_err.unwrap_or_else(|| io::Error::other("no temporary name"))))
}

fn random_hex() -> Result<String, FsError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| FsError::Io(io::Error::other("random source failed")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Upload {
    /// The target path (where the file appears on commit).
    pub(crate) fn path(&self) -> &TenantPath {
        &self.path
    }

    /// Puts the upload through `door` at its commit; called before the
    /// first write, so that a profile's validation sees every byte.
    pub(crate) fn set_door(&mut self, door: Door) {
        if let Door::Validate(profile) = &door {
            self.staged.hasher.lock().unwrap_or_else(PoisonError::into_inner).validate_with(Arc::clone(profile));
        }
        self.door = Some(door);
    }

    /// Writes `data` at `offset`. Pieces may arrive in any order and
    /// concurrently, within the upload's bounds (module documentation).
    pub(crate) async fn write_at(&self, offset: u64, data: Bytes) -> Result<(), FsError> {
        let end = check_offset(offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.staged.admit(offset, end)?;
        let guard = Arc::clone(&self.gate).read_owned().await;
        let staged = Arc::clone(&self.staged);
        let in_place = end <= SMALL_FILE as u64;
        let write = move || {
            staged.write_at(offset, data)?;
            drop(guard);
            Ok(())
        };
        if in_place { write() } else { blocking(write).await }
    }

    /// Ends the upload with `error` (see the module documentation), for a
    /// write refused before it reached the file; returns `error`.
    pub(crate) fn fail(&self, error: FsError) -> FsError {
        self.staged.fail(error)
    }

    /// The error the upload failed with, if a write failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.staged.ensure_intact().err().map(|e| e.to_string())
    }

    /// Attributes of the data written so far.
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> {
        Ok(FileStat::from_std(&self.staged.file.metadata()?))
    }

    /// Flushes what was written so far to disk (SFTP `fsync@openssh.com`).
    /// The file stays hidden until `commit`, which then flushes as well: the
    /// client asked for this upload to be on disk.
    pub(crate) async fn sync(&self) -> Result<(), FsError> {
        let staged = Arc::clone(&self.staged);
        staged.flush_requested.store(true, Ordering::Release);
        // A full disk may only show now (delayed allocation): the upload then
        // fails as a write would.
        blocking(move || staged.file.sync_data().map_err(|err| staged.fail(err.into()))).await
    }

    /// Makes the upload visible under its path: digest, the door's verdict,
    /// seal, rename (without replacing an existing file if the upload was
    /// exclusive), with the file and its directory flushed around the
    /// rename if the upload is durable. On error the temporary is removed
    /// and nothing is visible; refused by the door, the temporary is the
    /// [`RefusedUpload`]'s.
    pub(crate) async fn commit(self) -> Result<Commit, FsError> {
        let gate = Arc::clone(&self.gate).write_owned().await;
        let Self { path, door, exclusive, durable, staged, gate: _ } = self;
        staged.ensure_intact()?;
        let size = staged.file.metadata()?.len();
        let mut flush = durable || staged.flush_requested.load(Ordering::Acquire);
        let (streamed, validator) = {
            let mut hasher = staged.hasher.lock().unwrap_or_else(PoisonError::into_inner);
            (hasher.finish(size), hasher.take_validator())
        };
        // What the door says without reading the file, when it can: every
        // byte went through the validator in order, or the door refuses
        // whatever the file holds.
        let (verdict, from_disk) = match door {
            None => (Some(Verdict::Accept), None),
            Some(Door::Refuse(reason)) => (Some(Verdict::refuse(None, reason)), None),
            Some(Door::Validate(profile)) => match validator {
                Some(validator) if streamed.is_some() => (Some(Verdict::of(&profile, validator.finish())), None),
                _ => (None, Some(profile)),
            },
        };
        if let (Some(sha256), Some(verdict)) = (streamed, &verdict) {
            if let Verdict::Refuse(reasons) = verdict {
                return Ok(Commit::Refused(RefusedUpload::new(
                    &path,
                    size,
                    sha256,
                    reasons.clone(),
                    exclusive,
                    &staged,
                )));
            }
            flush |= !staged.seal(&path, &sha256);
            if !flush {
                staged.publish(&path, exclusive)?;
                return Ok(Commit::Published(CommittedUpload { path, size, sha256 }));
            }
        }
        // Re-reading the file for its digest or its validation and flushing
        // it take as long as the data and the disk. On the blocking pool, the
        // commit runs to its end even if this future is dropped: a renamed
        // file is then visible and complete, an unrenamed one removed.
        blocking(move || {
            let _gate = gate;
            let (sha256, verdict) = match (verdict, from_disk) {
                (None, Some(profile)) => validate_file(&staged.file, &profile, streamed)?,
                (verdict, _) => {
                    let digest = match streamed {
                        Some(digest) => digest,
                        None => digest_file(&staged.file)?,
                    };
                    (digest, verdict.unwrap_or(Verdict::Accept))
                }
            };
            if let Verdict::Refuse(reasons) = verdict {
                return Ok(Commit::Refused(RefusedUpload::new(&path, size, sha256, reasons, exclusive, &staged)));
            }
            if streamed.is_none() {
                flush |= !staged.seal(&path, &sha256);
            }
            if flush {
                staged.file.sync_all()?;
            }
            staged.publish(&path, exclusive)?;
            // The file is in place; failing to persist the directory entry is
            // logged, not reported, or the client would retry an upload that
            // the pipeline already sees.
            if let Err(err) = flush.then(|| sync_dir(&staged.dir)).transpose() {
                tracing::warn!(path = %path, error = %err, "could not fsync the upload's directory");
            }
            Ok(Commit::Published(CommittedUpload { path, size, sha256 }))
        })
        .await
    }

    /// Discards the upload: the temporary is removed and the target untouched.
    /// Front-ends simply drop an upload; tests use this to await the removal.
    #[cfg(test)]
    pub(crate) async fn abort(self) {
        let staged = Arc::clone(&self.staged);
        drop(self);
        // Late writes still holding the file keep it alive; remove the name
        // now so that nothing lingers whatever they do.
        let removed = blocking(move || {
            if !staged.done.swap(true, Ordering::AcqRel) {
                staged.dir.remove_file(&staged.temp_name)?;
            }
            Ok(())
        })
        .await;
        if let Err(err) = removed {
            tracing::warn!(error = %err, "could not remove an aborted upload");
        }
    }

    /// Whether the digest is still being computed while streaming (tests).
    #[cfg(test)]
    pub(super) fn is_streaming_digest(&self) -> bool {
        self.staged.hasher.lock().unwrap_or_else(PoisonError::into_inner).is_streaming()
    }
}

/// Moves the temporary onto the target name in the same directory.
fn publish(dir: &Dir, temp: &str, target: &str, exclusive: bool) -> Result<(), FsError> {
    if !exclusive {
        // POSIX rename: replaces a file, refuses a directory (EISDIR).
        return Ok(dir.rename(temp, dir, target)?);
    }
    // Both names are single components relative to the same directory fd,
    // so this raw call cannot leave it.
    match rustix::fs::renameat_with(dir, temp, dir, target, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: link() refuses an existing
        // target just the same, then the temporary name goes.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            dir.hard_link(temp, dir, target)?;
            if let Err(err) = dir.remove_file(temp) {
                tracing::warn!(temp, error = %err, "could not remove a committed upload's temporary name");
            }
            Ok(())
        }
        Err(errno) => Err(io::Error::from(errno).into()),
    }
}

/// fsync of a directory; cap-std holds directories as `O_PATH`, which cannot
/// be synced, so `.` is opened for reading first.
fn sync_dir(dir: &Dir) -> io::Result<()> {
    dir.open(".")?.into_std().sync_all()
}

/// The door's verdict on an upload.
#[derive(Debug)]
enum Verdict {
    Accept,
    Refuse(Reasons),
}

/// Why the door refuses an upload.
#[derive(Clone, Debug)]
struct Reasons {
    profile: Option<String>,
    errors: Vec<ImportError>,
    error_count: u64,
}

impl Verdict {
    /// A refusal for one reason about the whole file.
    fn refuse(profile: Option<String>, message: String) -> Self {
        let errors = vec![ImportError { line: None, column: None, message }];
        Self::Refuse(Reasons { profile, errors, error_count: 1 })
    }

    /// The verdict of a validation against `profile`.
    fn of(profile: &Profile, report: Result<ValidationReport, ValidateError<Infallible>>) -> Self {
        match report {
            Ok(report) if report.is_accepted() => Self::Accept,
            Ok(report) => Self::Refuse(Reasons {
                profile: Some(profile.name().to_owned()),
                errors: report.errors,
                error_count: report.error_count,
            }),
            // The file could not be read back: its import job decides.
            Err(e) => {
                tracing::warn!(error = %e, "upload not validated at the door; its import job will");
                Self::Accept
            }
        }
    }
}

/// Validates the file on disk against `profile`, reading it once from the
/// start: also for its digest, unless `streamed` has it already.
fn validate_file(
    file: &std::fs::File,
    profile: &Profile,
    streamed: Option<[u8; 32]>,
) -> Result<([u8; 32], Verdict), FsError> {
    let mut reader = DigestingReader { file, offset: 0, context: streamed.is_none().then(new_digest) };
    let report = passerelle_import::validate(&mut reader, profile, &mut Discard);
    let verdict = Verdict::of(profile, report);
    if let Some(sha256) = streamed {
        return Ok((sha256, verdict));
    }
    // Validation stops early on a fatal error: the digest reads the rest.
    io::copy(&mut reader, &mut io::sink())?;
    let context = reader.context.take().unwrap_or_else(new_digest);
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    Ok((out, verdict))
}

fn new_digest() -> aws_lc_rs::digest::Context {
    aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256)
}

/// Reads a file from the start by position (its cursor is not the
/// upload's), hashing what it reads when it has a digest to feed.
struct DigestingReader<'a> {
    file: &'a std::fs::File,
    offset: u64,
    context: Option<aws_lc_rs::digest::Context>,
}

impl io::Read for DigestingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        if let Some(context) = &mut self.context {
            context.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// SHA-256 of the file's content, read from the start.
fn digest_file(file: &std::fs::File) -> Result<[u8; 32], FsError> {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0; MAX_READ as usize];
    let mut offset = 0u64;
    loop {
        match file.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => {
                context.update(&buf[..n]);
                offset += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_can_be_synced() {
        let base = std::env::temp_dir().join(format!("passerelle-fs-sync-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let dir = Dir::open_ambient_dir(&base, cap_std::ambient_authority()).unwrap();
        let synced = sync_dir(&dir);
        std::fs::remove_dir_all(&base).unwrap();
        synced.unwrap();
    }
}
