//! Attaches the import pipeline to the running server: every upload the
//! engine completes goes to the pipeline's intake (its own inbox watcher
//! and scans catch files placed by other means).
//!
//! The pipeline runs on a runtime of its own whose threads have a lower CPU
//! priority than the transfers: a burst of imports (a validation pass over
//! every file, a receipt, an archive) must not slow down the clients still
//! uploading on the same cores. It has its own catalog connections, which
//! live and die with that runtime.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use passerelle_catalog::Catalog;
use passerelle_import::{Keyring, Pipeline, Retention, Settings};
use passerelle_keys::MasterKey;
use tokio::runtime::Runtime;
use tracing::debug;

use crate::data_dir::DataDir;
use crate::engine::Engine;

/// Threads of the pipeline's runtime (jobs of `pipeline.workers` tenants run
/// at once, but they mostly wait for the disk and the tenant databases).
const THREADS: usize = 2;
/// How much nicer than the server the pipeline's threads are (see nice(1)).
const NICER_BY: i32 = 10;

/// The running import pipeline and the runtime it runs on.
pub(crate) struct Imports {
    pipeline: Pipeline,
    _runtime: PipelineRuntime,
}

impl Imports {
    /// Stops the pipeline (see [`Pipeline::shutdown`]), then its runtime.
    pub(crate) async fn shutdown(self) {
        self.pipeline.shutdown().await;
    }
}

/// The pipeline's runtime, stopped without blocking when dropped: it is
/// dropped on a thread of the server's runtime (at shutdown, or when the
/// server fails to start), where dropping a runtime outright panics.
struct PipelineRuntime(Option<Runtime>);

impl Drop for PipelineRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts the pipeline and feeds it the engine's upload events.
pub(crate) async fn start(engine: &Engine, data_dir: &DataDir, master_key: Arc<MasterKey>) -> anyhow::Result<Imports> {
    let intake_master_key = Arc::clone(&master_key);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name("passerelle-import")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
        .context("cannot start the import pipeline's runtime")?;
    let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
    let settings = Settings {
        retention: Retention {
            archive: days(engine.config().archive.retention_days),
            receipts: days(engine.config().receipts.retention_days),
        },
        max_file_size: engine.config().uploads.max_file_size,
        workers: usize::try_from(engine.config().pipeline.workers).unwrap_or(1),
        node: engine.config().node.id.clone(),
        lease_timeout: engine.config().cluster.lease_timeout,
    };
    let catalog_url = engine.config().catalog.url.clone();
    let layout = data_dir.import_layout();
    let intake_layout = layout.clone();
    let space = engine.disk_space();
    let observer = engine.import_observer();
    let started = runtime.spawn(async move {
        let catalog = Catalog::open(&catalog_url).await?.with_audit_key(crate::master_key::audit_key(&master_key));
        let keyring = Keyring::new(catalog, master_key);
        anyhow::Ok(Pipeline::start(keyring, layout, settings, space, observer).await?)
    });
    let runtime = PipelineRuntime(Some(runtime));
    let pipeline = started.await??;
    // The intake records jobs where uploads complete: with the engine's
    // catalog, whose connections belong to the server's runtime.
    let intake_keyring = Keyring::new(engine.catalog().clone(), Arc::clone(&intake_master_key));
    engine.attach_intake(pipeline.intake(engine.catalog().clone(), intake_keyring, intake_layout));
    Ok(Imports { pipeline, _runtime: runtime })
}

/// Makes the calling thread `NICER_BY` nicer than the process. Best effort:
/// where the system refuses, the pipeline runs at the server's priority.
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};

    let thread = Some(rustix::thread::gettid());
    let lowered = getpriority_process(None).and_then(|nice| setpriority_process(thread, (nice + NICER_BY).min(19)));
    if let Err(e) = lowered {
        debug!(error = %e, "import pipeline: could not lower the thread priority");
    }
}
