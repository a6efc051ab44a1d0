//! The server's check of the audit chain: the whole chain at start, then
//! every hour the rows written since the last check (the row that check
//! ended on must still be there, unchanged). A break is logged as an error,
//! recorded in the trail (`audit_verify`, `failed`) and counted
//! (`passerelle_audit_chain_failures_total`); the next check resumes after
//! the chain's current head, so that one break is reported once and the
//! rows written after it are still checked. `passerelle audit verify` shows
//! the whole picture.

use std::sync::{Arc, Weak};
use std::time::Duration;

use passerelle_catalog::{AuditEvent, ChainPosition, ChainVerdict};
use tracing::{debug, error, warn};

use super::Inner;

/// How often the chain is checked (the first time at start).
const EVERY: Duration = Duration::from_secs(3600);

/// The periodic duty (see `cluster`) of the node that checks.
const DUTY: &str = "audit_chain_check";

/// Checks at start, then every [`EVERY`]; stops when the engine is gone.
pub(super) async fn check(engine: Weak<Inner>) {
    let mut since: Option<ChainPosition> = None;
    loop {
        let Some(inner) = engine.upgrade() else { return };
        let (catalog, config) = (inner.catalog.clone(), Arc::clone(&inner.config));
        // The engine is not held while checking: a shutdown is never delayed.
        drop(inner);
        // One node of several sharing the catalog checks it; a node taking
        // the duty over checks the whole chain first.
        if !super::cluster::holds_duty(&catalog, &config, DUTY).await {
            since = None;
            tokio::time::sleep(EVERY).await;
            continue;
        }
        match catalog.verify_audit_chain(since).await {
            Ok(ChainVerdict::Intact(summary)) => {
                debug!(rows = summary.checked, head = summary.head.row(), "audit chain verified");
                since = Some(summary.head);
            }
            Ok(ChainVerdict::Broken(broken)) => {
                error!(
                    row = broken.row(),
                    problem = broken.kind(),
                    "audit chain broken: {broken}; run `passerelle audit verify`"
                );
                let Some(inner) = engine.upgrade() else { return };
                inner.metrics.audit_chain_failure();
                inner.audit.record(AuditEvent {
                    actor: "server".into(),
                    protocol: "-".into(),
                    action: "audit_verify".into(),
                    outcome: "failed".into(),
                    detail: Some(broken.to_string()),
                    ..AuditEvent::default()
                });
                drop(inner);
                match catalog.audit_chain_head().await {
                    Ok(head) => since = Some(head),
                    Err(e) => warn!(error = %e, "audit chain: cannot read its head; the next check starts over"),
                }
            }
            Err(e) => warn!(error = %e, "audit chain: cannot check it; trying again in an hour"),
        }
        tokio::time::sleep(EVERY).await;
    }
}
