//! Progress of a running load: recorded in the catalog about once a second
//! (what `import list` and `import show` print), logged every 10 s, and
//! counted for the metrics; never a write per row.

use std::time::{Duration, Instant};

use passerelle_catalog::{ImportJob, JobProgress, now_ms};
use tracing::{info, warn};

use super::job::JobContext;
use crate::load::Progress;

/// How often a running load's progress is recorded in the catalog.
const RECORD_EVERY: Duration = Duration::from_secs(1);
/// How often the log says how far a long load is.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Runs `work` (the load of `job`, started at `started_at`, Unix ms),
/// recording and logging how far `progress` says it got until it ends.
pub(super) async fn watched<F: Future>(
    ctx: &JobContext<'_>,
    job: &ImportJob,
    progress: &Progress,
    started_at: i64,
    work: F,
) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut record = tokio::time::interval_at(tokio::time::Instant::now() + RECORD_EVERY, RECORD_EVERY);
    record.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut logged = Instant::now();
    let mut counted = 0;
    loop {
        tokio::select! {
            done = &mut work => {
                ctx.observer.bytes_validated(progress.bytes().saturating_sub(counted));
                return done;
            }
            _ = record.tick() => {
                let bytes = progress.bytes();
                ctx.observer.bytes_validated(bytes.saturating_sub(counted));
                counted = bytes;
                let figures = JobProgress {
                    rows: i64::try_from(progress.rows()).unwrap_or(i64::MAX),
                    bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
                    started_at,
                    at: now_ms(),
                };
                if let Err(e) = ctx.catalog.record_import_progress(&job.id, &figures).await {
                    // Progress is for people watching; the load goes on.
                    warn!(job = %job.id, error = %e, "import progress not recorded");
                }
                if logged.elapsed() >= LOG_EVERY {
                    logged = Instant::now();
                    log(job, &figures);
                }
            }
        }
    }
}

fn log(job: &ImportJob, figures: &JobProgress) {
    let total = job.bytes.unwrap_or_default();
    let percent = if total > 0 { figures.bytes.saturating_mul(100) / total } else { 0 };
    let rows_per_s = figures.rows_per_second().unwrap_or_default().round();
    let eta_s = figures.estimated_end(total).map(|end| (end - figures.at).max(0) / 1000);
    info!(job = %job.id, tenant = %job.tenant, path = %job.path, rows = figures.rows, bytes = figures.bytes,
          total_bytes = total, percent, rows_per_s, eta_s, "import in progress");
}
