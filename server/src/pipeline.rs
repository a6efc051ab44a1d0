//! Attaches the import pipeline to the running server: every
//! upload-completed event of the engine is announced to it (its own inbox
//! watcher and scans catch files placed by other means).

use std::time::Duration;

use passerelle_catalog::{Catalog, TenantName};
use passerelle_import::{Arrival, Pipeline};
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use crate::data_dir::DataDir;
use crate::engine::Engine;

/// Starts the pipeline and feeds it the engine's upload events.
pub(crate) async fn start(engine: &Engine, catalog: &Catalog, data_dir: &DataDir) -> anyhow::Result<Pipeline> {
    let retention = Duration::from_secs(u64::from(engine.config().archive.retention_days) * 86_400);
    let pipeline = Pipeline::start(catalog.clone(), data_dir.import_layout(), retention).await?;
    let mut uploads = engine.subscribe_uploads();
    let announcer = pipeline.announcer();
    tokio::spawn(async move {
        loop {
            match uploads.recv().await {
                Ok(upload) => {
                    let Ok(tenant) = TenantName::parse(&upload.tenant) else { continue };
                    if let Some(arrival) = Arrival::completed(tenant, &upload.path) {
                        announcer.announce(arrival);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "import pipeline missed upload events; the next inbox scan finds the files");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(pipeline)
}
