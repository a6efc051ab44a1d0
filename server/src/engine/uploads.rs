//! Upload-completed events: one per file whose upload finished cleanly,
//! never for an interrupted one. Each goes to the import pipeline's intake
//! before the upload is acknowledged to its client, so the file is taken
//! (and its `received` receipt written) by the time the client looks.

use std::sync::OnceLock;

use passerelle_import::Intake;
use passerelle_tree::UploadCompleted;

/// Where completed uploads go.
pub(super) struct UploadEvents {
    intake: OnceLock<Intake>,
}

impl UploadEvents {
    pub(super) fn new() -> Self {
        Self { intake: OnceLock::new() }
    }

    /// Hands later events to `intake` (only the first call counts).
    pub(super) fn attach(&self, intake: Intake) {
        let _ = self.intake.set(intake);
    }

    /// The pipeline's intake, once attached.
    pub(super) fn intake(&self) -> Option<&Intake> {
        self.intake.get()
    }

    pub(super) async fn publish(&self, event: UploadCompleted) {
        tracing::info!(
            tenant = %event.tenant, login = %event.login, path = %event.path,
            size = event.size, sha256 = %event.sha256, "upload completed"
        );
        // No pipeline yet (the server is starting) is fine: the file stays
        // in the inbox for the pipeline's first scan.
        if let Some(intake) = self.intake.get() {
            intake.upload_completed(&event).await;
        }
    }
}
