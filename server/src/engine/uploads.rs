//! Upload-completed events: emitted once per file whose upload finished
//! cleanly, never for an interrupted one. The import pipeline subscribes.

use passerelle_tree::UploadCompleted;
use tokio::sync::broadcast;

/// The broadcast channel behind the events.
pub(super) struct UploadEvents {
    sender: broadcast::Sender<UploadCompleted>,
}

impl UploadEvents {
    pub(super) fn new() -> Self {
        // A lagging subscriber loses events, not the server; the pipeline's
        // inbox scan catches anything it missed.
        let (sender, _) = broadcast::channel(4096);
        Self { sender }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<UploadCompleted> {
        self.sender.subscribe()
    }

    pub(super) fn publish(&self, event: UploadCompleted) {
        tracing::info!(
            tenant = %event.tenant, login = %event.login, path = %event.path,
            size = event.size, sha256 = %event.sha256, "upload completed"
        );
        // No subscriber yet is fine: the file stays in the inbox for the scan.
        let _ = self.sender.send(event);
    }
}
