//! `serve`'s backups: a run when the last success is `backup.interval` old (at start too, when it
//! is), then a verification when the last one is `backup.verify_interval` old. Each outcome goes to
//! the audit trail and `/metrics`; `/healthz` watches the age of the last verified snapshot. The
//! copy holds the databases only for a moment; the upload and the checks run beside the transfers.

use std::time::{Duration, Instant};

use passerelle_import::Keyring;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Backups, Sources, Status};
use crate::engine::Engine;

/// How often the schedule looks at what is due (a `passerelle backup` by hand counts too).
const TICK: Duration = Duration::from_secs(30);

/// After a failure, the next attempt waits this long, or the interval when it is shorter.
const RETRY: Duration = Duration::from_secs(600);

/// The periodic duty (see `engine::cluster`) of the node that backs up and verifies.
const DUTY: &str = "backup";

/// Who the audit trail says acted.
const ACTOR: &str = "backup";

/// Starts the schedule on the current runtime; abort the handle to stop it (a running restic or
/// pg_dump is killed with it).
pub(crate) fn start(engine: Engine, keyring: Keyring, backups: Backups) -> JoinHandle<()> {
    info!(repository = %backups.repository(), "backups on");
    tokio::spawn(run(engine, keyring, backups))
}

/// Whether something last done at `last` (Unix seconds) is due again after `every`, and a failure
/// at `failed` is far enough behind.
fn due(last: Option<i64>, every: Duration, failed: Option<Instant>) -> bool {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let every_secs = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    let old = last.is_none_or(|at| now.saturating_sub(at) >= every_secs);
    old && failed.is_none_or(|at| at.elapsed() >= RETRY.min(every))
}

async fn run(engine: Engine, keyring: Keyring, backups: Backups) {
    let config = engine.config().clone();
    let (mut run_failed, mut verify_failed) = (None, None);
    loop {
        let status = backups.status();
        engine.backup_status(&status);
        // One node of several sharing the catalog runs and verifies the backups.
        if !engine.holds_duty(DUTY).await {
            tokio::time::sleep(TICK).await;
            continue;
        }
        if due(status.backed_up_at, config.backup.interval, run_failed) {
            let sources =
                Sources { config: &config, catalog: engine.catalog(), keyring: &keyring, data_dir: engine.data_dir() };
            let result = backups.run(&sources, "scheduled").await;
            match &result {
                Ok(stored) => {
                    run_failed = None;
                    info!(snapshot = %stored.snapshot, files = stored.files, bytes = stored.bytes, "backup stored");
                }
                Err(e) => {
                    run_failed = Some(Instant::now());
                    engine.backup_failed("run");
                    warn!(error = %e, "backup failed; trying again in {} s", RETRY.min(config.backup.interval).as_secs());
                }
            }
            engine.audit(super::report::run_event(ACTOR, "backup", &result));
        }
        let status = backups.status();
        if status.backed_up_at.is_some() && due(status.verified_at, config.backup.verify_interval, verify_failed) {
            let mut result = backups.verify(&config, false).await;
            if let Ok(verified) = &mut result {
                super::check_live_archive(engine.catalog(), &keyring, engine.data_dir(), verified).await;
            }
            match &result {
                Ok(verified) if verified.failures.is_empty() => {
                    verify_failed = None;
                    info!(files = verified.files, packs_read = %verified.read, "backup verified");
                }
                Ok(verified) => {
                    verify_failed = Some(Instant::now());
                    engine.backup_failed("verify");
                    warn!(
                        failures = verified.failures.len(),
                        "backup verification failed (each failure is in the audit trail)"
                    );
                }
                Err(e) => {
                    verify_failed = Some(Instant::now());
                    engine.backup_failed("verify");
                    warn!(error = %e, "backup verification failed");
                }
            }
            engine.audit(super::report::verify_event(ACTOR, "backup", &result));
        }
        engine.backup_status(&backups.status());
        tokio::time::sleep(TICK).await;
    }
}

/// The age past which `/healthz` says the last verified backup is too old.
pub(crate) const VERIFIED_MAX_AGE: Duration = Duration::from_secs(26 * 3600);

impl Status {
    /// Why `/healthz` should say degraded, if it should.
    pub(crate) fn degraded(&self) -> Option<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let max = i64::try_from(VERIFIED_MAX_AGE.as_secs()).unwrap_or(i64::MAX);
        match self.verified_snapshot_time {
            None => Some("no verified backup yet".into()),
            Some(at) if now.saturating_sub(at) > max => {
                Some(format!("the last verified backup is {} h old (more than 26 h)", now.saturating_sub(at) / 3600))
            }
            Some(_) => None,
        }
    }
}
