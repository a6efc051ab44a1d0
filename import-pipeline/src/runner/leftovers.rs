//! What a node that stopped or died left in the spool, finished by whoever
//! comes next: originals of jobs that reached their verdict but were not
//! archived, files taken at an upload's close whose job was not recorded,
//! inbox names moved aside at a shutdown.
//!
//! At start the whole spool is looked at. Nodes sharing a data directory
//! also sweep it periodically ([`sweep`]), so that a node that died and
//! never comes back leaves nothing behind; the sweep leaves alone anything
//! recent enough that a live node may be handling it right now.

use std::io;
use std::time::Duration;

use passerelle_catalog::{Catalog, TenantName, now_ms};
use tracing::{info, warn};

use super::{Layout, RunnerError, archive, intake, job};
use crate::keyring::Keyring;

/// How long a file taken at an upload's close may stay unrecorded before a
/// sweep records its job: the taking node's recorder does it within
/// milliseconds, unless that node died.
const UNRECORDED_AGE: Duration = Duration::from_secs(10);
/// How long after its verdict a job's original may stay unarchived before a
/// sweep archives it: the node that ran the job archives it right after the
/// verdict, which takes a while for a large file.
const UNARCHIVED_AGE: Duration = Duration::from_secs(600);

/// Who looks at a spool entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// This node starts: everything left is finished now.
    Start,
    /// A periodic sweep: only what is old enough that no live node handles it.
    Sweep,
}

/// Finishes what an earlier run left, then encrypts originals an earlier
/// version archived in clear. An entry that cannot be finished is logged
/// and left for the next sweep.
pub(crate) async fn at_start(catalog: &Catalog, keyring: &Keyring, layout: &Layout) -> Result<(), RunnerError> {
    if let Ok(tenants) = std::fs::read_dir(layout.spool_root()) {
        for tenant_dir in tenants.flatten() {
            let Some(tenant) = tenant_dir.file_name().to_str().and_then(|name| TenantName::parse(name).ok()) else {
                continue;
            };
            let mut names = spool_names(layout, &tenant);
            // Inbox names moved aside first: settling one compares it with
            // the spooled file, which archiving (a new, encrypted file) ends.
            names.sort_by_key(|name| intake::aside_of(name).is_none());
            for id in names {
                if let Err(e) = finish(catalog, keyring, layout, &tenant, &id, Look::Start).await {
                    warn!(tenant = %tenant, entry = %id, error = %e, "spool leftover not finished; tried again later");
                }
            }
        }
    }
    for tenant in catalog.tenants().await? {
        let tenant = TenantName::parse(&tenant.name)?;
        let key = keyring.tenant_key(&tenant).await?;
        let (owned_layout, owned_tenant) = (layout.clone(), tenant.clone());
        let encrypted =
            tokio::task::spawn_blocking(move || archive::encrypt_plain_archives(&owned_layout, &key, &owned_tenant))
                .await
                .map_err(io::Error::other)
                .and_then(|done| done)
                .map_err(|e| RunnerError::Io(format!("encrypting tenant {tenant}'s archived originals"), e))?;
        if encrypted > 0 {
            info!(tenant = %tenant, encrypted, "archived originals kept in clear by an earlier version encrypted");
        }
    }
    Ok(())
}

/// Finishes, in `tenants`' spools, what a node that died left long enough
/// ago: unrecorded jobs of taken uploads, unarchived originals of ended jobs.
pub(crate) async fn sweep(catalog: &Catalog, keyring: &Keyring, layout: &Layout, tenants: &[TenantName]) {
    for tenant in tenants {
        let names = spool_names(layout, tenant);
        if names.is_empty() {
            continue;
        }
        // Most entries are queued jobs: one query tells them apart.
        let open = match catalog.open_import_job_ids(tenant).await {
            Ok(open) => open,
            Err(e) => {
                warn!(tenant = %tenant, error = %e, "spool sweep: cannot read the open jobs");
                return;
            }
        };
        for id in names.iter().filter(|id| !open.contains(*id)) {
            if let Err(e) = finish(catalog, keyring, layout, tenant, id, Look::Sweep).await {
                warn!(tenant = %tenant, entry = %id, error = %e, "spool sweep: leftover not finished");
            }
        }
    }
}

/// The names in `tenant`'s spool (none when it does not exist).
fn spool_names(layout: &Layout, tenant: &TenantName) -> Vec<String> {
    let Ok(files) = std::fs::read_dir(layout.spool_dir(tenant)) else { return Vec::new() };
    files.flatten().filter_map(|f| f.file_name().to_str().map(str::to_owned)).collect()
}

/// Whether `at` (Unix ms) is at least `age` ago.
fn older_than(at: i64, age: Duration) -> bool {
    now_ms().saturating_sub(at) >= i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
}

/// One entry `id` of `tenant`'s spool.
async fn finish(
    catalog: &Catalog,
    keyring: &Keyring,
    layout: &Layout,
    tenant: &TenantName,
    id: &str,
    look: Look,
) -> Result<(), RunnerError> {
    // An inbox name moved aside by `intake::release` when the server stopped.
    if let Some(job_id) = intake::aside_of(id) {
        if look == Look::Start
            && let Some(job) = catalog.import_job(job_id).await?
        {
            intake::settle_aside(layout, tenant, job_id, &job.path)
                .map_err(|e| RunnerError::Io(format!("settling job {job_id}'s released inbox name"), e))?;
        }
        return Ok(());
    }
    if id.starts_with('.') {
        // A restore's temporary, cut short (a sweep may be looking at one
        // in progress): the archive still holds the original.
        if look == Look::Start {
            std::fs::remove_file(layout.spool_dir(tenant).join(id))
                .map_err(|e| RunnerError::Io(format!("removing {id} from the spool"), e))?;
        }
        return Ok(());
    }
    match catalog.import_job(id).await? {
        Some(job) if job.status.is_terminal() => {
            let ended = job.finished_at.unwrap_or(job.updated_at);
            if look == Look::Sweep && !older_than(ended, UNARCHIVED_AGE) {
                return Ok(());
            }
            intake::release(layout, tenant, &job.path, id)
                .map_err(|e| RunnerError::Io(format!("removing job {id}'s inbox name"), e))?;
            let key = keyring.tenant_key(tenant).await?;
            let (owned_layout, owned_tenant, owned_id) = (layout.clone(), tenant.clone(), id.to_owned());
            tokio::task::spawn_blocking(move || archive::archive(&owned_layout, &key, &owned_tenant, &owned_id))
                .await
                .map_err(io::Error::other)
                .and_then(|done| done)
                .map_err(|e| RunnerError::Io(format!("archiving job {id}'s file"), e))?;
            info!(job = %id, tenant = %tenant, "archived the original of a finished job");
        }
        Some(_) => {}
        None => match intake::unrecorded_job(layout, tenant, id) {
            // Taken at its upload's close, not recorded before a crash.
            Some(job) if look == Look::Start || older_than(job.received_at, UNRECORDED_AGE) => {
                match catalog.insert_import_job(&job).await {
                    Ok(()) => {
                        job::audit(catalog, &job, Some("recorded from its mark".into())).await;
                        info!(job = %id, tenant = %tenant, path = %job.path,
                              "import job of a taken upload recorded from its mark");
                    }
                    // Recorded meanwhile by the node that took it.
                    Err(passerelle_catalog::CatalogError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(_) => {}
            None if look == Look::Start => {
                warn!(job = %id, tenant = %tenant, "spooled file without a job; left in place")
            }
            None => {}
        },
    }
    Ok(())
}
