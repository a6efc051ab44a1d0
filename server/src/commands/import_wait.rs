//! `import retry ID --wait`: follows the job the server now runs again to
//! its verdict, so that an operator (or a script) learns the outcome
//! without polling `import show`. The exit status says it: 0 imported or
//! duplicate, 1 rejected, waiting again, or not done in time.

use std::time::{Duration, Instant};

use passerelle_catalog::{ImportJob, JobStatus};

use crate::admin::Admin;
use crate::error::CliError;
use crate::output::say;
use crate::progress::Progress;

/// How often the job's row is read.
const POLL: Duration = Duration::from_millis(250);

/// Waits up to `timeout` for the run of `job` that `import retry` asked
/// for to end, showing where it stands on a terminal.
pub(super) async fn until_run_ends(admin: &Admin, job: &ImportJob, timeout: Duration) -> Result<(), CliError> {
    let started = Instant::now();
    let spinner = Progress::spinner(format!("job {}: waiting for the server to take it", job.id));
    loop {
        let now = admin.catalog.import_job(&job.id).await?.ok_or_else(|| gone(&job.id))?;
        // The retried run counts one more attempt when it starts: a
        // `waiting-retry` with no more attempts is the job not taken yet.
        let run_ended =
            now.status.is_terminal() || (now.status == JobStatus::WaitingRetry && now.attempts > job.attempts);
        if run_ended {
            drop(spinner);
            return verdict(&now);
        }
        if started.elapsed() >= timeout {
            drop(spinner);
            return Err(CliError::Runtime(anyhow::anyhow!(
                "job {} is still {} after {} s (is `passerelle serve` running?)",
                now.id,
                now.status,
                timeout.as_secs()
            )));
        }
        spinner.set_message(match &now.progress {
            Some(progress) => {
                format!("job {}: {}, {}", now.id, now.status, super::import::progress_line(progress, now.bytes))
            }
            None => format!("job {}: {}", now.id, now.status),
        });
        tokio::time::sleep(POLL).await;
    }
}

/// Prints how the run ended; an error for anything but a load.
fn verdict(job: &ImportJob) -> Result<(), CliError> {
    match job.status {
        JobStatus::Imported => {
            say!("job {}: imported, {} rows", job.id, job.rows_loaded.unwrap_or(0));
            Ok(())
        }
        JobStatus::Duplicate => {
            say!("job {}: duplicate ({})", job.id, job.error.as_deref().unwrap_or("same content as an imported job"));
            Ok(())
        }
        status => Err(CliError::Runtime(anyhow::anyhow!(
            "job {}: {status}: {}",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded")
        ))),
    }
}

fn gone(id: &str) -> CliError {
    CliError::Runtime(anyhow::anyhow!("job {id} disappeared from the catalog (pruned?)"))
}
