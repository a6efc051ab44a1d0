//! The import leases this node holds: a tenant's jobs run here only while
//! the catalog says this node holds the tenant's lease (see the catalog's
//! `leases` module), so that nodes sharing a catalog never run two jobs of
//! one tenant at once.
//!
//! A lease is claimed before each job starts, kept while the tenant has
//! open jobs (the node goes on with the next one without a new race),
//! renewed every third of the lease timeout, and given back once the
//! tenant has nothing left to run here or the node stops.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use passerelle_catalog::{Catalog, CatalogError, TenantName, now_ms};
use tracing::warn;

/// The leases of one node.
#[derive(Debug)]
pub(crate) struct Leases {
    node: String,
    timeout: Duration,
    /// Tenants whose lease this node claimed and has not given back.
    held: HashSet<String>,
    /// When the held leases were last extended.
    renewed_at: Instant,
}

impl Leases {
    /// No lease held yet, for node `node`, whose leases live `timeout` past
    /// their last renewal.
    pub(crate) fn new(node: String, timeout: Duration) -> Self {
        Self { node, timeout, held: HashSet::new(), renewed_at: Instant::now() }
    }

    fn expiry(&self) -> i64 {
        now_ms().saturating_add(i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX))
    }

    /// Claims `tenant`'s lease to run `job_id`. `Some(fresh)` when this node
    /// holds it now, `fresh` when it did not before (another node may have
    /// run the tenant's jobs meanwhile: the caller reads the job again);
    /// `None` while another node holds it.
    pub(crate) async fn claim(
        &mut self,
        catalog: &Catalog,
        tenant: &TenantName,
        job_id: &str,
    ) -> Result<Option<bool>, CatalogError> {
        // Held, and renewed recently enough that it outlives two thirds of
        // the timeout: no need to ask (a burst of small files would
        // otherwise cost a catalog write each).
        if self.held.contains(tenant.as_str()) && self.renewed_at.elapsed() < self.timeout / 3 {
            return Ok(Some(false));
        }
        if !catalog.claim_import_lease(tenant, &self.node, job_id, self.expiry(), now_ms()).await? {
            self.held.remove(tenant.as_str());
            return Ok(None);
        }
        Ok(Some(self.held.insert(tenant.as_str().to_owned())))
    }

    /// Extends the held leases when a third of the timeout has passed since
    /// the last time. A lease found taken over meanwhile (this node could
    /// not reach the catalog for longer than the timeout) is forgotten: the
    /// tenant's next job claims it again.
    pub(crate) async fn renew_if_due(&mut self, catalog: &Catalog) {
        if self.renewed_at.elapsed() < self.timeout / 3 {
            return;
        }
        if self.held.is_empty() {
            self.renewed_at = Instant::now();
            return;
        }
        match catalog.renew_import_leases(&self.node, self.expiry()).await {
            Ok(kept) => {
                self.renewed_at = Instant::now();
                if usize::try_from(kept).unwrap_or(usize::MAX) < self.held.len() {
                    warn!(node = %self.node, held = self.held.len(), kept,
                          "import leases lost to another node (catalog out of reach too long?)");
                    self.held.clear();
                }
            }
            Err(e) => warn!(node = %self.node, error = %e, "import leases not renewed"),
        }
    }

    /// Gives back the leases of the tenants `keep` says have nothing to run here.
    pub(crate) async fn release_idle(&mut self, catalog: &Catalog, keep: impl Fn(&str) -> bool) {
        let idle: Vec<String> = self.held.iter().filter(|tenant| !keep(tenant)).cloned().collect();
        for tenant in idle {
            let Ok(name) = TenantName::parse(&tenant) else { continue };
            match catalog.release_import_lease(&name, &self.node).await {
                Ok(()) => {
                    self.held.remove(&tenant);
                }
                Err(e) => warn!(node = %self.node, tenant = %tenant, error = %e, "import lease not given back"),
            }
        }
    }

    /// Gives every lease back (the node stops): other nodes go on with
    /// the jobs at once rather than after the lease timeout.
    pub(crate) async fn release_all(&mut self, catalog: &Catalog) {
        match catalog.release_import_leases(&self.node).await {
            Ok(_) => self.held.clear(),
            Err(e) => warn!(node = %self.node, error = %e,
                            "import leases not given back: other nodes take the jobs over after the lease timeout"),
        }
    }
}
