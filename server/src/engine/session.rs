//! An authenticated session: one user of one tenant, from one address, with
//! the tenant's filesystem. Everything a front-end does on behalf of a user
//! goes through here so that it is audited the same way for every protocol.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use passerelle_catalog::{AuditEvent, Login, TenantName};

use super::fs::{FsError, TenantFs, TenantPath, Upload};
use super::limits::SessionPermit;
use super::uploads::UploadCompleted;
use super::{Engine, Protocol};

/// A logged-in user. Dropping it records the logout.
pub(crate) struct Session {
    engine: Engine,
    tenant: TenantName,
    login: Login,
    peer: SocketAddr,
    protocol: Protocol,
    fs: TenantFs,
    started: Instant,
    _permit: SessionPermit,
}

impl Session {
    pub(super) fn new(
        engine: Engine,
        tenant: TenantName,
        login: Login,
        peer: SocketAddr,
        protocol: Protocol,
        fs: TenantFs,
        permit: SessionPermit,
    ) -> Self {
        Self { engine, tenant, login, peer, protocol, fs, started: Instant::now(), _permit: permit }
    }

    /// The tenant's filesystem, confined to its tree.
    pub(crate) fn fs(&self) -> &TenantFs {
        &self.fs
    }

    /// The user's login.
    pub(crate) fn login(&self) -> &Login {
        &self.login
    }

    /// Records a file operation in the audit trail.
    pub(crate) fn record(
        &self,
        action: &str,
        path: Option<&TenantPath>,
        result: Result<(), &FsError>,
        bytes: Option<u64>,
        duration: Option<Duration>,
    ) {
        let (outcome, detail) = match result {
            Ok(()) => ("ok", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        self.audit(action, path.map(TenantPath::to_client_string), outcome, bytes, duration, detail);
    }

    /// Records a rename: the source is the path, the target goes in the detail.
    pub(crate) fn record_rename(&self, from: &TenantPath, to: &TenantPath, result: Result<(), &FsError>) {
        let (outcome, error) = match result {
            Ok(()) => ("ok", String::new()),
            Err(e) => ("failed", format!("; {e}")),
        };
        let detail = format!("to {}{error}", to.to_client_string());
        self.audit("rename", Some(from.to_client_string()), outcome, None, None, Some(detail));
    }

    /// Finishes an upload: the file appears under its final name, the upload
    /// is audited and the upload-completed event is emitted, in that order.
    pub(crate) async fn complete_upload(&self, upload: Upload, duration: Duration) -> Result<(), FsError> {
        let path = upload.path().clone();
        match upload.commit().await {
            Ok(done) => {
                self.record("upload", Some(&done.path), Ok(()), Some(done.size), Some(duration));
                self.engine.inner.uploads.publish(UploadCompleted {
                    tenant: self.tenant.to_string(),
                    login: self.login.to_string(),
                    path: done.path.to_client_string(),
                    size: done.size,
                    sha256: done.sha256.iter().map(|b| format!("{b:02x}")).collect(),
                });
                Ok(())
            }
            Err(e) => {
                self.record("upload", Some(&path), Err(&e), None, Some(duration));
                Err(e)
            }
        }
    }

    /// Records an upload that was interrupted and discarded.
    pub(crate) fn record_aborted_upload(&self, path: &TenantPath, bytes: u64, duration: Duration) {
        self.audit(
            "upload",
            Some(path.to_client_string()),
            "aborted",
            Some(bytes),
            Some(duration),
            Some("interrupted before completion; discarded".into()),
        );
    }

    fn audit(
        &self,
        action: &str,
        path: Option<String>,
        outcome: &str,
        bytes: Option<u64>,
        duration: Option<Duration>,
        detail: Option<String>,
    ) {
        self.engine.inner.audit.record(AuditEvent {
            actor: self.login.to_string(),
            tenant: Some(self.tenant.to_string()),
            login: Some(self.login.to_string()),
            ip: Some(self.peer.ip().to_string()),
            protocol: self.protocol.as_str().into(),
            action: action.into(),
            outcome: outcome.into(),
            path,
            bytes: bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            duration_ms: duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            detail,
            at: None,
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.audit("logout", None, "ok", None, Some(self.started.elapsed()), None);
    }
}
