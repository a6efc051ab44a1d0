//! Tells a service manager (systemd, `Type=notify`) when the server is ready and when it stops.
//! Without `NOTIFY_SOCKET` in the environment (not started by systemd) nothing is sent.

use sd_notify::NotifyState;
use tracing::warn;

/// The listeners are bound and the keys read: clients can connect.
pub(crate) fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A shutdown started: sessions are being closed.
pub(crate) fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// A failed notification is logged, never fatal: the server works without its manager knowing.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
