//! Backups on restic (`[backup]`): a run copies everything needed to rebuild the service into a
//! staging directory (see [`snapshot`]) and stores it as one restic snapshot; a verification restores
//! the latest snapshot into a scratch directory and checks it (see [`verify`]); a restore rebuilds a
//! data directory, and the PostgreSQL databases, from a snapshot (see [`restore`]). `serve` runs the
//! first two on a schedule (see [`schedule`]); `passerelle backup` runs them by hand.
//!
//! ```text
//! <data_dir>/backup/       0700, never itself backed up
//!   lock                   one run, verification or restore at a time
//!   staging/               the copy being stored (removed after each run)
//!   verify/                the snapshot being checked (removed after each verification)
//!   cache/, tmp/           restic's
//!   status.json            when the last run and verification succeeded
//! ```

mod archives;
mod manifest;
mod pg;
pub(crate) mod report;
mod restic;
mod restore;
pub(crate) mod schedule;
mod snapshot;
mod sqlite;
mod status;
mod verify;

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passerelle_config::{BackupTarget, Config};
use thiserror::Error;

pub(crate) use archives::check_live_archive;
pub(crate) use restic::Snapshot;
pub(crate) use restore::Restored;
pub(crate) use snapshot::Sources;
pub(crate) use status::Status;
pub(crate) use verify::Verified;

use crate::error::{CliError, usage};

/// Why a backup step failed.
#[derive(Debug, Error)]
pub(crate) enum BackupError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// restic, pg_dump or pg_restore could not be started.
    #[error("cannot run {program} (is it installed?): {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{what} failed: {message}")]
    Tool {
        /// What was run, e.g. `restic backup`.
        what: String,
        /// The end of what it said.
        message: String,
    },
    /// A database refused or could not be reached.
    #[error("{0}")]
    Database(String),
    /// The catalog refused.
    #[error("catalog: {0}")]
    Catalog(#[from] passerelle_catalog::CatalogError),
    /// Something is not as a backup needs it.
    #[error("{0}")]
    Invalid(String),
    /// Another run, verification or restore holds the lock.
    #[error("another backup run or verification is in progress ({0} is locked); try again later")]
    Busy(PathBuf),
}

impl BackupError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// Creates `dir` (and its parents) 0700 if absent.
fn private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| BackupError::io(dir, e))
}

/// Removes `dir` and everything in it; absent is fine.
fn remove_dir(dir: &Path) -> Result<(), BackupError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Backups as configured: the repository, its password file (checked) and the data directory's
/// `backup/` work directory.
pub(crate) struct Backups {
    target: BackupTarget,
    retention_days: u32,
    verify_interval: Duration,
    work: PathBuf,
}

/// What a backup run stored.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The new snapshot's short id.
    pub(crate) snapshot: String,
    /// Files in it (the manifest's).
    pub(crate) files: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Bytes the repository grew by (after deduplication).
    pub(crate) added: u64,
    /// How long the copy took (what could hold the databases up).
    pub(crate) copy: Duration,
    /// How long the whole run took.
    pub(crate) took: Duration,
}

/// The lock of one run, verification or restore; released when dropped.
struct Lock {
    _file: fs::File,
}

impl Backups {
    /// The backups `config` asks for: `None` when `backup.repository` is unset. Refuses a password
    /// file that others can read or that lies inside the data directory, and a local repository
    /// inside the data directory.
    pub(crate) fn of(config: &Config) -> Result<Option<Self>, CliError> {
        let Some(target) = config.backup.target.clone() else { return Ok(None) };
        check_password_file(&target.password_file, &config.data_dir)?;
        if let Some(local) = target.local_path()
            && inside(&local, &config.data_dir)
        {
            return Err(usage(format!(
                "backup.repository {}: is inside data_dir {}; a backup lost with the data it saves is none: \
                 choose a directory on another disk or a remote repository",
                local.display(),
                config.data_dir.display()
            )));
        }
        Ok(Some(Self {
            target,
            retention_days: config.backup.retention_days,
            verify_interval: config.backup.verify_interval,
            work: config.data_dir.join("backup"),
        }))
    }

    /// The repository, safe to print.
    pub(crate) fn repository(&self) -> String {
        self.target.redacted_repository()
    }

    fn restic(&self) -> restic::Restic {
        restic::Restic::new(&self.target, &self.work)
    }

    /// Takes the lock of the work directory, or says who holds it.
    fn lock(&self) -> Result<Lock, BackupError> {
        private_dir(&self.work)?;
        let path = self.work.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| BackupError::io(&path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| BackupError::Busy(path))?;
        Ok(Lock { _file: file })
    }

    /// Copies everything into the staging directory, stores it as a snapshot tagged `origin`
    /// (`scheduled`, `manual`) and the run's time, then forgets snapshots beyond the retention.
    pub(crate) async fn run(&self, sources: &Sources<'_>, origin: &str) -> Result<Stored, BackupError> {
        let started = Instant::now();
        let _lock = self.lock()?;
        let staging = self.work.join("staging");
        remove_dir(&staging)?;
        private_dir(&staging)?;
        let stored = self.store(sources, &staging, origin, started).await;
        // The staging directory never outlives its run, whatever happened.
        let removed = remove_dir(&staging);
        let stored = stored?;
        removed?;
        self.restic().forget(self.retention_days).await.map_err(|e| {
            BackupError::Invalid(format!(
                "snapshot {} stored, but forgetting old snapshots failed: {e}",
                stored.snapshot
            ))
        })?;
        Status::update(&self.work, |status| status.backed_up(&stored.snapshot))?;
        Ok(Stored { took: started.elapsed(), ..stored })
    }

    async fn store(
        &self,
        sources: &Sources<'_>,
        staging: &Path,
        origin: &str,
        started: Instant,
    ) -> Result<Stored, BackupError> {
        let manifest = snapshot::stage(sources, staging).await?;
        let copy = started.elapsed();
        let restic = self.restic();
        restic.init_if_needed().await?;
        let run_tag = format!("run-{}", time::OffsetDateTime::now_utc().unix_timestamp());
        let stored = restic.backup(staging, &format!("{origin},{run_tag}")).await?;
        Ok(Stored {
            snapshot: stored.snapshot,
            files: manifest.files.len(),
            bytes: manifest.bytes(),
            added: stored.added,
            copy,
            took: started.elapsed(),
        })
    }

    /// passerelle's snapshots in the repository, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<Snapshot>, BackupError> {
        let mut snapshots = self.restic().snapshots().await?;
        snapshots.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(snapshots)
    }

    /// Restores the latest snapshot into a scratch directory and checks it (see [`verify`]); with
    /// `read_all`, every pack of the repository is read rather than this period's share.
    pub(crate) async fn verify(&self, config: &Config, read_all: bool) -> Result<Verified, BackupError> {
        let _lock = self.lock()?;
        let scratch = self.work.join("verify");
        remove_dir(&scratch)?;
        private_dir(&scratch)?;
        let subset = (!read_all).then(|| verify::rotating_share(self.retention_days, self.verify_interval));
        let verified = verify::verify(&self.restic(), config, &scratch, subset.as_deref()).await;
        let removed = remove_dir(&scratch);
        let verified = verified?;
        removed?;
        if verified.failures.is_empty()
            && let Some(snapshot) = &verified.snapshot
        {
            Status::update(&self.work, |status| status.verified(snapshot))?;
        }
        Ok(verified)
    }

    /// Restores `snapshot` into the new data directory `to` and recreates its PostgreSQL databases
    /// (see [`restore`]).
    pub(crate) async fn restore(
        &self,
        config: &Config,
        snapshot: &str,
        to: &Path,
        replace: bool,
    ) -> Result<Restored, BackupError> {
        restore::restore(&self.target, config, snapshot, to, replace).await
    }

    /// When the last run and verification succeeded.
    pub(crate) fn status(&self) -> Status {
        Status::read(&self.work)
    }
}

/// Whether `path` is `dir` or under it, once both are resolved where they exist.
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve =
        |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    resolve(path).starts_with(resolve(dir))
}

/// Refuses a password file others may read, or one inside the data directory.
fn check_password_file(file: &Path, data_dir: &Path) -> Result<(), CliError> {
    let shown = file.display();
    let meta = fs::metadata(file).map_err(|e| usage(format!("backup.password_file {shown}: cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(usage(format!("backup.password_file {shown}: not a regular file")));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(usage(format!(
            "backup.password_file {shown}: readable or writable by group or others (mode {:o}); \
             refusing to use it: chmod 600 {shown}",
            meta.mode() & 0o777
        )));
    }
    if inside(file, data_dir) {
        return Err(usage(format!(
            "backup.password_file {shown}: is inside data_dir {}; a backup must not hold its own key: \
             move it out (e.g. /etc/passerelle/backup-password) and keep a copy offline",
            data_dir.display()
        )));
    }
    Ok(())
}
