//! `import cancel`: an administrator ends a job that waits or has not
//! started writing rows. The job is ended in the catalog first, atomically
//! and only from the status it was seen in, so a runner working on it
//! stops at its next step (its transitions are conditional too) and never
//! loads it; then its receipt is written and its original archived, as for
//! any ended job. A job that is loading is refused: its rows are being
//! written in one transaction that commits or not, and it ends by itself
//! (imported, or in `waiting-retry`, which can be cancelled).

use std::io;

use passerelle_catalog::{Catalog, ImportJob, JobStatus, TenantName, now_ms};
use passerelle_config::ByteSize;

use super::RunnerError;
use super::intake;
use super::job;
use super::layout::Layout;
use super::receipt::{self, Receipt};
use crate::keyring::Keyring;
use crate::validate::ImportError;

/// What [`cancel`] did.
#[derive(Debug)]
pub enum Cancel {
    /// The job is ended (`rejected`), its receipt written, its original archived.
    Cancelled(Box<ImportJob>),
    /// The job is in a status that cannot be cancelled (loading, or ended).
    Refused(Box<ImportJob>),
    /// The job moved while it was being cancelled; nothing was done.
    Changed,
    /// No job has this id.
    NotFound,
}

/// Ends job `id` as `rejected` for "cancelled by an administrator
/// (`actor`)", with a receipt, if it is `received`, `validating` or
/// `waiting-retry`. A file over `max_file_size` is not read for the
/// receipt's digest.
pub async fn cancel(
    catalog: &Catalog,
    keyring: &Keyring,
    layout: &Layout,
    max_file_size: ByteSize,
    id: &str,
    actor: &str,
) -> Result<Cancel, RunnerError> {
    let Some(mut job) = catalog.import_job(id).await? else { return Ok(Cancel::NotFound) };
    let reason = format!("cancelled by an administrator ({actor})");
    if !catalog.cancel_import_job(id, job.status, &reason).await? {
        let refused = matches!(job.status, JobStatus::Loading) || job.status.is_terminal();
        return Ok(if refused { Cancel::Refused(Box::new(job)) } else { Cancel::Changed });
    }
    let tenant = TenantName::parse(&job.tenant)?;
    let spooled = layout.spool_dir(&tenant).join(&job.id);
    // A job recorded but never taken (a crash in between) takes its file
    // now, so that it is archived like any other.
    if !spooled.exists() && job.status == JobStatus::Received && job.sha256.is_none() {
        intake::take(layout, &tenant, &job.path, &job.id)
            .map_err(|e| RunnerError::Io(format!("taking job {id}'s file"), e))?;
    }
    if job.sha256.is_none() && std::fs::metadata(&spooled).is_ok_and(|meta| meta.len() <= max_file_size.bytes()) {
        let path = spooled.clone();
        let (sha256, bytes) = tokio::task::spawn_blocking(move || job::digest_file(&path))
            .await
            .map_err(|e| RunnerError::Io("digesting the file".into(), io::Error::other(e)))?
            .map_err(|e| RunnerError::Io(format!("reading job {id}'s file"), e))?;
        job.sha256 = Some(sha256);
        job.bytes = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
        catalog.update_import_job(&finished(&job, &reason)).await?;
    }
    let errors = [ImportError { line: None, column: None, message: reason.clone() }];
    let written = Receipt {
        file: &job.path,
        status: JobStatus::Rejected.as_str(),
        profile: job.profile.as_deref(),
        rows: 0,
        sha256: job.sha256.as_deref(),
        import_id: &job.id,
        received_at: receipt::rfc3339(job.received_at),
        finished_at: Some(receipt::rfc3339(now_ms())),
        duplicate_of: None,
        error_count: 1,
        errors: &errors,
    };
    // The job is ended already: a receipt that cannot be written is said so.
    job::write_receipt(layout, &tenant, &written).map_err(|e| {
        RunnerError::Io(format!("job {id} is cancelled, but its receipt could not be written"), io::Error::other(e))
    })?;
    job::archive_original(layout, keyring, &tenant, &job).await;
    Ok(Cancel::Cancelled(Box::new(finished(&job, &reason))))
}

/// `job` as the catalog now holds it.
fn finished(job: &ImportJob, reason: &str) -> ImportJob {
    let mut job = job.clone();
    job.status = JobStatus::Rejected;
    job.error = Some(reason.to_owned());
    job.rows_loaded = Some(0);
    job.next_try_at = None;
    job.finished_at = Some(job.finished_at.unwrap_or_else(now_ms));
    job.updated_at = now_ms();
    job
}
