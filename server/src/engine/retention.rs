//! Retention of the catalog: audit events and finished import jobs older
//! than `audit.retention_days` are deleted at start and hourly, a bounded
//! batch per statement with a pause between batches, so that a large
//! backlog never holds the catalog (and the transfers that write to it).

use std::sync::{Arc, Weak};
use std::time::Duration;

use passerelle_catalog::{Catalog, CatalogError, now_ms};
use tracing::{info, warn};

use super::Inner;

/// How often old rows are looked for (the first time at start).
const EVERY: Duration = Duration::from_secs(3600);

/// The periodic duty (see `cluster`) of the node that prunes.
const DUTY: &str = "audit_retention";

/// Most rows one statement deletes.
const BATCH: u32 = 1000;

/// Pause between two batches: what the catalog's other users get.
const PAUSE: Duration = Duration::from_millis(200);

/// Prunes at start, then every [`EVERY`]; stops when the engine is gone.
pub(super) async fn prune(engine: Weak<Inner>) {
    loop {
        let Some(inner) = engine.upgrade() else { return };
        let days = u64::from(inner.config.audit.retention_days);
        let (catalog, config) = (inner.catalog.clone(), Arc::clone(&inner.config));
        // The engine is not held while pruning: a shutdown is never delayed.
        drop(inner);
        // One node of several sharing the catalog prunes it.
        if !super::cluster::holds_duty(&catalog, &config, DUTY).await {
            tokio::time::sleep(EVERY).await;
            continue;
        }
        let retention = i64::try_from(days * 24 * 3600 * 1000).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(retention);
        match prune_once(&catalog, before).await {
            Ok((0, 0)) => {}
            Ok((events, jobs)) => {
                info!(
                    events,
                    jobs, days, "retention: deleted audit events and finished import jobs older than the retention"
                );
            }
            Err(e) => warn!(error = %e, "retention: cannot prune the catalog; trying again in an hour"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Deletes everything older than `before` (Unix ms), batch by batch;
/// returns how many audit events and jobs went.
async fn prune_once(catalog: &Catalog, before: i64) -> Result<(u64, u64), CatalogError> {
    let mut totals = (0, 0);
    loop {
        let events = catalog.prune_audit_events(before, BATCH).await?;
        let jobs = catalog.prune_import_jobs(before, BATCH).await?;
        totals = (totals.0 + events, totals.1 + jobs);
        if events < u64::from(BATCH) && jobs < u64::from(BATCH) {
            return Ok(totals);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
