//! What the pipeline tells the server's metrics as it works.

use std::time::Duration;

use passerelle_catalog::JobStatus;

/// Receives the pipeline's figures (the server counts them in `/metrics`).
/// Called from the pipeline's tasks: implementations only count.
pub trait Observer: Send + Sync {
    /// An import committed `rows` rows.
    fn rows_imported(&self, rows: u64);

    /// A job's pass read and validated `bytes` more bytes of its file.
    fn bytes_validated(&self, bytes: u64);

    /// A job reached its verdict and its receipt was written:
    /// `since_received` from when its file was taken (`received_at`) to the
    /// receipt, `run` the run that reached the verdict (not the waits
    /// before it).
    fn job_finished(&self, status: JobStatus, since_received: Duration, run: Duration);
}

/// Counts nothing: a pipeline without metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn rows_imported(&self, _rows: u64) {}

    fn bytes_validated(&self, _bytes: u64) {}

    fn job_finished(&self, _status: JobStatus, _since_received: Duration, _run: Duration) {}
}
