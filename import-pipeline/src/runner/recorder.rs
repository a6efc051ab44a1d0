//! Records the jobs of files taken at their upload's close, in batches:
//! every job taken while a batch is being written joins the next one, so a
//! burst of uploads costs a few catalog transactions instead of two per
//! file, and no client waits for the catalog. A job not recorded yet is
//! safe: its spooled file carries its mark, from which the next start
//! records it (`intake::unrecorded_job`).
//!
//! A file taken while its tenant's uploads arrive in a burst waits
//! [`LINGER`] for the takes that follow it: the burst's jobs cannot start
//! before it ends anyway ([`BURST_GAP`]), and a client sending small files
//! one after another would otherwise cost a catalog transaction per file,
//! beside its transfers. A lone upload is recorded at once.

use std::time::{Duration, Instant};

use passerelle_catalog::{Catalog, ImportJob};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::intake::Arrival;
use super::job;
use super::{Announcer, BURST_GAP};

/// Most jobs recorded in one transaction.
const MAX_BATCH: usize = 512;
/// First pause after the catalog refused a batch; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause between two tries of a refused batch.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// How long a batch gathers takes when the last batch was recorded less
/// than [`BURST_GAP`] ago.
const LINGER: Duration = Duration::from_millis(20);
// Shorter than the gap, or the runner would see each batch's notices as
// the end of a burst and start its jobs beside the transfers.
const _: () = assert!(LINGER.as_millis() < BURST_GAP.as_millis());

/// A taken file's job, waiting to be recorded.
pub(super) type Pending = (ImportJob, Arrival);

/// Records the jobs it receives until every sender is gone, then announces
/// each recorded job to the runner through `announcer`.
pub(super) async fn run(catalog: Catalog, mut taken: mpsc::Receiver<Pending>, announcer: Announcer) {
    let mut batch = Vec::new();
    let mut last_recorded: Option<Instant> = None;
    while taken.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if last_recorded.is_some_and(|at| at.elapsed() < BURST_GAP) {
            tokio::time::sleep(LINGER).await;
            while batch.len() < MAX_BATCH
                && let Ok(pending) = taken.try_recv()
            {
                batch.push(pending);
            }
        }
        let mut pause = FIRST_PAUSE;
        // Bounded by the server's life: a batch the catalog keeps refusing
        // stays marked on disk, and the next start records it.
        while let Err(e) = record(&catalog, &batch).await {
            warn!(jobs = batch.len(), error = %e, "import: jobs of taken uploads not recorded yet; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        for (job, arrival) in batch.drain(..) {
            info!(job = %job.id, tenant = %job.tenant, path = %job.path, "import job received");
            announcer.taken(arrival);
        }
        last_recorded = Some(Instant::now());
    }
}

/// Records `batch` and its audit events. Jobs recorded already (by an
/// earlier try whose answer was lost) are skipped.
async fn record(catalog: &Catalog, batch: &[Pending]) -> Result<(), passerelle_catalog::CatalogError> {
    let jobs: Vec<ImportJob> = batch.iter().map(|(job, _)| job.clone()).collect();
    if let Err(e) = catalog.insert_import_jobs(&jobs).await {
        for job in &jobs {
            match catalog.insert_import_job(job).await {
                Ok(()) | Err(passerelle_catalog::CatalogError::AlreadyExists(_)) => {}
                Err(_) => return Err(e),
            }
        }
    }
    let events: Vec<_> = jobs.iter().map(|job| job::audit_event(job, None)).collect();
    if let Err(e) = catalog.record_all(&events).await {
        // The jobs are what counts; their events are in the log.
        warn!(error = %e, "import: audit events of received jobs not stored");
    }
    Ok(())
}
