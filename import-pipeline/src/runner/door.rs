//! The verdict at the door: an upload to a tenant's `/inbox` is validated
//! while it streams in (by the server, with [`crate::Validator`]), and one
//! that fails is refused when its client closes it instead of being
//! published and rejected by its job later.
//!
//! ```text
//!  open  ──► DoorProfiles::plan: Pass | Validate(profile) | Refuse(no profile)
//!  close ──► invalid ──► refuse_at_door: job recorded `rejected`, receipt,
//!                         original archived ──► the client's error sentence
//! ```
//!
//! A refused upload becomes a job like any other, already ended: the
//! catalog, the audit trail (`received`, then `rejected`), the receipt and
//! the archive hold it as they hold a job the runner rejected, so `import
//! list`, `import show` and `import retry` (after fixing the profile) see no
//! difference. The job is recorded in its final status in one insert: the
//! scheduler, which runs open jobs, never sees it.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use passerelle_catalog::{Catalog, ImportJob, JobStatus, TenantName, now_ms};
use tracing::{info, warn};

use super::RunnerError;
use super::job::{self, summary};
use super::layout::Layout;
use super::receipt::{self, Receipt};
use crate::keyring::Keyring;
use crate::profile::{Profile, Profiles, is_temporary_name};
use crate::validate::ImportError;

/// What the door does with an upload to an `/inbox` path, decided when
/// the upload starts.
#[derive(Clone, Debug)]
pub enum DoorPlan {
    /// Published at close whatever it holds; its import job decides:
    /// temporary names, profiles with `reject_at_close = false`, tenants
    /// without profiles (imports off), profiles that cannot be read.
    Pass,
    /// Validated as it streams in against this profile, refused at close
    /// if invalid.
    Validate(Arc<Profile>),
    /// Refused at close whatever it holds, for this reason (no profile
    /// matches the path).
    Refuse(String),
}

/// A tenant's import profiles as the door reads them: once from the
/// catalog ([`DoorProfiles::read`]), then asked for the plan of each upload
/// ([`DoorProfiles::plan`]) without another catalog round trip. The server
/// keeps them for a session until the catalog revision moves (a profile
/// change bumps it): a burst of small uploads then costs no catalog read
/// per file.
#[derive(Clone, Debug)]
pub struct DoorProfiles(Option<Arc<Profiles>>);

impl DoorProfiles {
    /// Reads `tenant`'s stored profiles; `None` when the catalog cannot be
    /// read (logged; the upload passes and its job decides, as before the
    /// door existed, and nothing should be kept). A profile file that no
    /// longer parses passes every upload the same way.
    pub async fn read(catalog: &Catalog, tenant: &TenantName) -> Option<Self> {
        match catalog.import_profiles(tenant).await {
            Ok(text) => Some(Self(text.and_then(|text| Profiles::parse(&text).ok()).map(Arc::new))),
            Err(e) => {
                warn!(tenant = %tenant, error = %e, "import profiles not read: uploads are checked by their jobs");
                None
            }
        }
    }

    /// The plan for an upload to `path` (relative to `/inbox`). A file no
    /// profile matches is refused, unless every profile of the tenant has
    /// `reject_at_close = false`.
    #[must_use]
    pub fn plan(&self, path: &str) -> DoorPlan {
        match &self.0 {
            Some(profiles) if !is_temporary_name(path) => plan(profiles, path),
            _ => DoorPlan::Pass,
        }
    }
}

/// [`DoorProfiles::plan`] for parsed profiles.
fn plan(profiles: &Profiles, path: &str) -> DoorPlan {
    match profiles.matching(path) {
        Some(profile) if profile.reject_at_close() => DoorPlan::Validate(Arc::new(profile.clone())),
        Some(_) => DoorPlan::Pass,
        None if profiles.iter().any(Profile::reject_at_close) => {
            DoorPlan::Refuse(format!("no import profile matches {path}"))
        }
        None => DoorPlan::Pass,
    }
}

/// An upload the door refuses.
#[derive(Debug)]
pub struct DoorRejection<'a> {
    /// Its tenant.
    pub tenant: &'a TenantName,
    /// Its path relative to `/inbox`.
    pub path: &'a str,
    /// The profile it was validated against; `None` when none matched.
    pub profile: Option<&'a str>,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Its size.
    pub bytes: u64,
    /// The first errors found, as a receipt lists them.
    pub errors: Vec<ImportError>,
    /// Every error found, counted.
    pub error_count: u64,
}

/// A refused upload, recorded.
#[derive(Debug)]
pub struct Refused {
    /// The job that records it.
    pub import_id: String,
    /// The client's path of its receipt (`/outbox/...`).
    pub receipt: String,
    /// What the client is told: `rejected: line 17, column hired_on:
    /// expected ... (receipt: /outbox/...)`.
    pub sentence: String,
}

/// Records `rejection` as an ended job: in the catalog (status `rejected`,
/// with its digest, size, profile and first error), in the audit trail,
/// with its receipt, and its original in the archive. `keep` moves the
/// refused file to the path it is given (in the spool, next to the
/// archive); a file that cannot be kept is left to its caller, which
/// removes it (logged).
///
/// `Err` (nothing recorded) when the catalog fails: the caller should then
/// publish the upload and let its job decide. A receipt that cannot be
/// written is logged and said in the job's error.
pub(super) async fn refuse_at_door(
    catalog: &Catalog,
    keyring: &Keyring,
    layout: &Layout,
    rejection: &DoorRejection<'_>,
    keep: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<Refused, RunnerError> {
    let tenant = rejection.tenant;
    let mut job = ImportJob::received(uuid::Uuid::new_v4().to_string(), tenant, rejection.path.to_owned());
    job.sha256 = Some(hex::encode(rejection.sha256));
    job.bytes = Some(i64::try_from(rejection.bytes).unwrap_or(i64::MAX));
    job.profile = rejection.profile.map(str::to_owned);
    job.rows_loaded = Some(0);
    let reason = summary(&rejection.errors, rejection.error_count);
    let receipt_path = format!("/outbox/{}", receipt::receipt_path(rejection.path));

    let received = job.clone();
    job.status = JobStatus::Rejected;
    job.finished_at = Some(now_ms());
    job.updated_at = job.finished_at.unwrap_or(job.received_at);
    job.error = Some(format!("{reason} (refused at close)"));
    // Recorded first, in its final status: the scheduler never runs it, and
    // a crash after this leaves an ended job (its spooled file, if any, is
    // archived at the next start).
    catalog.insert_import_job(&job).await?;
    job::audit(catalog, &received, Some("upload validated at the door".into())).await;
    job::audit(catalog, &job, job.error.clone()).await;

    // One rename: in place, as the server's upload commit does.
    let spooled = spool(layout, tenant, &job.id, keep);
    let (owned_layout, owned_tenant, ended, errors) =
        (layout.clone(), tenant.clone(), job.clone(), rejection.errors.clone());
    let error_count = rejection.error_count;
    let written = tokio::task::spawn_blocking(move || {
        let receipt = Receipt {
            file: &ended.path,
            status: JobStatus::Rejected.as_str(),
            profile: ended.profile.as_deref(),
            rows: 0,
            sha256: ended.sha256.as_deref(),
            import_id: &ended.id,
            received_at: receipt::rfc3339(ended.received_at),
            finished_at: Some(receipt::rfc3339(ended.updated_at)),
            duplicate_of: None,
            error_count,
            errors: &errors,
        };
        job::write_receipt(&owned_layout, &owned_tenant, &receipt)
    })
    .await
    .map_err(|e| RunnerError::Io("recording a refused upload".into(), io::Error::other(e)))?;
    match spooled {
        // Encrypting a large file takes a while: the client is answered
        // meanwhile. A crash before it ends leaves the file in the spool,
        // archived at the next start.
        Ok(()) => {
            let (layout, keyring, tenant, ended) = (layout.clone(), keyring.clone(), tenant.clone(), job.clone());
            tokio::spawn(async move { job::archive_original(&layout, &keyring, &tenant, &ended).await });
        }
        Err(e) => warn!(job = %job.id, tenant = %tenant, error = %e, "refused upload not archived"),
    }
    if let Err(e) = written {
        warn!(job = %job.id, tenant = %tenant, error = %e, "upload refused at close without a receipt");
        job.error = Some(format!("{reason} (refused at close; no receipt could be written)"));
        if let Err(e) = catalog.update_import_job(&job).await {
            warn!(job = %job.id, error = %e, "import: the missing receipt not recorded");
        }
    }
    info!(job = %job.id, tenant = %tenant, path = %job.path, reason, "upload refused at close");
    let sentence =
        format!("rejected: {} (receipt: {receipt_path})", door_reason(&rejection.errors, rejection.error_count));
    Ok(Refused { import_id: job.id, receipt: receipt_path, sentence })
}

/// Moves the refused file into the spool, where [`job::archive_original`] takes it.
fn spool(
    layout: &Layout,
    tenant: &TenantName,
    job_id: &str,
    keep: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = layout.spool_dir(tenant);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    keep(&dir.join(job_id))?;
    if !dir.join(job_id).exists() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok(())
}

/// The first error in one line, as the client is told: `line 17, column
/// hired_on: expected ...`, and how many more there are.
fn door_reason(errors: &[ImportError], count: u64) -> String {
    let Some(first) = errors.first() else { return format!("{count} errors") };
    let place = match (first.line, &first.column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        (None, Some(column)) => format!("column {column}: "),
        (None, None) => String::new(),
    };
    let more = match count {
        0 | 1 => String::new(),
        2 => " (and 1 more error)".to_owned(),
        n => format!(" (and {} more errors)", n - 1),
    };
    format!("{place}{}{more}", first.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(text: &str) -> Profiles {
        Profiles::parse(text).unwrap()
    }

    const TWO: &str = "[[import]]\nname = \"a\"\nmatch = \"a/*.csv\"\ntable = \"a\"\n\
                       [[import.columns]]\nname = \"x\"\ntype = \"text\"\n\
                       [[import]]\nname = \"b\"\nmatch = \"b/*.csv\"\ntable = \"b\"\nreject_at_close = false\n\
                       [[import.columns]]\nname = \"x\"\ntype = \"text\"\n";

    #[test]
    fn the_plan_follows_the_matching_profile_and_refuses_unmatched_files() {
        let both = profiles(TWO);
        assert!(matches!(plan(&both, "a/1.csv"), DoorPlan::Validate(p) if p.name() == "a"));
        assert!(matches!(plan(&both, "b/1.csv"), DoorPlan::Pass));
        match plan(&both, "c/1.csv") {
            DoorPlan::Refuse(reason) => assert_eq!(reason, "no import profile matches c/1.csv"),
            other => panic!("{other:?}"),
        }
        let lenient = profiles(&TWO.replace("table = \"a\"\n", "table = \"a\"\nreject_at_close = false\n"));
        assert!(matches!(plan(&lenient, "c/1.csv"), DoorPlan::Pass), "every profile lets files through");
        assert!(matches!(plan(&profiles(""), "c/1.csv"), DoorPlan::Pass), "imports off: the job decides");
    }

    #[test]
    fn the_reason_names_line_and_column_then_counts_the_rest() {
        let error = |line, column: Option<&str>| ImportError {
            line,
            column: column.map(str::to_owned),
            message: "expected date like 31/12/2026, got \"2026-13-01\"".into(),
        };
        assert_eq!(
            door_reason(&[error(Some(17), Some("hired_on"))], 1),
            "line 17, column hired_on: expected date like 31/12/2026, got \"2026-13-01\""
        );
        assert_eq!(
            door_reason(&[error(Some(3), None)], 3),
            "line 3: expected date like 31/12/2026, got \"2026-13-01\" (and 2 more errors)"
        );
        assert_eq!(
            door_reason(&[error(None, None)], 2),
            "expected date like 31/12/2026, got \"2026-13-01\" (and 1 more error)"
        );
    }
}
