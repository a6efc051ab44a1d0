//! The engine every protocol front-end drives: authentication against the
//! catalog, the tenant filesystem, connection limits, the audit trail and the
//! upload-completed events. Front-ends parse their protocol and call in here;
//! they never touch the disk or the catalog themselves.
//!
//! ```text
//!   SFTP ─┐                 ┌─ auth     (catalog, argon2id, same answer for every failure)
//!   FTPS ─┼──► Engine ──────┼─ fs       (TenantFs: chrooted, cap-std)
//!         │      │          ├─ limits   (connections, sessions per user / per IP)
//!         │   Session       ├─ audit    (catalog + tracing)
//!         │                 └─ uploads  (upload-completed events → import pipeline)
//! ```

mod audit;
mod auth;
pub(crate) mod fs;
mod limits;
mod session;
mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;

use passerelle_catalog::Catalog;
use passerelle_config::Config;

pub(crate) use auth::Credentials;
pub(crate) use limits::{ConnectionPermit, Refusal};
pub(crate) use session::Session;

use crate::data_dir::DataDir;

/// Which front-end a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// SSH File Transfer Protocol.
    Sftp,
}

impl Protocol {
    /// The name used in logs and the audit trail.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sftp => "sftp",
        }
    }
}

/// Shared state of the running server; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    config: Arc<Config>,
    data_dir: DataDir,
    limits: limits::Limits,
    audit: audit::Auditor,
    uploads: uploads::UploadEvents,
}

impl Engine {
    /// Builds the engine over an opened catalog and data directory.
    pub(crate) fn new(config: Arc<Config>, catalog: Catalog, data_dir: DataDir) -> Self {
        let limits = limits::Limits::new(&config.limits);
        let audit = audit::Auditor::new(catalog.clone());
        Self {
            inner: Arc::new(Inner { catalog, config, data_dir, limits, audit, uploads: uploads::UploadEvents::new() }),
        }
    }

    /// The effective configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Admits a new connection from `peer`, or says why not (too many
    /// connections in total or from this address). The permit is held for
    /// the connection's lifetime.
    pub(crate) fn admit(&self, peer: SocketAddr, protocol: Protocol) -> Result<ConnectionPermit, Refusal> {
        let admitted = self.inner.limits.admit(peer.ip());
        if let Err(refusal) = &admitted {
            self.inner.audit.connection_refused(peer, protocol, refusal);
        }
        admitted
    }

    /// Waits until every audit event recorded so far is stored; called at
    /// shutdown, after the front-ends closed their sessions, so the last
    /// logouts reach the catalog before it closes.
    pub(crate) async fn flush_audit(&self) {
        self.inner.audit.flush().await;
    }
}
