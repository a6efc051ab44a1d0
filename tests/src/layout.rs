//! Where passerelle keeps things under its data directory, as the tests see
//! it from outside. This module is the only place in the tests that knows
//! the layout; everything else asks it.
//!
//! ```text
//! <data_dir>/
//!   catalog.db           the catalog (SQLite installations)
//!   hostkeys/            SSH host keys
//!   tls/                 FTPS certificate and key
//!   tenants/<tenant>/    a tenant's tree: inbox/, outbox/
//!   tenant-db/           per-tenant SQLite databases
//!   spool/<tenant>/      files the import pipeline is working on
//!   archive/<tenant>/    archived originals
//! ```

use std::path::PathBuf;

/// The layout of one data directory.
#[derive(Clone, Debug)]
pub struct DataLayout {
    root: PathBuf,
}

impl DataLayout {
    /// The layout of the data directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The SQLite catalog database.
    pub fn catalog_db(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    /// The directory of the SSH host keys.
    pub fn host_keys(&self) -> PathBuf {
        self.root.join("hostkeys")
    }

    /// The TLS certificate the server presents (generated at the first `serve`).
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls/cert.pem")
    }

    /// The private key of [`DataLayout::tls_cert`].
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls/key.pem")
    }

    /// The directory holding every tenant tree.
    pub fn tenants(&self) -> PathBuf {
        self.root.join("tenants")
    }

    /// A tenant's tree: what its users see as `/`.
    pub fn tenant_root(&self, tenant: &str) -> PathBuf {
        self.tenants().join(tenant)
    }

    /// A tenant's `/inbox`.
    pub fn inbox(&self, tenant: &str) -> PathBuf {
        self.tenant_root(tenant).join("inbox")
    }

    /// A tenant's `/outbox`.
    pub fn outbox(&self, tenant: &str) -> PathBuf {
        self.tenant_root(tenant).join("outbox")
    }

    /// The directory of the per-tenant SQLite databases.
    pub fn tenant_dbs(&self) -> PathBuf {
        self.root.join("tenant-db")
    }

    /// A tenant's own SQLite database file.
    pub fn tenant_db(&self, tenant: &str) -> PathBuf {
        self.tenant_dbs().join(format!("{tenant}.db"))
    }

    /// Where a tenant's originals are archived, one file per import job.
    pub fn archive(&self, tenant: &str) -> PathBuf {
        self.root.join("archive").join(tenant)
    }

    /// Where the import pipeline keeps a tenant's files while their jobs run.
    pub fn spool(&self, tenant: &str) -> PathBuf {
        self.root.join("spool").join(tenant)
    }
}
