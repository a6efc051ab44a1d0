//! The job runner: takes completed files out of tenant inboxes into durable
//! jobs and drives each job to its verdict.
//!
//! ```text
//!  upload completed ──► [`Intake`], at once: file linked inbox ─► spool and marked ─► recorder:
//!                       jobs of a burst in a few catalog transactions ────────────────────┐ wakes
//!  notify watcher ─┐                                                                      ▼
//!  inbox scans ────┴─► quiet period, claim: job in catalog, file renamed inbox ─► spool ─► scheduler
//!                                                                     │ one job per tenant at a time,
//!                                                                     │ oldest first, `workers` tenants at once
//!                         receipt ◄─ verdict ◄─ load ◄─ validate ◄────┘
//! ```
//!
//! Jobs of one tenant run one at a time in arrival order (an upsert file
//! must not overtake the one before it), cluster-wide: nodes sharing the
//! catalog run a tenant's jobs only while they hold its import lease
//! (`leases`), and finish what a node that died left in the spool
//! (`leftovers`). A job waiting for its database holds back the tenant's
//! later jobs. A file taken at once wakes the
//! scheduler at the end of the burst gap, which starts the job once its
//! tenant's burst of uploads (if any) ends, so that transfers are not
//! slowed by imports (the open jobs are read once per burst, not once per
//! file); besides, it
//! reads each tenant's next open job from the catalog every second, so
//! `import retry` and jobs left by a crash are picked up without any
//! signal.

mod archive;
mod archive_check;
mod cancel;
mod door;
mod intake;
mod job;
mod layout;
mod leases;
mod leftovers;
mod observe;
mod outbox;
mod progress;
mod queue;
mod receipt;
mod recorder;

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_catalog::{Catalog, CatalogError, ImportJob, JobStatus, TenantName, now_ms};
use passerelle_config::ByteSize;
use passerelle_tree::{DiskSpace, UploadCompleted};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::keyring::{Keyring, KeyringError};

pub use archive::ArchiveError;
pub use archive_check::{ArchiveCheck, decrypt_archive, verify_archives};
pub use cancel::{Cancel, cancel};
pub use door::{DoorPlan, DoorProfiles, DoorRejection, Refused};
pub use intake::Arrival;
use intake::{Claim, Taken};
pub use layout::Layout;
use leases::Leases;
pub use observe::{NoObserver, Observer};
pub use receipt::RECEIPT_SUFFIX;

/// How often the scheduler looks at the open jobs.
const TICK: Duration = Duration::from_secs(1);
/// How often every inbox is scanned for files no event announced.
const SCAN_EVERY: Duration = Duration::from_secs(30);
/// How long a file must be left alone (no change, no event) before it is
/// taken: clients set times or re-read right after an upload, and a scan
/// cannot tell a finished file from one another program still writes.
const QUIET: Duration = Duration::from_secs(2);
/// Longest the intake spends taking files before it lets the runner look
/// at its other work (events, finished jobs, the scheduler); the files left
/// are taken right after, round robin as before.
const CLAIM_BUDGET: Duration = Duration::from_millis(250);
/// Longest a client's acknowledgement of a completed upload waits for its
/// file to be taken.
const TAKE_WAIT: Duration = Duration::from_secs(2);
/// A tenant whose uploads arrive less than this apart is sending a burst:
/// its jobs wait for the burst to end (up to [`MAX_BURST_WAIT`]), so that
/// its transfers keep the CPU and the disk meanwhile. A lone upload's job
/// starts this long after it was taken.
const BURST_GAP: Duration = Duration::from_millis(50);
/// Longest a job waits for its tenant's burst of uploads to end: as long as
/// the quiet period files placed by other programs wait.
const MAX_BURST_WAIT: Duration = QUIET;
/// How many locks the takes of completed uploads share out, by name.
const TAKE_LOCKS: usize = 64;
/// Most taken files whose jobs wait for the recorder; beyond, a take
/// records its job itself.
const RECORDER_QUEUE: usize = 8192;
/// How often archived originals and receipts past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// First pause of a job whose run failed without recording anything;
/// doubled after each failure in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Longest such pause.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// How long shutdown waits for running jobs before abandoning them (they
/// are resumed at the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the runner could not do something.
#[derive(Debug, Error)]
pub enum RunnerError {
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// A job's tenant name is not a valid name (a damaged catalog row).
    #[error(transparent)]
    Name(#[from] passerelle_catalog::NameError),
    /// The job was moved by someone else meanwhile (`import cancel`): its
    /// run leaves it as it is.
    #[error("import job {0} changed meanwhile (cancelled by an administrator?)")]
    Changed(String),
    /// The inbox watcher could not start.
    #[error("watching the tenant inboxes: {0}")]
    Watch(#[from] notify::Error),
    /// A tenant's data key or database password is unavailable.
    #[error("tenant keys: {0}")]
    Key(#[from] KeyringError),
    /// An archived original cannot be read back.
    #[error("archived original: {0}")]
    Archive(#[from] ArchiveError),
}

impl RunnerError {
    /// Whether a file operation failed for want of disk space.
    pub(crate) fn is_storage_full(&self) -> bool {
        matches!(self, Self::Io(_, e) if passerelle_tree::is_storage_full(e))
    }

    /// Whether trying again can never help: a name the filesystem refuses,
    /// a file that vanished, a damaged tenant name. Anything else (the
    /// catalog, a disk, permissions an operator may fix) may pass.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            Self::Name(_) => true,
            Self::Io(_, e) => matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidFilename),
            Self::Catalog(_) | Self::Changed(_) | Self::Watch(_) | Self::Key(_) | Self::Archive(_) => false,
        }
    }
}

/// How long the runner keeps what it keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Archived originals: this long after their job ended (`archive.retention_days`).
    pub archive: Duration,
    /// Receipts: this long after they were written (`receipts.retention_days`).
    pub receipts: Duration,
}

/// How the runner works: limits, retention, and its place among the nodes
/// sharing the catalog.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long archived originals and receipts are kept.
    pub retention: Retention,
    /// Larger files are refused without being read (`uploads.max_file_size`).
    pub max_file_size: ByteSize,
    /// Tenants whose jobs run at the same time on this node (`pipeline.workers`, at least 1).
    pub workers: usize,
    /// This node's id (`node.id`): the holder named in its import leases.
    pub node: String,
    /// How long a lease outlives its node's last renewal (`cluster.lease_timeout`):
    /// the jobs of a node that died resume elsewhere after that long.
    pub lease_timeout: Duration,
}

/// What the runner is told.
#[derive(Debug)]
enum Notice {
    /// A file to look at after the quiet period.
    Arrival(Arrival),
    /// This file's job was recorded: schedule now, unless its tenant's
    /// jobs are running already (the new one waits its turn).
    Taken(Arrival),
}

/// The running import pipeline.
pub struct Pipeline {
    arrivals: mpsc::Sender<Notice>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Works with the catalog of `keyring`, whose data keys encrypt the
    /// archive.
    /// Finishes what a previous run left (originals of finished jobs not
    /// archived yet, originals an earlier version archived in clear), starts
    /// the inbox watcher, then runs jobs until [`Pipeline::shutdown`].
    /// Archived originals and receipts are deleted after their retention
    /// (checked at start, then hourly). Jobs start only while `space` is
    /// above its reserve; a tenant's jobs run only while this node holds the
    /// tenant's import lease (see [`Settings`]). What they do is counted by
    /// `observer`.
    pub async fn start(
        keyring: Keyring,
        layout: Layout,
        settings: Settings,
        space: DiskSpace,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, RunnerError> {
        let catalog = keyring.catalog().clone();
        leftovers::at_start(&catalog, &keyring, &layout).await?;
        let (arrivals, arrival_receiver) = mpsc::channel(4096);
        let (seen_sender, seen) = mpsc::channel(4096);
        let watcher = intake::watch(&layout, seen_sender)?;
        let (stop, stopped) = watch::channel(false);
        let runner = Runner {
            catalog,
            keyring,
            layout,
            retention: settings.retention,
            space,
            max_file_size: settings.max_file_size,
            pending: queue::IntakeQueue::default(),
            running: JoinSet::new(),
            busy: HashMap::new(),
            paused: HashMap::new(),
            last_taken: HashMap::new(),
            wake_at: None,
            workers: settings.workers.max(1),
            leases: Leases::new(settings.node, settings.lease_timeout),
            observer,
        };
        let task = tokio::spawn(runner.run(arrival_receiver, seen, stopped, watcher));
        Ok(Self { arrivals, stop, task })
    }

    /// A handle that announces completed files to the runner.
    pub fn announcer(&self) -> Announcer {
        Announcer { arrivals: self.arrivals.clone() }
    }

    /// A handle that takes the files whose upload the server completed,
    /// recording their jobs through `catalog` (one of the caller's runtime:
    /// it is used where uploads complete, and the task that records the
    /// jobs is started on it).
    pub fn intake(&self, catalog: Catalog, keyring: Keyring, layout: Layout) -> Intake {
        let locks = (0..TAKE_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect();
        let (recorder, taken) = mpsc::channel(RECORDER_QUEUE);
        tokio::spawn(recorder::run(catalog.clone(), taken, self.announcer()));
        Intake { catalog, keyring, layout, announcer: self.announcer(), recorder, locks: Arc::new(locks) }
    }

    /// Stops taking files, gives running jobs a few seconds, then abandons
    /// them (they resume at the next start).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            warn!(error = %e, "import runner ended abnormally");
        }
    }
}

/// Announces completed files to a running [`Pipeline`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Announcer {
    arrivals: mpsc::Sender<Notice>,
}

impl Announcer {
    /// Announces a completed file. Never waits: when the runner is far
    /// behind the announcement is dropped, and the next scan finds the file.
    pub fn announce(&self, arrival: Arrival) {
        if self.arrivals.try_send(Notice::Arrival(arrival)).is_err() {
            warn!("import runner busy: a completed upload waits for the next inbox scan");
        }
    }

    /// Tells the runner `arrival`'s job was recorded. Never waits: when the
    /// runner is far behind, its next tick finds the job.
    fn taken(&self, arrival: Arrival) {
        let _ = self.arrivals.try_send(Notice::Taken(arrival));
    }
}

/// Takes each file whose upload the server completed into its job at once,
/// before the client hears that its upload is complete (see `intake`):
/// no quiet period, and the name's previous receipt is already replaced by
/// a `received` one when the client looks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Intake {
    catalog: Catalog,
    keyring: Keyring,
    layout: Layout,
    announcer: Announcer,
    /// Records the jobs of taken files, in batches.
    recorder: mpsc::Sender<recorder::Pending>,
    /// Two takes of one name never run at once (both would see the file
    /// untaken); takes of other names rarely share a lock.
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl Intake {
    /// Takes `upload`'s file into a new job and wakes the scheduler; a file
    /// that cannot be taken so is announced to the runner, which takes it
    /// after the quiet period. Waits at most 2 s (`TAKE_WAIT`): a slow catalog
    /// delays the client's acknowledgement that long, never more (the take
    /// goes on without it, never cut between its steps).
    pub async fn upload_completed(&self, upload: &UploadCompleted) {
        let Some(arrival) = Arrival::uploaded(upload) else { return };
        let intake = self.clone();
        let upload = upload.clone();
        let taking = tokio::spawn(async move { intake.take(arrival, &upload).await });
        if tokio::time::timeout(TAKE_WAIT, taking).await.is_err() {
            warn!("import: taking a completed upload is slow (the catalog?); its client is answered meanwhile");
        }
    }

    /// Records an upload the door refused as an ended job, its original
    /// archived; see [`door::refuse_at_door`].
    pub async fn refuse_at_door(
        &self,
        rejection: &DoorRejection<'_>,
        keep: impl FnOnce(&std::path::Path) -> io::Result<()>,
    ) -> Result<Refused, RunnerError> {
        door::refuse_at_door(&self.catalog, &self.keyring, &self.layout, rejection, keep).await
    }

    async fn take(&self, arrival: Arrival, upload: &UploadCompleted) {
        let mut hasher = DefaultHasher::new();
        arrival.hash(&mut hasher);
        let lock = &self.locks[usize::try_from(hasher.finish() % TAKE_LOCKS as u64).unwrap_or(0)];
        let _one = lock.lock().await;
        match intake::take_upload(&self.catalog, &self.layout, upload).await {
            Ok(Some(Taken::Marked(job))) => match self.recorder.try_send((job, arrival)) {
                Ok(()) => {}
                // Far behind (the catalog?): recorded here, as the recorder would.
                Err(
                    mpsc::error::TrySendError::Full((job, arrival)) | mpsc::error::TrySendError::Closed((job, arrival)),
                ) => {
                    match self.catalog.insert_import_job(&job).await {
                        Ok(()) => self.received(job, arrival),
                        // Marked: recorded at the next start.
                        Err(e) => warn!(job = %job.id, error = %e, "import: taken upload's job not recorded yet"),
                    }
                }
            },
            Ok(Some(Taken::Recorded(job))) => self.received(job, arrival),
            Ok(None) => self.announcer.announce(arrival),
            Err(e) => {
                warn!(tenant = %arrival.tenant, path = %arrival.path, error = %e,
                      "import: completed upload not taken at once; taken after the quiet period");
                self.announcer.announce(arrival);
            }
        }
    }

    /// Announces a recorded job to the runner and audits it (not waited
    /// for: the audit trail is not the client's business).
    fn received(&self, job: ImportJob, arrival: Arrival) {
        info!(job = %job.id, tenant = %job.tenant, path = %job.path, "import job received");
        self.announcer.taken(arrival);
        let catalog = self.catalog.clone();
        tokio::spawn(async move { job::audit(&catalog, &job, None).await });
    }
}

struct Runner {
    catalog: Catalog,
    keyring: Keyring,
    layout: Layout,
    retention: Retention,
    /// Jobs start only while it is above its reserve.
    space: DiskSpace,
    /// Larger files are refused unread.
    max_file_size: ByteSize,
    /// Files announced or found, and when to look at them again.
    pending: queue::IntakeQueue,
    /// Running jobs; each task returns its job's id and whether it failed.
    running: JoinSet<(String, bool)>,
    /// Running jobs' tenants, by task.
    busy: HashMap<tokio::task::Id, String>,
    /// Jobs whose last run failed without recording anything (the catalog
    /// failed): how many times in a row, and when they may run again.
    paused: HashMap<String, (u32, Instant)>,
    /// When each tenant's last upload was taken at its close: see [`BURST_GAP`].
    last_taken: HashMap<String, Instant>,
    /// When a job held back by [`BURST_GAP`] may start.
    wake_at: Option<Instant>,
    /// Most tenants whose jobs run at once.
    workers: usize,
    /// The tenants whose import lease this node holds.
    leases: Leases,
    /// Counts what jobs do.
    observer: Arc<dyn Observer>,
}

impl Runner {
    async fn run(
        mut self,
        mut arrivals: mpsc::Receiver<Notice>,
        mut seen: mpsc::Receiver<intake::Seen>,
        mut stop: watch::Receiver<bool>,
        _watcher: notify::RecommendedWatcher,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<Instant> = None;
        let mut last_prune: Option<Instant> = None;
        // Due files left by the last round of claims: the next round comes at once.
        let mut backlog = false;
        loop {
            // Reading the open jobs is skipped when nothing can start: a
            // burst of uploads for a busy tenant costs one query per tick,
            // not one per file.
            let mut schedule = tokio::select! {
                _ = stop.changed() => break,
                Some(notice) = arrivals.recv() => match notice {
                    Notice::Arrival(arrival) => {
                        self.announced(arrival);
                        false
                    }
                    Notice::Taken(arrival) => {
                        // The watcher saw the upload land under its name: the
                        // file is the job's now, nothing to look at later.
                        self.pending.take(&arrival);
                        // Its job starts after the burst gap at the
                        // earliest: the open jobs are read then, once per
                        // burst of uploads rather than once per file.
                        let now = Instant::now();
                        self.last_taken.insert(arrival.tenant.as_str().to_owned(), now);
                        self.wake_by(now + BURST_GAP);
                        false
                    }
                },
                Some(event) = seen.recv() => {
                    match event {
                        intake::Seen::File(arrival) => self.announced(arrival),
                        intake::Seen::Rescan => last_scan = None,
                    }
                    false
                }
                Some(done) = self.running.join_next_with_id() => {
                    let id = match done {
                        Ok((id, (job, failed))) => {
                            self.ran(job, failed);
                            id
                        }
                        Err(e) => {
                            warn!(error = %e, "import job task failed");
                            e.id()
                        }
                    };
                    self.busy.remove(&id);
                    true
                }
                _ = tick.tick() => true,
                () = sleep_until(self.wake_at), if self.wake_at.is_some() => {
                    self.wake_at = None;
                    true
                }
                () = std::future::ready(()), if backlog => false,
            };
            if last_scan.is_none_or(|at| at.elapsed() >= SCAN_EVERY) {
                self.scan().await;
                last_scan = Some(Instant::now());
            }
            let (startable, left) = self.claim_due().await;
            schedule |= startable;
            backlog = left;
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune().await;
                last_prune = Some(Instant::now());
            }
            if schedule && let Err(e) = self.schedule().await {
                warn!(error = %e, "import scheduler: cannot read the open jobs");
            }
            self.leases.renew_if_due(&self.catalog).await;
        }
        let running = std::mem::take(&mut self.running);
        if tokio::time::timeout(SHUTDOWN_GRACE, running.join_all()).await.is_err() {
            info!("import jobs still running at shutdown resume at the next start, here or on another node");
        }
        self.leases.release_all(&self.catalog).await;
    }

    /// Makes the scheduler run again at `at` at the latest.
    fn wake_by(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |wake| wake.min(at)));
    }

    /// Notes how a job's run ended: a failed run pauses the job, 1 s, 2 s,
    /// 4 s… up to [`MAX_PAUSE`] after as many failures in a row.
    fn ran(&mut self, job: String, failed: bool) {
        if !failed {
            self.paused.remove(&job);
            return;
        }
        let failures = self.paused.get(&job).map_or(0, |(n, _)| *n).saturating_add(1);
        let pause = FIRST_PAUSE.saturating_mul(1 << (failures - 1).min(16)).min(MAX_PAUSE);
        self.paused.insert(job, (failures, Instant::now() + pause));
    }

    /// An event about a file: look at it once it has been quiet that long
    /// (a later event about the same file pushes the look back).
    fn announced(&mut self, arrival: Arrival) {
        self.pending.announce(arrival, Instant::now() + QUIET);
    }

    /// Claims the pending files whose time has come, round robin across
    /// tenants, for at most [`CLAIM_BUDGET`]. Returns whether a job that can
    /// start now was created, and whether due files are left.
    async fn claim_due(&mut self) -> (bool, bool) {
        let started = Instant::now();
        let due = self.pending.due(started);
        let mut startable = false;
        for (n, arrival) in due.iter().enumerate() {
            if started.elapsed() >= CLAIM_BUDGET {
                return (startable, due.len() > n);
            }
            let Some(pending) = self.pending.take(arrival) else { continue };
            match intake::claim(&self.catalog, &self.layout, arrival, QUIET, pending.future_seen).await {
                Ok(Claim::Taken(job)) => {
                    info!(job = %job.id, tenant = %job.tenant, path = %job.path, "import job received");
                    job::audit(&self.catalog, &job, None).await;
                    startable |=
                        self.busy.len() < self.workers && !self.busy.values().any(|tenant| *tenant == job.tenant);
                }
                Ok(Claim::NotYet(wait, future_seen)) => {
                    self.pending.defer(arrival.clone(), Instant::now() + wait, future_seen);
                }
                Ok(Claim::Nothing) => {}
                Err(e) => warn!(tenant = %arrival.tenant, path = %arrival.path, error = %e, "import: file not taken"),
            }
        }
        (startable, false)
    }

    async fn tenants(&self) -> Option<Vec<TenantName>> {
        match self.catalog.tenants().await {
            Ok(tenants) => Some(tenants.iter().filter_map(|t| TenantName::parse(&t.name).ok()).collect()),
            Err(e) => {
                warn!(error = %e, "import runner: cannot list the tenants");
                None
            }
        }
    }

    async fn prune(&self) {
        let Some(tenants) = self.tenants().await else { return };
        let (layout, retention) = (self.layout.clone(), self.retention);
        let pruned = tokio::task::spawn_blocking(move || {
            (archive::prune(&layout, &tenants, retention.archive), outbox::prune(&layout, &tenants, retention.receipts))
        })
        .await;
        let (archived, receipts) = match pruned {
            Ok(pruned) => pruned,
            Err(e) => {
                warn!(error = %e, "retention: pruning task failed");
                return;
            }
        };
        match archived {
            Ok(0) => {}
            Ok(removed) => info!(removed, "archived originals past their retention deleted"),
            Err(e) => warn!(error = %e, "archive retention: pruning failed"),
        }
        match receipts {
            Ok(0) => {}
            Ok(removed) => info!(removed, "receipts past their retention deleted"),
            Err(e) => warn!(error = %e, "receipt retention: pruning failed"),
        }
    }

    /// Every file in every inbox becomes pending (those with an event
    /// pending keep their time), and what a node that died left in the
    /// spools is finished.
    async fn scan(&mut self) {
        let Some(tenants) = self.tenants().await else { return };
        let layout = self.layout.clone();
        let scanned_layout = layout.clone();
        let scanned_tenants = tenants.clone();
        let found = tokio::task::spawn_blocking(move || intake::scan(&scanned_layout, &scanned_tenants))
            .await
            .unwrap_or_default();
        let now = Instant::now();
        for arrival in found {
            self.pending.found(arrival, now);
        }
        leftovers::sweep(&self.catalog, &self.keyring, &layout, &tenants).await;
    }

    /// Starts the oldest open job of each idle tenant, when due.
    async fn schedule(&mut self) -> Result<(), CatalogError> {
        if self.busy.len() >= self.workers {
            return Ok(());
        }
        let now = now_ms();
        // Only a tenant's oldest open job may start, and only a job that ran
        // (the oldest, then) can be paused.
        let next = self.catalog.next_import_jobs().await?;
        let open: HashSet<String> = next.iter().map(|job| job.tenant.clone()).collect();
        // A paused job that ended meanwhile (`import cancel`) is forgotten.
        self.paused.retain(|id, _| next.iter().any(|job| job.id == *id));
        let arrived_since = |received_at: i64| Duration::from_millis(u64::try_from(now - received_at).unwrap_or(0));
        self.last_taken.retain(|_, at| at.elapsed() < BURST_GAP);
        for job in next {
            if self.busy.values().any(|t| *t == job.tenant) {
                continue;
            }
            if let Some(taken) = self.last_taken.get(&job.tenant)
                && let Some(waited) = MAX_BURST_WAIT.checked_sub(arrived_since(job.received_at))
            {
                let start = (*taken + BURST_GAP).min(Instant::now() + waited);
                self.wake_by(start);
                continue;
            }
            if job.status == JobStatus::WaitingRetry && job.next_try_at.is_some_and(|at| at > now) {
                continue;
            }
            if self.paused.get(&job.id).is_some_and(|(_, until)| *until > Instant::now()) {
                continue;
            }
            let Some(job) = self.leased(job).await? else { continue };
            let tenant = job.tenant.clone();
            let catalog = self.catalog.clone();
            let keyring = self.keyring.clone();
            let layout = self.layout.clone();
            let space = self.space.clone();
            let max_file_size = self.max_file_size;
            let observer = Arc::clone(&self.observer);
            let handle = self.running.spawn(async move {
                let id = job.id.clone();
                let ctx = job::JobContext {
                    catalog: &catalog,
                    keyring: &keyring,
                    layout: &layout,
                    space: &space,
                    max_file_size,
                    observer: &*observer,
                };
                let failed = match job::run(&ctx, job).await {
                    Ok(()) => false,
                    Err(e) => {
                        warn!(job = %id, error = %e, "import job interrupted; tried again after a pause");
                        true
                    }
                };
                (id, failed)
            });
            self.busy.insert(handle.id(), tenant);
            if self.busy.len() >= self.workers {
                break;
            }
        }
        let mut keep = open;
        keep.extend(self.busy.values().cloned());
        self.leases.release_idle(&self.catalog, |tenant| keep.contains(tenant)).await;
        Ok(())
    }

    /// Claims `job`'s tenant's lease for this node; `None` while another
    /// node holds it. The job as the catalog holds it now when the lease
    /// was not held already (another node may have run it meanwhile);
    /// `None` when it ended there.
    async fn leased(&mut self, job: ImportJob) -> Result<Option<ImportJob>, CatalogError> {
        let Ok(tenant) = TenantName::parse(&job.tenant) else {
            warn!(job = %job.id, tenant = %job.tenant, "import job of an invalid tenant name left as it is");
            return Ok(None);
        };
        match self.leases.claim(&self.catalog, &tenant, &job.id).await? {
            None => Ok(None),
            Some(false) => Ok(Some(job)),
            Some(true) => Ok(self.catalog.import_job(&job.id).await?.filter(|now| !now.status.is_terminal())),
        }
    }
}

/// Sleeps until `at` (never resolves for `None`; the caller's branch is
/// disabled then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_time_cannot_mend_are_permanent() {
        let io = |kind: io::ErrorKind| RunnerError::Io("writing the receipt".into(), io::Error::from(kind));
        assert!(io(io::ErrorKind::InvalidFilename).is_permanent(), "ENAMETOOLONG");
        assert!(RunnerError::Io("x".into(), io::Error::from_raw_os_error(36)).is_permanent(), "ENAMETOOLONG, raw");
        assert!(io(io::ErrorKind::NotFound).is_permanent(), "a file that vanished");
        assert!(RunnerError::from(TenantName::parse("../x").unwrap_err()).is_permanent());
        for kind in [io::ErrorKind::PermissionDenied, io::ErrorKind::NotADirectory, io::ErrorKind::StorageFull] {
            assert!(!io(kind).is_permanent(), "{kind:?} may pass");
        }
        assert!(!RunnerError::Catalog(CatalogError::NotFound("job".into())).is_permanent());
    }
}
