//! `import list/show/retry/cancel`: the import pipeline's jobs, as recorded
//! in the catalog. `retry` only changes the job's row; the running server's
//! import runner polls open jobs and does the work. `cancel` ends the job
//! itself (catalog, receipt, archive); a runner working on it stops at its
//! next step.

use std::time::Duration;

use anyhow::Context as _;
use passerelle_catalog::{ImportJob, JobFilter, JobProgress, JobStatus, TenantName};
use passerelle_import::Cancel;
use serde::Serialize;

use super::{existing_tenant, import_wait};
use crate::admin::Admin;
use crate::cli::{ImportCommand, ImportListArgs};
use crate::error::{CliError, usage};
use crate::output::{self, say};

/// How much of a job's error `import list` shows; `import show` shows it all.
const LISTED_ERROR_CHARS: usize = 60;

/// A job as `--json` prints it: the catalog's fields, times in RFC 3339 (UTC).
#[derive(Serialize)]
struct JobView<'a> {
    id: &'a str,
    tenant: &'a str,
    path: &'a str,
    status: JobStatus,
    profile: Option<&'a str>,
    sha256: Option<&'a str>,
    bytes: Option<i64>,
    rows_loaded: Option<i64>,
    attempts: i64,
    next_try_at: Option<String>,
    error: Option<&'a str>,
    received_at: String,
    updated_at: String,
    finished_at: Option<String>,
    /// How far a running (`loading`) job is; `null` for any other.
    progress: Option<ProgressView>,
}

/// A running job's progress as `--json` prints it.
#[derive(Serialize)]
struct ProgressView {
    rows: i64,
    bytes: i64,
    /// The file's size, when known.
    total_bytes: Option<i64>,
    started_at: String,
    /// When these figures were recorded.
    at: String,
    rows_per_second: Option<f64>,
    bytes_per_second: Option<f64>,
    /// When the job should end at the rate so far.
    estimated_end: Option<String>,
}

impl ProgressView {
    fn new(progress: &JobProgress, total_bytes: Option<i64>) -> Self {
        Self {
            rows: progress.rows,
            bytes: progress.bytes,
            total_bytes,
            started_at: output::timestamp(progress.started_at),
            at: output::timestamp(progress.at),
            rows_per_second: progress.rows_per_second().map(f64::round),
            bytes_per_second: progress.bytes_per_second().map(f64::round),
            estimated_end: total_bytes.and_then(|total| progress.estimated_end(total)).map(output::timestamp),
        }
    }
}

/// The progress of `job` while it runs.
fn running_progress(job: &ImportJob) -> Option<&JobProgress> {
    job.progress.as_ref().filter(|_| job.status == JobStatus::Loading)
}

impl<'a> From<&'a ImportJob> for JobView<'a> {
    fn from(job: &'a ImportJob) -> Self {
        Self {
            id: &job.id,
            tenant: &job.tenant,
            path: &job.path,
            status: job.status,
            profile: job.profile.as_deref(),
            sha256: job.sha256.as_deref(),
            bytes: job.bytes,
            rows_loaded: job.rows_loaded,
            attempts: job.attempts,
            next_try_at: job.next_try_at.map(output::timestamp),
            error: job.error.as_deref(),
            received_at: output::timestamp(job.received_at),
            updated_at: output::timestamp(job.updated_at),
            finished_at: job.finished_at.map(output::timestamp),
            progress: running_progress(job).map(|progress| ProgressView::new(progress, job.bytes)),
        }
    }
}

pub(super) async fn run(admin: &Admin, command: ImportCommand) -> Result<(), CliError> {
    match command {
        ImportCommand::List(args) => list(admin, args).await?,
        ImportCommand::Show { id, json } => {
            let job = find(admin, &id).await?;
            if json.json {
                return output::json(&JobView::from(&job));
            }
            show(&job);
        }
        ImportCommand::Retry { id, wait, timeout } => {
            let job = find(admin, &id).await?;
            match job.status {
                JobStatus::WaitingRetry | JobStatus::Rejected => {}
                JobStatus::Imported | JobStatus::Duplicate => {
                    return Err(usage(format!("job {id} is {}; nothing to retry", job.status)));
                }
                JobStatus::Received | JobStatus::Validating | JobStatus::Loading => {
                    return Err(usage(format!("job {id} is running ({}); nothing to retry", job.status)));
                }
            }
            // Only from the status seen above: the runner may have moved the job since.
            if !admin.catalog.retry_import_job(&job.id, job.status).await? {
                return Err(usage(format!("job {id} changed meanwhile; nothing was done (see `import show {id}`)")));
            }
            let tenant = TenantName::parse(&job.tenant)?;
            let detail = format!("{} {}: was {}", job.id, job.path, job.status);
            admin.audit("import_retry", Some(&tenant), None, Some(detail)).await?;
            let what = match job.status {
                JobStatus::Rejected => "runs again from the archived original with the current profiles",
                _ => "is tried again now",
            };
            say!("job {id} ({} of tenant {tenant}) {what}", job.path);
            if wait {
                import_wait::until_run_ends(admin, &job, Duration::from_secs(timeout)).await?;
            }
        }
        ImportCommand::Cancel { id } => cancel(admin, &id).await?,
    }
    Ok(())
}

/// `import cancel ID`.
async fn cancel(admin: &Admin, id: &str) -> Result<(), CliError> {
    let layout = admin.data_dir.import_layout();
    let max_file_size = admin.config.uploads.max_file_size;
    let outcome =
        passerelle_import::cancel(&admin.catalog, &admin.keyring(), &layout, max_file_size, id, admin.actor())
            .await
            .with_context(|| format!("import cancel {id}"))?;
    let job = match outcome {
        Cancel::Cancelled(job) => job,
        Cancel::NotFound => return Err(usage(format!("import job {id:?} not found"))),
        Cancel::Changed => {
            return Err(usage(format!("job {id} changed meanwhile; nothing was done (see `import show {id}`)")));
        }
        Cancel::Refused(job) if job.status == JobStatus::Loading => {
            return Err(usage(format!(
                "job {id} is loading: its rows are being written in one transaction; wait for its verdict \
                 (a failed load waits in waiting-retry, which can be cancelled)"
            )));
        }
        Cancel::Refused(job) => return Err(usage(format!("job {id} is {}; nothing to cancel", job.status))),
    };
    let tenant = TenantName::parse(&job.tenant)?;
    admin.audit("import_cancel", Some(&tenant), None, Some(format!("{} {}", job.id, job.path))).await?;
    say!("job {id} ({} of tenant {tenant}) cancelled: rejected, receipt written", job.path);
    Ok(())
}

async fn list(admin: &Admin, args: ImportListArgs) -> Result<(), CliError> {
    let tenant = match args.tenant.as_deref() {
        Some(name) => Some(existing_tenant(admin, name).await?),
        None => None,
    };
    let status = args
        .status
        .as_deref()
        .map(|text| {
            JobStatus::parse(text).ok_or_else(|| {
                let valid: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                usage(format!("--status {text:?}: unknown status; expected one of {}", valid.join(", ")))
            })
        })
        .transpose()?;
    let filter = JobFilter { tenant: tenant.map(|t| t.to_string()), status, limit: Some(i64::from(args.limit)) };
    let jobs = admin.catalog.import_jobs(&filter).await?;
    if args.json.json {
        return output::json(&jobs.iter().map(JobView::from).collect::<Vec<_>>());
    }
    let rows: Vec<Vec<String>> = jobs.iter().map(row).collect();
    output::table(
        &["ID", "TENANT", "PATH", "STATUS", "PROFILE", "ROWS", "PROGRESS", "ATTEMPTS", "RECEIVED", "ERROR"],
        &rows,
    );
    Ok(())
}

/// The job with this id; an unknown id is a refused input, as for `tenant show`.
async fn find(admin: &Admin, id: &str) -> Result<ImportJob, CliError> {
    admin.catalog.import_job(id).await?.ok_or_else(|| usage(format!("import job {id:?} not found")))
}

fn row(job: &ImportJob) -> Vec<String> {
    vec![
        job.id.clone(),
        job.tenant.clone(),
        job.path.clone(),
        job.status.to_string(),
        dash(job.profile.as_deref()),
        match running_progress(job) {
            Some(progress) => format!("{} so far", progress.rows),
            None => job.rows_loaded.map_or_else(|| "-".into(), |n| n.to_string()),
        },
        running_progress(job).map_or_else(|| "-".into(), |progress| progress_line(progress, job.bytes)),
        job.attempts.to_string(),
        output::timestamp(job.received_at),
        job.error.as_deref().map_or_else(|| "-".into(), truncated),
    ]
}

/// Every field of a job, one per line; `next try` only while the job waits.
fn show(job: &ImportJob) {
    let number = |n: Option<i64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    let time = |t: Option<i64>| t.map_or_else(|| "-".into(), output::timestamp);
    say!("job:       {}", job.id);
    say!("tenant:    {}", job.tenant);
    say!("path:      {}", job.path);
    say!("status:    {}", job.status);
    if job.status == JobStatus::WaitingRetry {
        say!("next try:  {}", time(job.next_try_at));
    }
    say!("profile:   {}", dash(job.profile.as_deref()));
    say!("sha256:    {}", dash(job.sha256.as_deref()));
    say!("bytes:     {}", number(job.bytes));
    say!("rows:      {}", number(job.rows_loaded));
    if let Some(progress) = running_progress(job) {
        say!("progress:  {}", progress_line(progress, job.bytes));
        say!("started:   {}", output::timestamp(progress.started_at));
    }
    say!("attempts:  {}", job.attempts);
    say!("received:  {}", output::timestamp(job.received_at));
    say!("updated:   {}", output::timestamp(job.updated_at));
    say!("finished:  {}", time(job.finished_at));
    // A multi-line error shows as lines under its first, each escaped.
    let error = dash(job.error.as_deref());
    let mut error_lines = error.lines();
    say!("error:     {}", error_lines.next().unwrap_or_default());
    for more in error_lines {
        say!("           {more}");
    }
}

/// A running job's progress on one line: `37%, 1200000 rows, 52428800 of
/// 141557760 bytes, 400000 rows/s, 21.0 MiB/s, about 5 s left (until …)`.
pub(super) fn progress_line(progress: &JobProgress, total_bytes: Option<i64>) -> String {
    let mut line = String::new();
    if let Some(total) = total_bytes.filter(|total| *total > 0) {
        line.push_str(&format!("{}%, ", progress.bytes.saturating_mul(100) / total));
    }
    line.push_str(&format!("{} rows, {} ", progress.rows, progress.bytes));
    if let Some(total) = total_bytes {
        line.push_str(&format!("of {total} "));
    }
    line.push_str("bytes");
    if let (Some(rows), Some(bytes)) = (progress.rows_per_second(), progress.bytes_per_second()) {
        line.push_str(&format!(", {rows:.0} rows/s, {:.1} MiB/s", bytes / f64::from(1 << 20)));
    }
    if let Some(end) = total_bytes.and_then(|total| progress.estimated_end(total)) {
        let left = (end - progress.at).max(0) / 1000;
        line.push_str(&format!(", about {left} s left (until {})", output::timestamp(end)));
    }
    line
}

fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// An error on one table line: newlines folded, at most [`LISTED_ERROR_CHARS`] characters.
fn truncated(error: &str) -> String {
    let line = error.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= LISTED_ERROR_CHARS {
        return line;
    }
    let mut short: String = line.chars().take(LISTED_ERROR_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_errors_fit_one_short_line() {
        assert_eq!(truncated("no profile\nmatches"), "no profile matches");
        let long = "x".repeat(200);
        let short = truncated(&long);
        assert_eq!(short.chars().count(), LISTED_ERROR_CHARS);
        assert!(short.ends_with('…'));
    }
}
