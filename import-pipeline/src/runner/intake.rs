//! How files reach the runner: upload-completed events, a `notify` watcher
//! over the tenant trees (files placed by other means, renames) and a scan
//! of every inbox (at start and now and then, for anything missed). All
//! three only *point at* a path; [`claim`] decides.
//!
//! A file is taken only once it has been left alone for a quiet period
//! (its modification time, and the last event about it, that long ago):
//! clients set times or re-read a file right after uploading it (rclone,
//! WinSCP), and another program may still be writing a file it placed.
//! Claiming a file records its job in the catalog first, then renames the
//! file out of the inbox into the spool: from then on the client can upload
//! the same name again without touching the file being imported.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use passerelle_catalog::{Catalog, ImportJob, JobStatus, TenantName, now_ms};
use passerelle_tree::UploadCompleted;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::RunnerError;
use super::layout::Layout;
use crate::profile::is_temporary_name;

/// Deepest directory a scan descends into under an inbox.
const MAX_SCAN_DEPTH: usize = 16;
/// Most entries one scan of one inbox looks at.
const MAX_SCAN_ENTRIES: usize = 100_000;

/// A file that may be ready for import.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arrival {
    /// Its tenant.
    pub tenant: TenantName,
    /// Its path relative to the tenant's `/inbox` (`employees/a.csv`).
    pub path: String,
}

/// What [`claim`] did.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The file is now the job's.
    Taken(Box<ImportJob>),
    /// The file changed too recently: look again after this long. A
    /// modification time in the future is given back, for the next look.
    NotYet(Duration, Option<SystemTime>),
    /// Nothing to take (gone, taken already, not a regular file).
    Nothing,
}

impl Arrival {
    /// A file the server saw complete its upload; `None` for a temporary
    /// name, which is never imported.
    pub fn uploaded(upload: &UploadCompleted) -> Option<Self> {
        let path = upload.path.as_relative();
        (!is_temporary_name(path)).then(|| Self { tenant: upload.tenant.clone(), path: path.to_owned() })
    }
}

/// Whether `path` is a plain relative path of normal components, not a
/// temporary name: the only paths the runner ever takes.
fn checked_relative(path: &str) -> bool {
    !path.is_empty()
        && !is_temporary_name(path)
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
        && !path.contains('\0')
}

/// Takes `arrival` into a new job if its file is still in the inbox and
/// was not modified within `quiet`. A modification time in the future (a
/// client's clock, `touch -d`) says nothing about when the file last
/// changed: such a file is taken once the previous look (`future_seen`)
/// found the same time, a quiet period ago.
pub(crate) async fn claim(
    catalog: &Catalog,
    layout: &Layout,
    arrival: &Arrival,
    quiet: Duration,
    future_seen: Option<SystemTime>,
) -> Result<Claim, RunnerError> {
    let Ok(inbox) = Dir::open_ambient_dir(layout.inbox(&arrival.tenant), ambient_authority()) else {
        return Ok(Claim::Nothing);
    };
    let Ok(meta) = inbox.symlink_metadata(&arrival.path) else { return Ok(Claim::Nothing) };
    if !meta.is_file() {
        return Ok(Claim::Nothing);
    }
    let modified = meta.modified().ok().map(cap_std::time::SystemTime::into_std);
    match modified.map(|m| (m, SystemTime::now().duration_since(m))) {
        // In the future: it counts as modified now, unless it was seen already.
        Some((m, Err(_))) if future_seen != Some(m) => return Ok(Claim::NotYet(quiet, Some(m))),
        Some((_, Ok(age))) if age < quiet => return Ok(Claim::NotYet(quiet - age, None)),
        _ => {}
    }
    let job = ImportJob::received(uuid::Uuid::new_v4().to_string(), &arrival.tenant, arrival.path.clone());
    catalog.insert_import_job(&job).await?;
    match take(layout, &arrival.tenant, &arrival.path, &job.id) {
        Ok(true) => Ok(Claim::Taken(Box::new(job))),
        Ok(false) => {
            // Removed by its client between the look and the rename.
            let mut job = job;
            job.status = JobStatus::Rejected;
            job.error = Some("removed from /inbox before it was taken".into());
            job.updated_at = now_ms();
            job.finished_at = Some(job.updated_at);
            catalog.update_import_job(&job).await?;
            Ok(Claim::Nothing)
        }
        Err(e) => Err(RunnerError::Io(format!("taking /inbox/{} of tenant {}", arrival.path, arrival.tenant), e)),
    }
}

/// Renames `path` of the tenant's inbox to the spool as `job_id`. `false`:
/// the file is not there (or is not a regular file).
///
/// The inbox is reached through a capability: no `..`, absolute path or
/// link in the tenant tree can make this rename take a file from elsewhere.
pub(crate) fn take(layout: &Layout, tenant: &TenantName, path: &str, job_id: &str) -> io::Result<bool> {
    let spool_path = layout.spool_dir(tenant);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&spool_path)?;
    let spool = Dir::open_ambient_dir(&spool_path, ambient_authority())?;
    let inbox = Dir::open_ambient_dir(layout.inbox(tenant), ambient_authority())?;
    match inbox.symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    match inbox.rename(path, &spool, job_id) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // Not synced: after a crash the rename either happened (the job finds
    // its file in the spool) or not (the job takes it from the inbox again).
    Ok(true)
}

/// Every file under every tenant's inbox.
pub(crate) fn scan(layout: &Layout, tenants: &[TenantName]) -> Vec<Arrival> {
    let mut found = Vec::new();
    for tenant in tenants {
        let inbox = layout.inbox(tenant);
        let mut seen = 0;
        let mut pending = vec![(inbox.clone(), 0)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_SCAN_ENTRIES {
                    warn!(tenant = %tenant, "inbox scan stopped after {MAX_SCAN_ENTRIES} entries");
                    break;
                }
                let Ok(kind) = entry.file_type() else { continue };
                let path = entry.path();
                if kind.is_dir() && depth < MAX_SCAN_DEPTH {
                    pending.push((path, depth + 1));
                } else if kind.is_file()
                    && let Some(relative) = path.strip_prefix(&inbox).ok().and_then(Path::to_str)
                    && checked_relative(relative)
                {
                    found.push(Arrival { tenant: tenant.clone(), path: relative.to_owned() });
                }
            }
        }
    }
    found
}

/// What the watcher reports.
#[derive(Debug)]
pub(crate) enum Seen {
    /// A file closed after writing, or renamed into place.
    File(Arrival),
    /// Events were lost: scan everything.
    Rescan,
}

/// Watches every tenant tree under `layout.tenants()` (new tenants too) and
/// sends what it sees; the watcher stops when dropped.
pub(crate) fn watch(layout: &Layout, sender: mpsc::Sender<Seen>) -> notify::Result<RecommendedWatcher> {
    let tenants = layout.tenants().to_path_buf();
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&tenants).map_err(notify::Error::io)?;
    let root = tenants.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let seen = match event {
            Ok(event) if event.need_rescan() => vec![Seen::Rescan],
            Ok(event) => interpret(&root, &event),
            Err(e) => {
                warn!(error = %e, "inbox watcher: events lost, scanning");
                vec![Seen::Rescan]
            }
        };
        for seen in seen {
            // The runner stopped: nothing to do with the event.
            if sender.blocking_send(seen).is_err() {
                return;
            }
        }
    })?;
    watcher.watch(&tenants, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// The inbox files an event says are complete.
fn interpret(root: &Path, event: &Event) -> Vec<Seen> {
    let completed: &[std::path::PathBuf] = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => &event.paths,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => &event.paths,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1..).unwrap_or_default(),
        _ => return Vec::new(),
    };
    completed
        .iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(root).ok()?.to_str()?;
            let (tenant, rest) = relative.split_once('/')?;
            let path = rest.strip_prefix("inbox/")?;
            let tenant = TenantName::parse(tenant).ok()?;
            if !checked_relative(path) {
                return None;
            }
            debug!(tenant = %tenant, path, "inbox watcher: file complete");
            Some(Seen::File(Arrival { tenant, path: path.to_owned() }))
        })
        .collect()
}
