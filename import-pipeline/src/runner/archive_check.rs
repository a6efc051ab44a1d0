//! Reading the archive back for people: `archive verify` decrypts every
//! archived original and compares it with the SHA-256 its import recorded;
//! `archive decrypt` opens one file, in the archive or copied out of it,
//! with the data key its header names.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use passerelle_catalog::{Catalog, TenantName};

use super::RunnerError;
use super::archive::{self, ArchiveError};
use super::layout::Layout;
use crate::keyring::Keyring;

/// One archived original, and what checking it found.
#[derive(Debug)]
pub struct ArchiveCheck {
    /// Its tenant.
    pub tenant: String,
    /// The import job it is the original of (its file name).
    pub job_id: String,
    /// The archive file.
    pub path: PathBuf,
    /// Its size once decrypted, or why it fails.
    pub outcome: Result<u64, ArchiveError>,
}

/// Decrypts every archived original of `tenants`, streaming, and compares
/// its SHA-256 with the one its import job recorded. A file that does not
/// decrypt, whose digest differs, or whose job is unknown, fails.
pub async fn verify_archives(
    catalog: &Catalog,
    keyring: &Keyring,
    layout: &Layout,
    tenants: &[TenantName],
) -> Result<Vec<ArchiveCheck>, RunnerError> {
    let mut checks = Vec::new();
    for tenant in tenants {
        let key = Arc::new(keyring.tenant_key(tenant).await?);
        let files = archive::archived(layout, tenant)
            .map_err(|e| RunnerError::Io(format!("listing tenant {tenant}'s archive"), e))?;
        for (job_id, path) in files {
            let expected = catalog.import_job(&job_id).await?.and_then(|job| job.sha256);
            let (owned_key, owned_path) = (Arc::clone(&key), path.clone());
            let digested = tokio::task::spawn_blocking(move || archive::digest_archive(&owned_path, &owned_key))
                .await
                .map_err(|e| ArchiveError::Io(std::io::Error::other(e)))
                .and_then(|done| done);
            let outcome = match (digested, expected) {
                (Err(e), _) => Err(e),
                (Ok((actual, bytes)), Some(expected)) if actual == expected => Ok(bytes),
                (Ok((actual, _)), Some(expected)) => Err(ArchiveError::Mismatch { expected, actual }),
                (Ok(_), None) => Err(ArchiveError::UnknownJob),
            };
            checks.push(ArchiveCheck { tenant: tenant.to_string(), job_id, path, outcome });
        }
    }
    Ok(checks)
}

/// Decrypts the archive file at `path` into `output` with the data key its
/// header names; returns the original's size. A key that no longer exists
/// (its tenant was purged) is [`ArchiveError::KeyDestroyed`].
pub async fn decrypt_archive(
    keyring: &Keyring,
    path: PathBuf,
    output: impl Write + Send + 'static,
) -> Result<u64, RunnerError> {
    let header_path = path.clone();
    let id = tokio::task::spawn_blocking(move || archive::read_header_key(&header_path))
        .await
        .map_err(|e| ArchiveError::Io(std::io::Error::other(e)))
        .and_then(|read| read)?;
    let Some((_, key)) = keyring.key_by_id(id).await? else { return Err(ArchiveError::KeyDestroyed(id).into()) };
    tokio::task::spawn_blocking(move || archive::decrypt_to(&path, &key, output))
        .await
        .map_err(|e| ArchiveError::Io(std::io::Error::other(e)))
        .and_then(|done| done)
        .map_err(RunnerError::from)
}
