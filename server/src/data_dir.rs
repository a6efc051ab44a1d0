//! The data directory and its layout. Everything passerelle keeps lives here;
//! tenant trees are one branch of it, so every other branch (databases,
//! keys, archives) is out of every client's reach.
//!
//! ```text
//! <data_dir>/            0700
//!   catalog.db           the catalog (SQLite default)
//!   hostkeys/            SSH host keys, 0600
//!   tls/                 FTPS certificate and key, key 0600
//!   tenants/<tenant>/    what a tenant's users see: inbox/, outbox/
//!   tenant-db/           per-tenant SQLite databases, 0600
//!   spool/<tenant>/      files taken by the import pipeline while their jobs run
//!   archive/<tenant>/    archived originals
//!   backup/              backups' work directory (see `crate::backup`), never itself backed up
//! ```

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use passerelle_catalog::TenantName;

use crate::error::{CliError, usage};

/// A data directory that exists with safe permissions.
#[derive(Clone, Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (0700) when absent; refuses one that other users
    /// can write to, since they could plant files that we would trust.
    pub(crate) fn open(root: &Path) -> Result<Self, CliError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("data_dir {}: cannot create: {e}", root.display())))?;
        Self::checked(root)
    }

    /// The directory at `root`, which must exist already: every command but
    /// `serve` and `init` refuses to run without it rather than create state
    /// an operator did not ask for (issue #18), say in the wrong directory.
    pub(crate) fn open_existing(root: &Path) -> Result<Self, CliError> {
        if !root.is_dir() {
            return Err(missing(root));
        }
        Self::checked(root)
    }

    /// Refuses a directory that other users can write to, since they could
    /// plant files that we would trust.
    fn checked(root: &Path) -> Result<Self, CliError> {
        let meta =
            fs::metadata(root).map_err(|e| CliError::Runtime(anyhow::anyhow!("data_dir {}: {e}", root.display())))?;
        if meta.mode() & 0o022 != 0 {
            return Err(usage(format!(
                "data_dir {}: is writable by group or others (mode {:o}); refusing to start: chmod 700 {}",
                root.display(),
                meta.mode() & 0o777,
                root.display()
            )));
        }
        let me = nix::unistd::Uid::effective();
        if meta.uid() != me.as_raw() {
            // Root could go on, but what it creates (a tenant's tree, its
            // database) would be out of the owner's reach: the service
            // would then fail on them, later and far from the cause.
            let owner = user_name(nix::unistd::Uid::from_raw(meta.uid()));
            return Err(usage(format!(
                "data_dir {}: belongs to user {owner}, not to {}; run passerelle as {owner} \
                 (sudo -u {owner} passerelle ...), so that what it creates stays the service's",
                root.display(),
                user_name(me)
            )));
        }
        Ok(Self { root: root.to_path_buf() })
    }

    /// The directory itself (its filesystem's free space is watched).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where SSH host keys live.
    pub(crate) fn host_keys(&self) -> PathBuf {
        self.root.join("hostkeys")
    }

    /// The tree a tenant's users see.
    pub(crate) fn tenant_root(&self, tenant: &TenantName) -> PathBuf {
        self.root.join("tenants").join(tenant.as_str())
    }

    /// Per-tenant SQLite databases.
    pub(crate) fn tenant_databases(&self) -> PathBuf {
        self.root.join("tenant-db")
    }

    /// A tenant's archived originals.
    pub(crate) fn tenant_archive(&self, tenant: &TenantName) -> PathBuf {
        self.root.join("archive").join(tenant.as_str())
    }

    /// A tenant's files taken by the import pipeline, while their jobs run.
    pub(crate) fn tenant_spool(&self, tenant: &TenantName) -> PathBuf {
        self.root.join("spool").join(tenant.as_str())
    }

    /// Where the import pipeline finds the tenant trees and keeps files.
    pub(crate) fn import_layout(&self) -> passerelle_import::Layout {
        passerelle_import::Layout::new(self.root.join("tenants"), self.root.join("spool"), self.root.join("archive"))
    }
}

/// The one-line refusal of a command run where no data directory exists.
pub(crate) fn missing(root: &Path) -> CliError {
    usage(format!(
        "no passerelle data directory at {}; pass --data-dir or --config, or run `passerelle init`",
        root.display()
    ))
}

/// The name of `uid` in the password database, or `uid N` when it has no
/// entry (a container's arbitrary uid).
pub(crate) fn user_name(uid: nix::unistd::Uid) -> String {
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}
