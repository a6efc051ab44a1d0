//! How files reach the runner: upload-completed events, a `notify` watcher
//! over the tenant trees (files placed by other means, renames) and a scan
//! of every inbox (at start and now and then, for anything missed). All
//! three only *point at* a path; [`claim`] decides.
//!
//! A file the server itself completed is taken at once ([`take_upload`]):
//! hard-linked into the spool and marked with its job (an extended
//! attribute), its name staying in the inbox until the job ends
//! ([`release`]), because clients set times or re-read a file right after
//! uploading it (rclone, WinSCP, paramiko). The client waits for file
//! operations only: the job is recorded in the catalog right after, with
//! the jobs of other uploads in one transaction (`recorder`), or at the
//! next start from the mark after a crash. Uploads replace names
//! atomically and clients can neither write into an existing file nor
//! truncate it, so the linked inode never changes: what the client does to
//! the name afterwards (set times, delete it, upload it again) leaves the
//! job's file as it was.
//!
//! Any other file is taken only once it has been left alone for a quiet
//! period (its modification time, and the last event about it, that long
//! ago): another program may still be writing a file it placed. Claiming
//! such a file records its job in the catalog first, then renames the file
//! out of the inbox into the spool.
//!
//! Either way, from then on the client can upload the same name again
//! without touching the file being imported, and a `received` receipt has
//! replaced the name's previous receipt.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use passerelle_catalog::{Catalog, CatalogError, ImportJob, JobStatus, TenantName, now_ms};
use passerelle_tree::{UploadCompleted, sealed_sha256};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::RunnerError;
use super::layout::Layout;
use super::receipt::{self, Placing, Receipt};
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
    // A file taken at its upload's end keeps its name until its job ends.
    if !meta.is_file() || held(layout, &arrival.tenant, &arrival.path, &meta) {
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
    match catalog.insert_claimed_import_job(&job, &claim_of(arrival, &meta)).await {
        Ok(()) => {}
        // Another node sharing the data directory took this very file.
        Err(CatalogError::AlreadyExists(_)) => return Ok(Claim::Nothing),
        Err(e) => return Err(e.into()),
    }
    match take(layout, &arrival.tenant, &arrival.path, &job.id) {
        Ok(true) => {
            // An upload's seal names the content at once; a file placed by
            // another program is digested by its validation.
            let sha256 = sealed_sha256(&layout.spool_dir(&arrival.tenant).join(&job.id));
            write_received(layout, &job, sha256.as_deref());
            Ok(Claim::Taken(Box::new(job)))
        }
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

/// The identity of one version of an inbox file, the same on every node
/// that shares the data directory (device numbers are not: each NFS client
/// numbers its mounts): tenant, path, inode, modification time and size.
/// A new upload under the name is a new inode, hence a new claim.
fn claim_of(arrival: &Arrival, meta: &cap_std::fs::Metadata) -> String {
    let mut identity = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [arrival.tenant.as_str().as_bytes(), arrival.path.as_bytes()] {
        identity.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        identity.update(part);
    }
    identity.update(&meta.ino().to_be_bytes());
    identity.update(&meta.mtime().to_be_bytes());
    identity.update(&meta.mtime_nsec().to_be_bytes());
    identity.update(&meta.size().to_be_bytes());
    hex::encode(identity.finish())
}

/// A file taken at its upload's close, linked into the spool: its job is
/// to be recorded ([`Taken::Marked`], by the intake's recorder, in a batch
/// with the jobs of other uploads) or recorded already.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The spooled file carries its job's mark ([`TAKEN_XATTR`]): the job
    /// is recorded from it after a crash if it was not before.
    Marked(ImportJob),
    /// Recorded in the catalog already (the mark could not be set).
    Recorded(ImportJob),
}

/// Takes a file whose upload the server completed into a new job at once,
/// by a hard link into the spool (see the module documentation), and
/// replaces the name's receipt with a `received` one. Only files are
/// touched here, never the catalog: the client waits for this. `None`: not
/// taken, because the name no longer holds that upload's file (a newer
/// upload replaced it, or it was removed: a newer upload has an event of
/// its own), the file is taken already, or it carries no seal to check it
/// by (the quiet period then applies).
pub(crate) async fn take_upload(
    catalog: &Catalog,
    layout: &Layout,
    upload: &UploadCompleted,
) -> Result<Option<Taken>, RunnerError> {
    let Some(arrival) = Arrival::uploaded(upload) else { return Ok(None) };
    let (tenant, path) = (&arrival.tenant, &arrival.path);
    let context = || format!("taking /inbox/{path} of tenant {tenant}");
    let Ok(inbox) = Dir::open_ambient_dir(layout.inbox(tenant), ambient_authority()) else { return Ok(None) };
    let sha256 = upload.sha256.to_string();
    let Ok(meta) = inbox.symlink_metadata(path) else { return Ok(None) };
    if !is_upload(&meta, upload, sealed_sha256(&layout.inbox(tenant).join(path)).as_deref())
        || held(layout, tenant, path, &meta)
    {
        return Ok(None);
    }
    let spool_path = layout.spool_dir(tenant);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&spool_path).map_err(|e| RunnerError::Io(context(), e))?;
    let spool = Dir::open_ambient_dir(&spool_path, ambient_authority()).map_err(|e| RunnerError::Io(context(), e))?;
    let job = ImportJob::received(uuid::Uuid::new_v4().to_string(), tenant, path.clone());
    let linked = match inbox.hard_link(path, &spool, &job.id) {
        Ok(()) => spool.symlink_metadata(&job.id).ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(RunnerError::Io(context(), e)),
    };
    // The name may have changed hands between the look and the link.
    let seal = sealed_sha256(&spool_path.join(&job.id));
    if linked.as_ref().is_none_or(|linked| !is_upload(linked, upload, seal.as_deref())) {
        if linked.is_some() {
            spool.remove_file(&job.id).map_err(|e| RunnerError::Io(context(), e))?;
        }
        return Ok(None);
    }
    // Marked before the client hears of its upload: from now on a crash
    // never loses the file, whose job a start records from the mark if the
    // recorder had not. Never a file without its job, or the means to it.
    let taken = match mark(&spool_path, &job) {
        Ok(()) => Taken::Marked(job),
        Err(e) => {
            debug!(job = %job.id, error = %e, "import: spooled file not marked; its job recorded at once");
            if let Err(e) = catalog.insert_import_job(&job).await {
                // Not taken after all: the quiet period takes the inbox name.
                let _ = spool.remove_file(&job.id);
                return Err(e.into());
            }
            Taken::Recorded(job)
        }
    };
    let (Taken::Marked(job) | Taken::Recorded(job)) = &taken;
    write_received(layout, job, Some(&sha256));
    Ok(Some(taken))
}

/// Whether `meta` (with seal `seal`) is the file `upload` completed: a
/// regular file of its size, sealed with its digest.
fn is_upload(meta: &cap_std::fs::Metadata, upload: &UploadCompleted, seal: Option<&str>) -> bool {
    meta.is_file() && meta.len() == upload.size && seal == Some(upload.sha256.to_string().as_str())
}

/// Extended attribute of a file taken at its upload's close ([`Mark`],
/// JSON). Its inbox name, the same inode by a hard link, carries it too, so
/// [`held`] knows the file at once instead of looking through the spool.
const TAKEN_XATTR: &str = "user.passerelle.taken";

/// What [`TAKEN_XATTR`] holds: enough to record the job from the file alone.
#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    /// The job's id, which is also the spooled file's name.
    job: String,
    /// The inbox path, relative to `/inbox`.
    path: String,
    /// When the upload completed (Unix ms).
    received_at: i64,
}

/// Marks the spooled file of `job` (see [`TAKEN_XATTR`]).
fn mark(spool: &Path, job: &ImportJob) -> io::Result<()> {
    let mark = Mark { job: job.id.clone(), path: job.path.clone(), received_at: job.received_at };
    let value = serde_json::to_vec(&mark).map_err(io::Error::other)?;
    rustix::fs::lsetxattr(spool.join(&job.id), TAKEN_XATTR, &value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The mark of the file at `path`, if it carries a well-formed one.
fn read_mark(path: &Path) -> Option<Mark> {
    let mut value = vec![0u8; 8192];
    let n = rustix::fs::lgetxattr(path, TAKEN_XATTR, &mut value[..]).ok()?;
    let mark: Mark = serde_json::from_slice(&value[..n]).ok()?;
    is_job_id(&mark.job).then_some(mark)
}

/// The job of a spooled file found without one at start (a crash before
/// the recorder stored it), from the file's mark; `None` for a file that
/// carries no mark of its own name.
pub(crate) fn unrecorded_job(layout: &Layout, tenant: &TenantName, job_id: &str) -> Option<ImportJob> {
    let mark = read_mark(&layout.spool_dir(tenant).join(job_id)).filter(|mark| mark.job == job_id)?;
    if !checked_relative(&mark.path) {
        return None;
    }
    let mut job = ImportJob::received(mark.job, tenant, mark.path);
    job.received_at = mark.received_at;
    job.updated_at = mark.received_at;
    Some(job)
}

/// Whether the inbox file `meta` describes (at `path` of the tenant's
/// inbox) is a job's file already: a file with more than one link whose
/// inode is in the tenant's spool.
fn held(layout: &Layout, tenant: &TenantName, path: &str, meta: &cap_std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;

    if meta.nlink() < 2 {
        return false;
    }
    let same = |m: &fs::Metadata| m.ino() == meta.ino() && m.dev() == meta.dev();
    let spool = layout.spool_dir(tenant);
    if let Some(mark) = read_mark(&layout.inbox(tenant).join(path)) {
        return fs::symlink_metadata(spool.join(mark.job)).is_ok_and(|m| same(&m));
    }
    // Not marked (linked by a client, or by a version without marks): look
    // through the spool.
    let Ok(spooled) = fs::read_dir(spool) else { return false };
    spooled.flatten().any(|entry| entry.metadata().is_ok_and(|m| same(&m)))
}

/// Whether `id` looks like a job id (a UUID), safe as a spool file name.
fn is_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Removes the inbox name of a job's file once the job has ended, if the
/// name still holds the spooled file (it was taken by a link); a name the
/// client removed or uploaded again is left as it is.
///
/// The name is moved aside before it is removed, never removed on a look:
/// an upload that replaced it right after the look is what was moved, and
/// it goes back under its name (unless a newer upload took the name
/// meanwhile, which replaced it as it would have anyway).
pub(crate) fn release(layout: &Layout, tenant: &TenantName, path: &str, job_id: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;

    if !checked_relative(path) {
        return Ok(());
    }
    let spool_path = layout.spool_dir(tenant);
    let spooled = match fs::symlink_metadata(spool_path.join(job_id)) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let same =
        |meta: &cap_std::fs::Metadata| meta.is_file() && meta.ino() == spooled.ino() && meta.dev() == spooled.dev();
    let Ok(inbox) = Dir::open_ambient_dir(layout.inbox(tenant), ambient_authority()) else { return Ok(()) };
    if !inbox.symlink_metadata(path).is_ok_and(|meta| same(&meta)) {
        return Ok(());
    }
    let spool = Dir::open_ambient_dir(&spool_path, ambient_authority())?;
    match inbox.rename(path, &spool, aside_name(job_id)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    settle_aside(layout, tenant, job_id, path)
}

/// The spool name an inbox name is moved to by [`release`] before it goes.
fn aside_name(job_id: &str) -> String {
    format!(".{job_id}.released")
}

/// The job id of a spool entry named by [`aside_name`].
pub(crate) fn aside_of(name: &str) -> Option<&str> {
    name.strip_prefix('.')?.strip_suffix(".released")
}

/// Ends what [`release`] began (also after a crash in between): the file
/// moved aside from `path` is removed if it is the job's own (in the spool
/// or, once archived, in the archive), or put back under its name if it is
/// a newer upload that replaced the name just before it was moved, unless
/// an upload newer still holds the name now.
pub(crate) fn settle_aside(layout: &Layout, tenant: &TenantName, job_id: &str, path: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;

    let spool = Dir::open_ambient_dir(layout.spool_dir(tenant), ambient_authority())?;
    let aside = aside_name(job_id);
    let Ok(moved) = spool.symlink_metadata(&aside) else { return Ok(()) };
    let ours = [layout.spool_dir(tenant).join(job_id), layout.archive_dir(tenant).join(job_id)].iter().any(|file| {
        fs::symlink_metadata(file).is_ok_and(|meta| meta.ino() == moved.ino() && meta.dev() == moved.dev())
    });
    if !ours && checked_relative(path) {
        let inbox = Dir::open_ambient_dir(layout.inbox(tenant), ambient_authority())?;
        match rustix::fs::renameat_with(&spool, &aside, &inbox, path, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    spool.remove_file(&aside)
}

/// Replaces the receipt of `job`'s name with a `received` one. A failure
/// is only logged: the verdict's receipt follows anyway.
fn write_received(layout: &Layout, job: &ImportJob, sha256: Option<&str>) {
    let Ok(tenant) = TenantName::parse(&job.tenant) else { return };
    let received = Receipt {
        file: &job.path,
        status: "received",
        profile: None,
        rows: 0,
        sha256,
        import_id: &job.id,
        received_at: receipt::rfc3339(job.received_at),
        finished_at: None,
        duplicate_of: None,
        error_count: 0,
        errors: &[],
    };
    if let Err(e) = receipt::write(layout, &tenant, &received, Placing::Received) {
        warn!(job = %job.id, tenant = %job.tenant, path = %job.path, error = %e, "import: received receipt not written");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Layout, TenantName) {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path().join("tenants"), root.path().join("spool"), root.path().join("archive"));
        let acme = TenantName::parse("acme").unwrap();
        for dir in [layout.inbox(&acme).join("employees"), layout.spool_dir(&acme), layout.outbox(&acme)] {
            fs::create_dir_all(dir).unwrap();
        }
        (root, layout, acme)
    }

    #[test]
    fn a_marked_file_is_held_at_once_and_its_job_can_be_recorded_from_the_mark() {
        let (_root, layout, acme) = setup();
        let name = layout.inbox(&acme).join("employees/a.csv");
        fs::write(&name, "rows").unwrap();
        let mut job =
            ImportJob::received("0b9c1f7e-1111-4222-8333-444455556666".into(), &acme, "employees/a.csv".into());
        job.received_at = 1_234;
        fs::hard_link(&name, layout.spool_dir(&acme).join(&job.id)).unwrap();
        let meta = || {
            Dir::open_ambient_dir(layout.inbox(&acme), ambient_authority())
                .unwrap()
                .symlink_metadata("employees/a.csv")
                .unwrap()
        };
        // Linked but not marked (a crash between the two): found by looking through the spool.
        assert!(held(&layout, &acme, "employees/a.csv", &meta()));
        assert!(unrecorded_job(&layout, &acme, &job.id).is_none(), "no mark, no job to record");
        mark(&layout.spool_dir(&acme), &job).unwrap();
        assert!(held(&layout, &acme, "employees/a.csv", &meta()));
        let recorded = unrecorded_job(&layout, &acme, &job.id).expect("the job, from the mark");
        assert_eq!(
            (recorded.id.as_str(), recorded.path.as_str(), recorded.received_at),
            (job.id.as_str(), "employees/a.csv", 1_234)
        );
        // A mark names its own file only: a copy under another name records nothing.
        fs::copy(layout.spool_dir(&acme).join(&job.id), layout.spool_dir(&acme).join("other")).unwrap();
        assert!(unrecorded_job(&layout, &acme, "other").is_none());
        // Once the inbox name is another file (an upload replaced it), it is not held.
        fs::remove_file(&name).unwrap();
        fs::write(&name, "newer").unwrap();
        assert!(!held(&layout, &acme, "employees/a.csv", &meta()));
    }

    #[test]
    fn a_released_name_goes_only_while_it_holds_the_jobs_file() {
        let (_root, layout, acme) = setup();
        let name = layout.inbox(&acme).join("employees/a.csv");
        fs::write(&name, "first").unwrap();
        fs::hard_link(&name, layout.spool_dir(&acme).join("j1")).unwrap();
        // Uploaded again: a new file under the name stays.
        fs::write(layout.inbox(&acme).join("employees/.new"), "second").unwrap();
        fs::rename(layout.inbox(&acme).join("employees/.new"), &name).unwrap();
        release(&layout, &acme, "employees/a.csv", "j1").unwrap();
        assert_eq!(fs::read_to_string(&name).unwrap(), "second");
        // Still the job's file: it goes, the job's link stays.
        fs::hard_link(&name, layout.spool_dir(&acme).join("j2")).unwrap();
        release(&layout, &acme, "employees/a.csv", "j2").unwrap();
        assert!(!name.exists());
        assert_eq!(fs::read_to_string(layout.spool_dir(&acme).join("j2")).unwrap(), "second");
        assert_eq!(fs::read_dir(layout.spool_dir(&acme)).unwrap().count(), 2, "nothing left aside");
    }

    #[test]
    fn a_newer_upload_moved_aside_goes_back_under_its_name() {
        let (_root, layout, acme) = setup();
        let name = layout.inbox(&acme).join("employees/a.csv");
        fs::write(layout.spool_dir(&acme).join("j1"), "first").unwrap();
        // A newer upload replaced the name between the look and the move aside.
        fs::write(layout.spool_dir(&acme).join(aside_name("j1")), "newer").unwrap();
        settle_aside(&layout, &acme, "j1", "employees/a.csv").unwrap();
        assert_eq!(fs::read_to_string(&name).unwrap(), "newer");
        // One newer still holds the name: the one aside was replaced anyway.
        fs::write(layout.spool_dir(&acme).join(aside_name("j1")), "newer").unwrap();
        fs::write(&name, "newest").unwrap();
        settle_aside(&layout, &acme, "j1", "employees/a.csv").unwrap();
        assert_eq!(fs::read_to_string(&name).unwrap(), "newest");
        assert!(!layout.spool_dir(&acme).join(aside_name("j1")).exists());
        assert_eq!(aside_of(&aside_name("j1")), Some("j1"));
        assert_eq!(aside_of("j1"), None);
    }
}
