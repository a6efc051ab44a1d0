//! Running one job from where it stands to its verdict. Every step is
//! recorded before the next begins, so a job interrupted anywhere (kill -9,
//! a database that goes away) is resumed from the catalog and the ledger:
//!
//! 1. find the file (spool; the inbox if the crash came before the rename;
//!    the archive for `import retry`);
//! 2. a load that may have committed before a crash is looked up in the
//!    tenant database's ledger: committed means imported, never loaded twice;
//! 3. profile, same content imported before (duplicate; known before
//!    reading when the file has an upload seal), then validation and load
//!    in one streaming pass and one transaction, committed only when the
//!    file is valid (its digest, computed by that pass, must match its
//!    upload seal if it has one); progress recorded about once a second;
//! 4. receipt, verdict in the catalog, original archived.
//!
//! A job waits (`waiting-retry`) for what time may bring back: its tenant
//! database, or room on the data directory's disk. It starts only while
//! free space is above the reserve (`uploads.min_free_space`), and a disk
//! that fills anyway (a tenant database, a receipt) makes it wait too.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use passerelle_catalog::{AuditEvent, Catalog, CatalogError, ImportJob, JobStatus, TenantName, now_ms};
use passerelle_config::ByteSize;
use passerelle_tree::{DiskSpace, sealed_sha256};
use tracing::{info, warn};

use super::RunnerError;
use super::archive;
use super::intake;
use super::layout::Layout;
use super::observe::Observer;
use super::progress::watched;
use super::receipt::{self, Placing, Receipt};
use crate::keyring::Keyring;
use crate::load::{ImportRef, LoadError, LoadOutcome, Progress, committed_import, load};
use crate::profile::{Profile, Profiles};
use crate::validate::{ImportError, ValidationReport};

/// Why a file whose content no longer matches its upload seal is refused.
const DAMAGED: &str = "the file is not what its client sent: its SHA-256 differs from the one recorded when \
                       the upload completed (the server probably lost power before the file reached the disk); \
                       upload it again";

/// First wait before a load is tried again; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What a job ends with.
enum Verdict {
    Imported { rows: u64 },
    Rejected { errors: Vec<ImportError>, error_count: u64 },
    Duplicate { of: String },
}

impl Verdict {
    /// A rejection for one reason that is not about a line of the file.
    fn refused(message: impl Into<String>) -> Self {
        Self::Rejected {
            errors: vec![ImportError { line: None, column: None, message: message.into() }],
            error_count: 1,
        }
    }

    /// The rejection of a file whose validation found errors.
    fn rejected(report: ValidationReport) -> Self {
        Self::Rejected { errors: report.errors, error_count: report.error_count }
    }

    fn status(&self) -> JobStatus {
        match self {
            Self::Imported { .. } => JobStatus::Imported,
            Self::Rejected { .. } => JobStatus::Rejected,
            Self::Duplicate { .. } => JobStatus::Duplicate,
        }
    }
}

/// The runner's shared state, for a job.
pub(crate) struct JobContext<'a> {
    pub(crate) catalog: &'a Catalog,
    /// The tenants' data keys: archives and database passwords.
    pub(crate) keyring: &'a Keyring,
    pub(crate) layout: &'a Layout,
    /// The data directory's free space and its reserve.
    pub(crate) space: &'a DiskSpace,
    /// `uploads.max_file_size`: no pass over a file reads more.
    pub(crate) max_file_size: ByteSize,
    /// Counts what jobs do, for the metrics.
    pub(crate) observer: &'a dyn Observer,
}

/// Why a job goes no further in this run.
enum Stop {
    /// The job has its verdict.
    Verdict(Verdict),
    /// The tenant database is unreachable or the disk full: the job waits
    /// (for the reason given), then is tried again.
    Wait(String),
    /// The runner failed (catalog, files): the job stays where it was recorded last.
    Failed(RunnerError),
}

impl Stop {
    /// The job is refused for one reason that is not about a line of the file.
    fn refused(message: impl Into<String>) -> Self {
        Self::Verdict(Verdict::refused(message))
    }

    /// A database error ends the job unless waiting may help.
    fn database(error: LoadError) -> Self {
        if error.is_retryable() { Self::Wait(error.to_string()) } else { Self::Verdict(database_refused(&error)) }
    }
}

impl From<RunnerError> for Stop {
    fn from(error: RunnerError) -> Self {
        if error.is_storage_full() { Self::Wait(error.to_string()) } else { Self::Failed(error) }
    }
}

impl From<CatalogError> for Stop {
    fn from(error: CatalogError) -> Self {
        Self::Failed(error.into())
    }
}

/// Runs `job` until it has a verdict or waits for a retry. A failure that
/// trying again cannot mend ends the job as rejected, with that reason;
/// any other makes it wait like an unreachable database (never a hot
/// loop). An error (the catalog failed, so not even that could be
/// recorded) leaves the job where it was recorded last; the runner tries it
/// again after a pause of its own.
pub(crate) async fn run(ctx: &JobContext<'_>, job: ImportJob) -> Result<(), RunnerError> {
    match drive(ctx, job).await {
        Err(RunnerError::Changed(id)) => {
            info!(job = %id, "import job ended by an administrator; its run stops");
            Ok(())
        }
        done => done,
    }
}

/// [`run`], short of telling a cancelled job apart.
async fn drive(ctx: &JobContext<'_>, mut job: ImportJob) -> Result<(), RunnerError> {
    // Every run counts, whatever ends it (a verdict, a wait, a crash): an
    // operator reads how often the job was tried, `import retry` included.
    // Stored with the run's first transition.
    job.attempts += 1;
    let tenant = match TenantName::parse(&job.tenant) {
        Ok(tenant) => tenant,
        // No tree to write a receipt into: the verdict is the catalog's only.
        Err(e) => return end_without_receipt(ctx, None, job, &format!("damaged job: {e}")).await,
    };
    let run_started = (Instant::now(), now_ms());
    let verdict = match import(ctx, &tenant, &mut job, run_started.1).await {
        Ok(verdict) | Err(Stop::Verdict(verdict)) => verdict,
        Err(Stop::Failed(RunnerError::Changed(id))) => return Err(RunnerError::Changed(id)),
        Err(Stop::Wait(reason)) => return wait(ctx, job, &reason).await,
        Err(Stop::Failed(error)) if error.is_permanent() => Verdict::refused(cannot_import(&error)),
        Err(Stop::Failed(error)) => return wait(ctx, job, &error.to_string()).await,
    };
    finish(ctx, &tenant, job, verdict, run_started.0).await
}

/// Why a job ended on a failure trying again cannot mend.
fn cannot_import(error: &RunnerError) -> String {
    format!("the file cannot be imported: {error}")
}

/// Records `job` as rejected for `reason` without writing a receipt (there
/// is no place one could be written to), then archives its original when
/// its tenant is known.
async fn end_without_receipt(
    ctx: &JobContext<'_>,
    tenant: Option<&TenantName>,
    mut job: ImportJob,
    reason: &str,
) -> Result<(), RunnerError> {
    warn!(job = %job.id, tenant = %job.tenant, reason, "import job rejected without a receipt");
    job.error = Some(format!("{reason} (no receipt could be written)"));
    job.next_try_at = None;
    job.finished_at = Some(now_ms());
    let detail = job.error.clone();
    transition(ctx, &mut job, JobStatus::Rejected, detail).await?;
    if let Some(tenant) = tenant {
        archive_original(ctx.layout, ctx.keyring, tenant, &job).await;
    }
    Ok(())
}

/// Removes an ended job's inbox name if it still holds the job's file,
/// then encrypts the original into the archive, if it is still spooled.
/// Whatever fails is left in place and done at the next start.
pub(super) async fn archive_original(layout: &Layout, keyring: &Keyring, tenant: &TenantName, job: &ImportJob) {
    if let Err(e) = intake::release(layout, tenant, &job.path, &job.id) {
        warn!(job = %job.id, error = %e, "import: inbox name of a taken file not removed");
        return;
    }
    if !layout.spool_dir(tenant).join(&job.id).exists() {
        return;
    }
    let key = match keyring.tenant_key(tenant).await {
        Ok(key) => key,
        Err(e) => {
            warn!(job = %job.id, error = %e, "import: original not archived (no data key)");
            return;
        }
    };
    let (layout, tenant, id) = (layout.clone(), tenant.clone(), job.id.clone());
    let archived = tokio::task::spawn_blocking(move || archive::archive(&layout, &key, &tenant, &id)).await;
    if let Err(e) = archived.map_err(io::Error::other).and_then(|done| done) {
        warn!(job = %job.id, error = %e, "import: original not archived");
    }
}

/// The steps of the module documentation, from where `job` stands; the
/// run started at `run_started` (Unix ms).
async fn import(
    ctx: &JobContext<'_>,
    tenant: &TenantName,
    job: &mut ImportJob,
    run_started: i64,
) -> Result<Verdict, Stop> {
    // What the import writes (rows, receipt) must not eat the reserve kept
    // for the catalog.
    ctx.space.check().map_err(|low| Stop::Wait(format!("the server is {low}")))?;
    let spooled = ctx.layout.spool_dir(tenant).join(&job.id);
    if !spooled.exists() && !find_file(ctx, tenant, job).await? {
        return Ok(Verdict::refused("the file was removed before it could be imported"));
    }
    let size =
        std::fs::metadata(&spooled).map_err(|e| RunnerError::Io(format!("reading job {}'s file", job.id), e))?.len();
    if size > ctx.max_file_size.bytes() {
        // Placed in the inbox by other means than an upload, which could not
        // have grown so large: refused unread.
        job.bytes = Some(i64::try_from(size).unwrap_or(i64::MAX));
        return Ok(Verdict::refused(too_large(size, ctx.max_file_size)));
    }
    let database = ctx.keyring.tenant_database(tenant).await.map_err(RunnerError::from)?;
    if matches!(job.status, JobStatus::Loading | JobStatus::WaitingRetry)
        && let Some(rows) = committed_import(&database, &job.id).await.map_err(Stop::database)?
    {
        return Ok(Verdict::Imported { rows });
    }
    let profile = profile(ctx, tenant, &job.path).await?;
    job.profile = Some(profile.name().to_owned());
    job.bytes.get_or_insert(i64::try_from(size).unwrap_or(i64::MAX));
    // An upload's seal, or an earlier run, gives the digest before the file is read.
    let sealed = sealed_sha256(&spooled);
    if let (Some(sealed), Some(recorded)) = (&sealed, &job.sha256)
        && sealed != recorded
    {
        return Ok(Verdict::refused(DAMAGED));
    }
    let known = job.sha256.clone().or_else(|| sealed.clone());
    if let Some(sha256) = &known
        && let Some(earlier) = ctx.catalog.imported_same_content(&job.tenant, profile.name(), sha256).await?
        && earlier != job.id
    {
        return Ok(Verdict::Duplicate { of: earlier });
    }

    transition(ctx, job, JobStatus::Loading, None).await?;
    let file = open_synced(&job.id, &spooled).await?;
    let progress = Progress::new();
    let import = ImportRef { id: &job.id, sha256: known.as_deref(), progress: Some(&progress) };
    let loaded = watched(ctx, job, &progress, run_started, load(&database, &profile, file, import)).await;
    match loaded {
        Ok(outcome) => Ok(judged(ctx, job, sealed.as_deref(), outcome)),
        Err(LoadError::AlreadyImported(of)) => Ok(Verdict::Duplicate { of }),
        Err(LoadError::ContentChanged { .. }) => Ok(Verdict::refused(DAMAGED)),
        Err(e) => Err(Stop::database(e)),
    }
}

/// The verdict on a load that ran to its end (committed exactly when the
/// file was accepted); records the digest its pass computed.
fn judged(ctx: &JobContext<'_>, job: &mut ImportJob, sealed: Option<&str>, outcome: LoadOutcome) -> Verdict {
    let report = outcome.report;
    if job.sha256.is_none()
        && let Some(digest) = report.sha256
    {
        job.sha256 = Some(hex::encode(digest));
        job.bytes = Some(i64::try_from(report.bytes).unwrap_or(i64::MAX));
    }
    if report.is_accepted() {
        ctx.observer.rows_imported(outcome.rows);
        return Verdict::Imported { rows: outcome.rows };
    }
    // A file read whole that is not what its client sent is damaged,
    // whatever else is wrong with it.
    if report.sha256.is_some() && sealed.is_some_and(|sealed| job.sha256.as_deref() != Some(sealed)) {
        return Verdict::refused(DAMAGED);
    }
    Verdict::rejected(report)
}

/// The tenant's profile for the file at `path` in its inbox.
async fn profile(ctx: &JobContext<'_>, tenant: &TenantName, path: &str) -> Result<Profile, Stop> {
    let Some(text) = ctx.catalog.import_profiles(tenant).await? else {
        let message = format!("no import profile matches {path} (the tenant has no profiles)");
        return Err(Stop::refused(message));
    };
    let profiles =
        Profiles::parse(&text).map_err(|e| Stop::refused(format!("the tenant's import profiles are invalid: {e}")))?;
    profiles.matching(path).cloned().ok_or_else(|| Stop::refused(format!("no import profile matches {path}")))
}

/// Opens the spooled file once it is on disk: uploads are acknowledged
/// before they reach the disk (unless uploads.fsync), and the archive must
/// keep exactly what was imported.
async fn open_synced(job_id: &str, spooled: &Path) -> Result<File, RunnerError> {
    let path = spooled.to_owned();
    tokio::task::spawn_blocking(move || -> io::Result<File> {
        let file = File::open(&path)?;
        file.sync_data()?;
        Ok(file)
    })
    .await
    .map_err(|e| RunnerError::Io("opening the file".into(), io::Error::other(e)))?
    .map_err(|e| RunnerError::Io(format!("reading job {job_id}'s file"), e))
}

/// Brings a job's file into the spool when it is not there: from the
/// archive (`import retry` of a finished job), or, for a job that never
/// had its file (a crash between recording the job and taking it), from
/// the inbox. Only such a job may look in the inbox: a file at the same
/// path now is another upload, perhaps still being written.
async fn find_file(ctx: &JobContext<'_>, tenant: &TenantName, job: &ImportJob) -> Result<bool, RunnerError> {
    let context = || format!("finding job {}'s file", job.id);
    if ctx.layout.archive_dir(tenant).join(&job.id).exists() {
        // Decrypted into the spool, streaming, off the async threads.
        let key = ctx.keyring.tenant_key(tenant).await?;
        let (layout, owned_tenant, id) = (ctx.layout.clone(), tenant.clone(), job.id.clone());
        let restored = tokio::task::spawn_blocking(move || archive::restore(&layout, &key, &owned_tenant, &id))
            .await
            .map_err(io::Error::other)
            .and_then(|done| done)
            .map_err(|e| RunnerError::Io(context(), e))?;
        if restored {
            return Ok(true);
        }
    }
    let never_taken = job.status == JobStatus::Received && job.sha256.is_none();
    Ok(never_taken
        && intake::take(ctx.layout, tenant, &job.path, &job.id).map_err(|e| RunnerError::Io(context(), e))?)
}

/// Why a file over `uploads.max_file_size` is refused.
fn too_large(size: u64, max: ByteSize) -> String {
    format!("file too large: {size} bytes, over the {max} limit (uploads.max_file_size)")
}

fn database_refused(error: &LoadError) -> Verdict {
    Verdict::refused(format!("the tenant database refused the import: {error}"))
}

/// SHA-256 (hex) and size of a file, streaming.
pub(super) fn digest_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut context = digest::Context::new(&digest::SHA256);
    let mut buffer = vec![0; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(context.finish()), bytes))
}

/// Moves the job to `status`, in the catalog and the audit trail.
async fn transition(
    ctx: &JobContext<'_>,
    job: &mut ImportJob,
    status: JobStatus,
    detail: Option<String>,
) -> Result<(), RunnerError> {
    let from = job.status;
    job.status = status;
    job.updated_at = now_ms();
    // Only from the status this run recorded last: `import cancel` may have
    // ended the job meanwhile, and it stays ended.
    if !ctx.catalog.advance_import_job(job, from).await? {
        return Err(RunnerError::Changed(job.id.clone()));
    }
    audit(ctx.catalog, job, detail).await;
    Ok(())
}

/// Records a job transition in the audit trail (a failure is logged: the
/// job's state in the catalog is what counts).
pub(crate) async fn audit(catalog: &Catalog, job: &ImportJob, detail: Option<String>) {
    if let Err(e) = catalog.record(&audit_event(job, detail)).await {
        warn!(job = %job.id, error = %e, "import: audit event not stored");
    }
}

/// The audit event of `job` reaching its current status.
pub(crate) fn audit_event(job: &ImportJob, detail: Option<String>) -> AuditEvent {
    AuditEvent {
        actor: "pipeline".into(),
        tenant: Some(job.tenant.clone()),
        protocol: "import".into(),
        action: "import".into(),
        outcome: job.status.as_str().into(),
        path: Some(format!("/inbox/{}", job.path)),
        bytes: job.bytes,
        detail: Some(match detail {
            Some(detail) => format!("job {}; {detail}", job.id),
            None => format!("job {}", job.id),
        }),
        ..Default::default()
    }
}

/// The database was unreachable, the disk full, or anything else went
/// wrong that may pass: the job waits, then is tried again.
async fn wait(ctx: &JobContext<'_>, mut job: ImportJob, error: &str) -> Result<(), RunnerError> {
    let exponent = u32::try_from(job.attempts.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    let delay = FIRST_RETRY.saturating_mul(1 << exponent).min(MAX_RETRY);
    job.next_try_at = Some(now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    job.error = Some(error.to_owned());
    warn!(job = %job.id, tenant = %job.tenant, attempts = job.attempts, retry_in_s = delay.as_secs(), error = %error,
          "import waits before its next try");
    let detail = format!("attempt {} failed, next try in {} s: {error}", job.attempts, delay.as_secs());
    transition(ctx, &mut job, JobStatus::WaitingRetry, Some(detail)).await
}

/// Writes the receipt, records the verdict, then archives the original.
async fn finish(
    ctx: &JobContext<'_>,
    tenant: &TenantName,
    mut job: ImportJob,
    verdict: Verdict,
    run_started: Instant,
) -> Result<(), RunnerError> {
    // Refused before (or stopped early in) validation: the receipt still
    // names the content.
    let spooled = ctx.layout.spool_dir(tenant).join(&job.id);
    // A file over the bound is not read, not even for its digest.
    let within_bound = std::fs::metadata(&spooled).is_ok_and(|meta| meta.len() <= ctx.max_file_size.bytes());
    if job.sha256.is_none() && within_bound {
        let (sha256, bytes) = tokio::task::spawn_blocking(move || digest_file(&spooled))
            .await
            .map_err(|e| RunnerError::Io("digesting the file".into(), io::Error::other(e)))?
            .map_err(|e| RunnerError::Io(format!("reading job {}'s file", job.id), e))?;
        job.sha256 = Some(sha256);
        job.bytes = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    // A job cancelled meanwhile keeps the receipt `import cancel` wrote.
    let recorded = ctx.catalog.import_job(&job.id).await?;
    if recorded.is_none_or(|recorded| recorded.status != job.status) {
        return Err(RunnerError::Changed(job.id));
    }
    // The client's name goes before the verdict appears: whoever reads the
    // verdict finds the inbox as the import left it.
    if let Err(e) = intake::release(ctx.layout, tenant, &job.path, &job.id) {
        warn!(job = %job.id, error = %e, "import: inbox name of a taken file not removed");
    }
    let finished_at = now_ms();
    let (rows, errors, error_count, duplicate_of) = match &verdict {
        Verdict::Imported { rows } => (*rows, &[][..], 0, None),
        Verdict::Rejected { errors, error_count } => (0, &errors[..], *error_count, None),
        Verdict::Duplicate { of } => (0, &[][..], 0, Some(of.as_str())),
    };
    let status = verdict.status();
    let written = Receipt {
        file: &job.path,
        status: status.as_str(),
        profile: job.profile.as_deref(),
        rows,
        sha256: job.sha256.as_deref(),
        import_id: &job.id,
        received_at: receipt::rfc3339(job.received_at),
        finished_at: Some(receipt::rfc3339(finished_at)),
        duplicate_of,
        error_count,
        errors,
    };
    // A newer file of the same name taken while `job` ran (its job is
    // open): that file's receipt is the name's, and `job`'s verdict must not
    // show under it, even where there was no receipt to replace.
    let written_by_newer = ctx.catalog.newer_open_import_job(&job).await?;
    if written_by_newer {
        info!(job = %job.id, path = %job.path, "receipt left to the newer file taken under that name");
    } else if let Err(e) = write_receipt(ctx.layout, tenant, &written) {
        if e.is_permanent() {
            return end_without_receipt(ctx, Some(tenant), job, &cannot_import(&e)).await;
        }
        // The verdict is found again at the next try (a committed load from
        // the ledger), and the receipt written then.
        return wait(ctx, job, &e.to_string()).await;
    }
    job.rows_loaded = Some(i64::try_from(rows).unwrap_or(i64::MAX));
    job.next_try_at = None;
    job.finished_at = Some(finished_at);
    job.error = match &verdict {
        Verdict::Imported { .. } => None,
        Verdict::Rejected { errors, error_count } => Some(summary(errors, *error_count)),
        Verdict::Duplicate { of } => Some(format!("same content as import {of}")),
    };
    let detail = match &verdict {
        Verdict::Imported { rows } => format!("{rows} rows"),
        _ => job.error.clone().unwrap_or_default(),
    };
    transition(ctx, &mut job, status, Some(detail)).await?;
    let since_received = Duration::from_millis(u64::try_from(finished_at - job.received_at).unwrap_or(0));
    ctx.observer.job_finished(status, since_received, run_started.elapsed());
    info!(job = %job.id, tenant = %job.tenant, path = %job.path, status = %status, rows, "import finished");
    archive_original(ctx.layout, ctx.keyring, tenant, &job).await;
    Ok(())
}

/// Writes a verdict's receipt; one that a newer file's `received` receipt
/// keeps out is not an error (that file's verdict comes next).
pub(super) fn write_receipt(layout: &Layout, tenant: &TenantName, written: &Receipt<'_>) -> Result<(), RunnerError> {
    let placed = receipt::write(layout, tenant, written, Placing::Verdict)
        .map_err(|e| RunnerError::Io(format!("writing the receipt of /inbox/{}", written.file), e))?;
    if !placed {
        info!(job = %written.import_id, path = %written.file, "receipt left to the newer file taken under that name");
    }
    Ok(())
}

/// One line for `import list`: the first error and how many there are.
pub(super) fn summary(errors: &[ImportError], count: u64) -> String {
    let Some(first) = errors.first() else { return format!("{count} errors") };
    let mut line = String::new();
    if let Some(n) = first.line {
        line.push_str(&format!("line {n}: "));
    }
    if let Some(column) = &first.column {
        line.push_str(&format!("column {column}: "));
    }
    line.push_str(&first.message);
    if count > 1 {
        line.push_str(&format!(" (and {} more)", count - 1));
    }
    line
}
