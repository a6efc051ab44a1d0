//! Archiving a job's original once the job has its verdict, getting it
//! back for `import retry`, checking it (`archive verify`), and deleting it
//! after the retention period. Everything about how originals are kept is
//! here: `<archive>/<tenant>/<job id>` (0600, outside every tenant tree),
//! encrypted with the tenant's data key in the streaming format of
//! [`passerelle_keys::stream`], so that a file of any size never sits in
//! memory and no byte of it is kept in clear.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use passerelle_catalog::TenantName;
use passerelle_keys::stream::{self, KeyId, StreamError};

use super::layout::Layout;
use crate::keyring::TenantKey;

/// Encrypts the spooled file of `job_id` into the tenant's archive, then
/// removes it from the spool. A file archived already (a crash after the
/// encryption) is fine; a crash before the archive is in place leaves the
/// file in the spool, archived at the next start.
pub(crate) fn archive(layout: &Layout, key: &TenantKey, tenant: &TenantName, job_id: &str) -> io::Result<()> {
    let spooled = layout.spool_dir(tenant).join(job_id);
    let archive_dir = layout.archive_dir(tenant);
    let archived = archive_dir.join(job_id);
    if !spooled.exists() && archived.exists() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&archive_dir)?;
    seal_into_place(key, &spooled, &archived)?;
    // The archive is durable before its only other copy goes.
    sync_dir(&archive_dir)?;
    fs::remove_file(&spooled)
}

/// Encrypts `plain` into a temporary beside `target`, flushes it, and
/// renames it over `target`: a reader sees the whole archive or none.
fn seal_into_place(key: &TenantKey, plain: &Path, target: &Path) -> io::Result<()> {
    let temp = temporary(target);
    let input = File::open(plain)?;
    let sealed = write_new(&temp, |output| stream::encrypt(key.key(), key.id(), input, output).map(drop))
        .and_then(|()| fs::rename(&temp, target));
    if sealed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    sealed
}

/// Writes `path` (0600, replacing a leftover of a crash) with `write`,
/// buffered, and flushes it to disk.
fn write_new(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) -> io::Result<()> {
    let output = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    let mut writer = BufWriter::new(output);
    write(&mut writer)?;
    writer.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()
}

/// The temporary an archive or a restored file is written to first: a
/// dot name, which no job id has.
fn temporary(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp"))
}

/// Deletes the archived originals of `tenants` older than `retention`;
/// returns how many went.
pub(crate) fn prune(layout: &Layout, tenants: &[TenantName], retention: Duration) -> io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else { return Ok(0) };
    let mut removed = 0;
    for tenant in tenants {
        let Ok(entries) = fs::read_dir(layout.archive_dir(tenant)) else { continue };
        for entry in entries.flatten() {
            // Gone meanwhile: another node sharing the data directory pruned it.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_file() && meta.modified()? < cutoff {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

/// Decrypts the archived original of `job_id` back into the spool, for a
/// job run again, then removes the archive (the job archives its file again
/// when it ends). `false`: there is no archived original.
pub(crate) fn restore(layout: &Layout, key: &TenantKey, tenant: &TenantName, job_id: &str) -> io::Result<bool> {
    let archived = layout.archive_dir(tenant).join(job_id);
    if !archived.exists() {
        return Ok(false);
    }
    let spool_dir = layout.spool_dir(tenant);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&spool_dir)?;
    let spooled = spool_dir.join(job_id);
    let temp = temporary(&spooled);
    let restored = write_new(&temp, |output| {
        open_archive(&archived, key, output).map(drop).map_err(|e| io::Error::other(format!("archived original: {e}")))
    })
    .and_then(|()| fs::rename(&temp, &spooled));
    if let Err(e) = restored {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(&spool_dir)?;
    fs::remove_file(&archived)?;
    Ok(true)
}

/// Decrypts the archive at `path` with `key` into `output`; the key must be
/// the one its header names.
fn open_archive(path: &Path, key: &TenantKey, output: impl Write) -> Result<u64, ArchiveError> {
    let mut input = io::BufReader::new(File::open(path)?);
    let header = stream::read_header(&mut input)?;
    if header.key_id() != key.id() {
        return Err(ArchiveError::OtherKey(header.key_id()));
    }
    Ok(stream::decrypt(key.key(), &header, input, output)?)
}

/// Why an archive cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file cannot be opened or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not an encrypted archive, or damaged.
    #[error("{0}")]
    Stream(#[from] StreamError),
    /// Encrypted with a data key that is not its tenant's.
    #[error("encrypted with data key {0}, which is not its tenant's")]
    OtherKey(KeyId),
    /// Encrypted with a data key that no longer exists.
    #[error("encrypted with data key {0}, which no longer exists (its tenant was purged): it cannot be decrypted")]
    KeyDestroyed(KeyId),
    /// No import job records what the file should hold.
    #[error("no import job of this id in the catalog to compare it with")]
    UnknownJob,
    /// Decrypted, but not what was imported.
    #[error("decrypts, but its SHA-256 {actual} differs from the recorded {expected}")]
    Mismatch {
        /// SHA-256 recorded by the import.
        expected: String,
        /// SHA-256 of the decrypted content.
        actual: String,
    },
}

/// Decrypts the archive at `path` with `key`, streaming, and returns the
/// SHA-256 (hex) and size of its content.
pub(crate) fn digest_archive(path: &Path, key: &TenantKey) -> Result<(String, u64), ArchiveError> {
    let mut hasher = Sha256Writer(digest::Context::new(&digest::SHA256));
    let bytes = open_archive(path, key, &mut hasher)?;
    Ok((hex::encode(hasher.0.finish()), bytes))
}

/// The data key the archive at `path` names in its header.
pub(crate) fn read_header_key(path: &Path) -> Result<KeyId, ArchiveError> {
    let mut input = io::BufReader::new(File::open(path)?);
    Ok(stream::read_header(&mut input)?.key_id())
}

/// Decrypts the archive at `path` with `key` into `output`.
pub(crate) fn decrypt_to(path: &Path, key: &TenantKey, output: impl Write) -> Result<u64, ArchiveError> {
    open_archive(path, key, output)
}

/// A `Write` that only hashes.
struct Sha256Writer(digest::Context);

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The archived originals of `tenant`, as (job id, path), sorted;
/// temporaries left by a crash are not archives.
pub(crate) fn archived(layout: &Layout, tenant: &TenantName) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(layout.archive_dir(tenant)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !name.starts_with('.') && entry.file_type()?.is_file() {
            found.push((name, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Encrypts, in place, the originals of `tenant` archived in clear by an
/// earlier version; each keeps its time (retention counts from it).
/// Returns how many were encrypted.
pub(crate) fn encrypt_plain_archives(layout: &Layout, key: &TenantKey, tenant: &TenantName) -> io::Result<usize> {
    let mut encrypted = 0;
    for (_, path) in archived(layout, tenant)? {
        let mut input = io::BufReader::new(File::open(&path)?);
        if !matches!(stream::read_header(&mut input), Err(StreamError::NotEncrypted)) {
            continue;
        }
        let modified = fs::metadata(&path)?.modified()?;
        seal_into_place(key, &path, &path)?;
        File::options().write(true).open(&path)?.set_modified(modified)?;
        encrypted += 1;
    }
    if encrypted > 0 {
        sync_dir(&layout.archive_dir(tenant))?;
    }
    Ok(encrypted)
}

/// Makes a rename into `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::TenantKey;

    fn layout(root: &Path) -> Layout {
        Layout::new(root.join("tenants"), root.join("spool"), root.join("archive"))
    }

    #[test]
    fn archived_originals_are_encrypted_go_after_their_retention_and_come_back_for_a_retry() {
        let root = tempfile::tempdir().unwrap();
        let layout = layout(root.path());
        let key = TenantKey::for_tests();
        let acme = TenantName::parse("acme").unwrap();
        fs::create_dir_all(layout.spool_dir(&acme)).unwrap();
        for id in ["old", "new"] {
            fs::write(layout.spool_dir(&acme).join(id), format!("MARKER-{id}")).unwrap();
            archive(&layout, &key, &acme, id).unwrap();
            archive(&layout, &key, &acme, id).unwrap(); // archived already: fine
            assert!(!layout.spool_dir(&acme).join(id).exists());
            let sealed = fs::read(layout.archive_dir(&acme).join(id)).unwrap();
            assert!(!sealed.windows(6).any(|w| w == b"MARKER"), "no plaintext in the archive");
        }
        let day = Duration::from_secs(86_400);
        let old = File::options().write(true).open(layout.archive_dir(&acme).join("old")).unwrap();
        old.set_modified(SystemTime::now() - 2 * day).unwrap();
        assert_eq!(prune(&layout, std::slice::from_ref(&acme), day).unwrap(), 1);
        assert!(!layout.archive_dir(&acme).join("old").exists());
        let (sha, bytes) = digest_archive(&layout.archive_dir(&acme).join("new"), &key).unwrap();
        assert_eq!(bytes, 10);
        assert_eq!(sha, hex::encode(digest::digest(&digest::SHA256, b"MARKER-new")));
        assert!(restore(&layout, &key, &acme, "new").unwrap());
        assert_eq!(fs::read(layout.spool_dir(&acme).join("new")).unwrap(), b"MARKER-new");
        assert!(!layout.archive_dir(&acme).join("new").exists());
        assert!(!restore(&layout, &key, &acme, "old").unwrap());
    }

    #[test]
    fn plain_archives_of_an_earlier_version_are_encrypted_keeping_their_time() {
        let root = tempfile::tempdir().unwrap();
        let layout = layout(root.path());
        let key = TenantKey::for_tests();
        let acme = TenantName::parse("acme").unwrap();
        fs::create_dir_all(layout.archive_dir(&acme)).unwrap();
        let path = layout.archive_dir(&acme).join("job");
        fs::write(&path, "MARKER").unwrap();
        let then = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(&path).unwrap().set_modified(then).unwrap();
        assert_eq!(encrypt_plain_archives(&layout, &key, &acme).unwrap(), 1);
        assert_eq!(encrypt_plain_archives(&layout, &key, &acme).unwrap(), 0, "once");
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), then);
        let mut out = Vec::new();
        decrypt_to(&path, &key, &mut out).unwrap();
        assert_eq!(out, b"MARKER");
        assert!(matches!(decrypt_to(&path, &TenantKey::for_tests(), io::sink()), Err(ArchiveError::OtherKey(_))));
    }
}
