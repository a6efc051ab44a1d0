//! Where the runner finds inboxes and keeps files: every path it touches is
//! built here, from a checked tenant name and a job id it made itself.
//!
//! ```text
//!  <tenants>/<tenant>/inbox/…      files arrive (clients write here)
//!  <tenants>/<tenant>/outbox/…     receipts (clients read here)
//!  <spool>/<tenant>/<job id>       a taken file while its job runs
//!  <archive>/<tenant>/<job id>     the original once its job ended
//! ```
//!
//! Spool and archive sit outside every tenant tree, on the same filesystem
//! as the trees, so taking a file is one rename.

use std::path::{Path, PathBuf};

use passerelle_catalog::TenantName;

/// The directories the runner works in.
#[derive(Clone, Debug)]
pub struct Layout {
    tenants: PathBuf,
    spool: PathBuf,
    archive: PathBuf,
}

impl Layout {
    /// `tenants` holds one tree per tenant (`<tenant>/inbox`, `<tenant>/outbox`);
    /// `spool` and `archive` must be outside every tree.
    pub fn new(tenants: PathBuf, spool: PathBuf, archive: PathBuf) -> Self {
        Self { tenants, spool, archive }
    }

    /// The directory holding every tenant's tree.
    pub(crate) fn tenants(&self) -> &Path {
        &self.tenants
    }

    /// A tenant's inbox.
    pub(crate) fn inbox(&self, tenant: &TenantName) -> PathBuf {
        self.tenants.join(tenant.as_str()).join("inbox")
    }

    /// A tenant's outbox.
    pub(crate) fn outbox(&self, tenant: &TenantName) -> PathBuf {
        self.tenants.join(tenant.as_str()).join("outbox")
    }

    /// Where a tenant's taken files wait for their jobs.
    pub(crate) fn spool_dir(&self, tenant: &TenantName) -> PathBuf {
        self.spool.join(tenant.as_str())
    }

    /// The directory of every tenant's spool.
    pub(crate) fn spool_root(&self) -> &Path {
        &self.spool
    }

    /// Where a tenant's originals go when their jobs end.
    pub(crate) fn archive_dir(&self, tenant: &TenantName) -> PathBuf {
        self.archive.join(tenant.as_str())
    }
}
