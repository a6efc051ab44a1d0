//! The job runner: takes completed files out of tenant inboxes into durable
//! jobs and drives each job to its verdict.
//!
//! ```text
//!  upload events ──┐
//!  notify watcher ─┼─► claim: job in catalog, file inbox ─► spool ──► scheduler
//!  inbox scans ────┘                                                  │ one job per tenant at a time,
//!                                                                     │ oldest first, WORKERS tenants at once
//!                         receipt ◄─ verdict ◄─ load ◄─ validate ◄────┘
//! ```
//!
//! Jobs of one tenant run one at a time in arrival order (an upsert file
//! must not overtake the one before it); a job waiting for its database
//! holds back the tenant's later jobs. The scheduler reads the open jobs
//! from the catalog every second, so `import retry` and jobs left by a
//! crash are picked up without any signal.

mod archive;
mod intake;
mod job;
mod layout;
mod receipt;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use passerelle_catalog::{Catalog, CatalogError, JobStatus, TenantName, now_ms};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use intake::Arrival;
pub use layout::Layout;

/// Tenants whose jobs run at the same time.
const WORKERS: usize = 4;
/// How often the scheduler looks at the open jobs.
const TICK: Duration = Duration::from_secs(1);
/// How often every inbox is scanned for files no event announced.
const SCAN_EVERY: Duration = Duration::from_secs(30);
/// How long a scanned file must be left alone before it is taken: a scan
/// cannot tell a finished file from one that another program still writes.
const SETTLE: Duration = Duration::from_secs(2);
/// How often archived originals past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
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
    Io(String, #[source] std::io::Error),
    /// A job's tenant name is not a valid name (a damaged catalog row).
    #[error(transparent)]
    Name(#[from] passerelle_catalog::NameError),
    /// The inbox watcher could not start.
    #[error("watching the tenant inboxes: {0}")]
    Watch(#[from] notify::Error),
}

/// The running import pipeline.
pub struct Pipeline {
    arrivals: mpsc::Sender<Arrival>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Finishes what a previous run left (originals of finished jobs not
    /// archived yet), starts the inbox watcher, then runs jobs until
    /// [`Pipeline::shutdown`].
    /// Archived originals are deleted `archive_retention` after their job ended.
    pub async fn start(catalog: Catalog, layout: Layout, archive_retention: Duration) -> Result<Self, RunnerError> {
        archive_leftovers(&catalog, &layout).await?;
        let (arrivals, arrival_receiver) = mpsc::channel(4096);
        let (seen_sender, seen) = mpsc::channel(4096);
        let watcher = intake::watch(&layout, seen_sender)?;
        let (stop, stopped) = watch::channel(false);
        let runner = Runner { catalog, layout, archive_retention, running: JoinSet::new(), busy: HashMap::new() };
        let task = tokio::spawn(runner.run(arrival_receiver, seen, stopped, watcher));
        Ok(Self { arrivals, stop, task })
    }

    /// A handle that announces completed files to the runner.
    pub fn announcer(&self) -> Announcer {
        Announcer { arrivals: self.arrivals.clone() }
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
    arrivals: mpsc::Sender<Arrival>,
}

impl Announcer {
    /// Announces a completed file. Never waits: when the runner is far
    /// behind the announcement is dropped, and the next scan finds the file.
    pub fn announce(&self, arrival: Arrival) {
        if self.arrivals.try_send(arrival).is_err() {
            warn!("import runner busy: a completed upload waits for the next inbox scan");
        }
    }
}

/// Originals of jobs that reached their verdict but were not archived (a
/// crash in between) go to the archive now.
async fn archive_leftovers(catalog: &Catalog, layout: &Layout) -> Result<(), RunnerError> {
    let Ok(tenants) = std::fs::read_dir(layout.spool_root()) else { return Ok(()) };
    for tenant_dir in tenants.flatten() {
        let Some(tenant) = tenant_dir.file_name().to_str().and_then(|name| TenantName::parse(name).ok()) else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(tenant_dir.path()) else { continue };
        for file in files.flatten() {
            let Some(id) = file.file_name().to_str().map(str::to_owned) else { continue };
            match catalog.import_job(&id).await? {
                Some(job) if job.status.is_terminal() => {
                    archive::archive(layout, &tenant, &id)
                        .map_err(|e| RunnerError::Io(format!("archiving job {id}'s file"), e))?;
                    info!(job = %id, tenant = %tenant, "archived the original of a finished job");
                }
                Some(_) => {}
                None => warn!(job = %id, tenant = %tenant, "spooled file without a job; left in place"),
            }
        }
    }
    Ok(())
}

struct Runner {
    catalog: Catalog,
    layout: Layout,
    archive_retention: Duration,
    running: JoinSet<()>,
    /// Running jobs' tenants, by task.
    busy: HashMap<tokio::task::Id, String>,
}

impl Runner {
    async fn run(
        mut self,
        mut arrivals: mpsc::Receiver<Arrival>,
        mut seen: mpsc::Receiver<intake::Seen>,
        mut stop: watch::Receiver<bool>,
        _watcher: notify::RecommendedWatcher,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<Instant> = None;
        let mut last_prune: Option<Instant> = None;
        loop {
            // Reading the open jobs is skipped when nothing can start: a
            // burst of uploads for a busy tenant costs one query per tick,
            // not one per file.
            let schedule = tokio::select! {
                _ = stop.changed() => break,
                Some(arrival) = arrivals.recv() => self.claim(&arrival).await,
                Some(event) = seen.recv() => match event {
                    intake::Seen::File(arrival) => self.claim(&arrival).await,
                    intake::Seen::Rescan => {
                        last_scan = None;
                        false
                    }
                },
                Some(done) = self.running.join_next_with_id() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => {
                            warn!(error = %e, "import job task failed");
                            e.id()
                        }
                    };
                    self.busy.remove(&id);
                    true
                }
                _ = tick.tick() => true,
            };
            if last_scan.is_none_or(|at| at.elapsed() >= SCAN_EVERY) {
                self.scan().await;
                last_scan = Some(Instant::now());
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune().await;
                last_prune = Some(Instant::now());
            }
            if schedule && let Err(e) = self.schedule().await {
                warn!(error = %e, "import scheduler: cannot read the open jobs");
            }
        }
        let running = std::mem::take(&mut self.running);
        if tokio::time::timeout(SHUTDOWN_GRACE, running.join_all()).await.is_err() {
            info!("import jobs still running at shutdown resume at the next start");
        }
    }

    /// Takes the file of `arrival` into a job; `true` when that job can
    /// start now (its tenant idle, a worker free).
    async fn claim(&self, arrival: &Arrival) -> bool {
        match intake::claim(&self.catalog, &self.layout, arrival).await {
            Ok(Some(job)) => {
                info!(job = %job.id, tenant = %job.tenant, path = %job.path, "import job received");
                job::audit(&job::JobContext { catalog: &self.catalog, layout: &self.layout }, &job, None).await;
                self.busy.len() < WORKERS && !self.busy.values().any(|tenant| *tenant == job.tenant)
            }
            Ok(None) => false,
            Err(e) => {
                warn!(tenant = %arrival.tenant, path = %arrival.path, error = %e, "import: file not taken");
                false
            }
        }
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
        let (layout, retention) = (self.layout.clone(), self.archive_retention);
        match tokio::task::spawn_blocking(move || archive::prune(&layout, &tenants, retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => info!(removed, "archived originals past their retention deleted"),
            Ok(Err(e)) => warn!(error = %e, "archive retention: pruning failed"),
            Err(e) => warn!(error = %e, "archive retention: pruning task failed"),
        }
    }

    async fn scan(&self) {
        let Some(tenants) = self.tenants().await else { return };
        let layout = self.layout.clone();
        let found =
            tokio::task::spawn_blocking(move || intake::scan(&layout, &tenants, SETTLE)).await.unwrap_or_default();
        for arrival in found {
            self.claim(&arrival).await;
        }
    }

    /// Starts the oldest open job of each idle tenant, when due.
    async fn schedule(&mut self) -> Result<(), CatalogError> {
        if self.busy.len() >= WORKERS {
            return Ok(());
        }
        let now = now_ms();
        let mut considered = HashSet::new();
        for job in self.catalog.open_import_jobs().await? {
            if !considered.insert(job.tenant.clone()) || self.busy.values().any(|t| *t == job.tenant) {
                continue;
            }
            if job.status == JobStatus::WaitingRetry && job.next_try_at.is_some_and(|at| at > now) {
                continue;
            }
            let tenant = job.tenant.clone();
            let catalog = self.catalog.clone();
            let layout = self.layout.clone();
            let handle = self.running.spawn(async move {
                let id = job.id.clone();
                if let Err(e) = job::run(&job::JobContext { catalog: &catalog, layout: &layout }, job).await {
                    warn!(job = %id, error = %e, "import job interrupted; tried again shortly");
                }
            });
            self.busy.insert(handle.id(), tenant);
            if self.busy.len() >= WORKERS {
                break;
            }
        }
        Ok(())
    }
}
