//! Disaster recovery: a snapshot becomes a data directory `serve` can start from. Its files are
//! restored into the new directory (the snapshot is laid out as one) and checked against the
//! manifest; PostgreSQL dumps are restored into databases of their original names (the catalog into
//! the database of `catalog.url`, tenant databases with their roles, which get the passwords the
//! restored catalog holds), refusing existing ones unless told to replace them; SQLite tenant
//! databases are pointed at their new place; each tenant gets an empty tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use passerelle_catalog::{Catalog, TenantName};
use passerelle_config::{BackupTarget, Config};
use passerelle_import::{Keyring, KeyringError, TenantDbProvisioner};

use super::manifest::{DatabaseEntry, Engine, Manifest};
use super::pg::PgDatabase;
use super::restic::{Restic, tail};
use super::snapshot::{CATALOG_SQLITE, TENANT_DB};
use super::{BackupError, private_dir, remove_dir};

/// What a restore rebuilt.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The snapshot restored (short id).
    pub(crate) snapshot: String,
    /// The data directory, absolute.
    pub(crate) data_dir: PathBuf,
    /// The tenants it holds.
    pub(crate) tenants: usize,
    /// Files restored.
    pub(crate) files: usize,
    /// PostgreSQL databases recreated.
    pub(crate) databases: Vec<String>,
}

/// Restores `snapshot` into `to`, which must be absent or empty.
pub(super) async fn restore(
    target: &BackupTarget,
    config: &Config,
    snapshot: &str,
    to: &Path,
    replace: bool,
) -> Result<Restored, BackupError> {
    let to = prepare_target(to)?;
    let work = to.join(".restore-work");
    let restic = Restic::new(target, &work);
    let restored = restore_files(&restic, snapshot, &to).await;
    remove_dir(&work)?;
    let snapshot = restored?;
    let manifest = Manifest::read(&to)?;
    let failures = manifest.check_files(&to);
    if !failures.is_empty() {
        return Err(BackupError::Invalid(format!(
            "the restored files differ from the manifest: {}",
            failures.join("; ")
        )));
    }
    let plan = Plan::of(config, &manifest)?;
    plan.refuse_existing(replace).await?;
    let catalog_url = restore_catalog(config, &manifest, &to, replace).await?;
    // The master key is not in the backup: the operator's offline copy,
    // where keys.master_key_file names it, opens the tenants' passwords.
    let catalog = Catalog::open(&catalog_url).await?;
    let master_key = crate::master_key::open(config, &catalog)
        .await
        .map_err(|e| BackupError::Invalid(format!("restored catalog: {e}")))?
        .key;
    let catalog = catalog.with_audit_key(crate::master_key::audit_key(&master_key));
    let keyring = Keyring::new(catalog.clone(), Arc::new(master_key));
    let mut databases = plan.catalog.iter().cloned().collect::<Vec<_>>();
    let tenants = catalog.tenants().await?;
    for entry in manifest.databases.iter().filter(|d| d.tenant.is_some()) {
        if let Some(name) = restore_tenant(config, &catalog, &keyring, &to, entry, replace).await? {
            databases.push(name);
        }
    }
    for tenant in &tenants {
        let root = to.join("tenants").join(&tenant.name);
        for dir in [root.join("inbox"), root.join("outbox")] {
            private_dir(&dir)?;
        }
    }
    catalog.close().await;
    let manifest_file = to.join(super::manifest::FILE);
    fs::remove_file(&manifest_file).map_err(|e| BackupError::io(&manifest_file, e))?;
    Ok(Restored { snapshot, data_dir: to, tenants: tenants.len(), files: manifest.files.len(), databases })
}

/// Restores the files of `snapshot` (`latest`: the latest snapshot) into `to`; returns its short id.
async fn restore_files(restic: &Restic, snapshot: &str, to: &Path) -> Result<String, BackupError> {
    let snapshot = if snapshot == "latest" {
        let snapshots = restic.snapshots().await?;
        let latest = snapshots.into_iter().max_by(|a, b| a.time.cmp(&b.time));
        latest
            .map(|s| s.short_id)
            .ok_or_else(|| BackupError::Invalid("the repository holds no passerelle snapshot".into()))?
    } else {
        snapshot.to_owned()
    };
    let restored = restic.restore(&snapshot, to).await?;
    if !restored.ok {
        return Err(BackupError::Tool {
            what: format!("restic restore {snapshot}"),
            message: tail(restored.output.as_bytes()),
        });
    }
    Ok(snapshot)
}

/// Makes `to` (0700) unless it exists; refuses one that is not empty. Returns it absolute.
fn prepare_target(to: &Path) -> Result<PathBuf, BackupError> {
    if to.exists() {
        let mut entries = fs::read_dir(to).map_err(|e| BackupError::io(to, e))?;
        if entries.next().is_some() {
            return Err(BackupError::Invalid(format!(
                "{}: not empty; restore into a new or empty directory",
                to.display()
            )));
        }
    }
    private_dir(to)?;
    fs::canonicalize(to).map_err(|e| BackupError::io(to, e))
}

/// The PostgreSQL databases a restore creates, checked before anything is changed.
struct Plan {
    /// The administrator connection that creates them.
    admin: Option<PgDatabase>,
    /// The catalog's database, when the catalog is on PostgreSQL.
    catalog: Option<String>,
    /// The tenants' databases on PostgreSQL.
    tenants: Vec<String>,
}

impl Plan {
    fn of(config: &Config, manifest: &Manifest) -> Result<Self, BackupError> {
        let catalog_entry = manifest.databases.iter().find(|d| d.tenant.is_none());
        let catalog_on_pg = catalog_entry.is_some_and(|d| d.engine == Engine::Postgres);
        if catalog_on_pg != config.catalog.is_postgres() {
            let (backup, configured) = if catalog_on_pg { ("PostgreSQL", "SQLite") } else { ("SQLite", "PostgreSQL") };
            return Err(BackupError::Invalid(format!(
                "the backup's catalog is on {backup} but catalog.url is {configured}; configure the catalog as it was"
            )));
        }
        let tenants: Vec<String> = manifest
            .databases
            .iter()
            .filter(|d| d.tenant.is_some() && d.engine == Engine::Postgres)
            .filter_map(|d| d.database.clone())
            .collect();
        if !tenants.is_empty() && config.tenant_db.admin_url.is_none() {
            return Err(BackupError::Invalid(
                "the backup's tenant databases are on PostgreSQL: set tenant_db.backend = \"postgres\" and \
                 tenant_db.admin_url to the server to restore them on"
                    .into(),
            ));
        }
        let catalog = catalog_on_pg.then(|| PgDatabase::parse(&config.catalog.url).map(|db| db.name())).transpose()?;
        let admin = match (&config.tenant_db.admin_url, catalog_on_pg) {
            (Some(url), _) => Some(PgDatabase::parse(url)?),
            (None, true) => Some(PgDatabase::parse(&config.catalog.url)?.with_name("postgres")),
            (None, false) => None,
        };
        Ok(Self { admin, catalog, tenants })
    }

    /// Refuses databases that exist already, unless `replace`.
    async fn refuse_existing(&self, replace: bool) -> Result<(), BackupError> {
        let Some(admin) = &self.admin else { return Ok(()) };
        if replace {
            return Ok(());
        }
        let mut existing = Vec::new();
        for name in self.catalog.iter().chain(&self.tenants) {
            if admin.database_exists(name).await? {
                existing.push(name.clone());
            }
        }
        if existing.is_empty() {
            return Ok(());
        }
        Err(BackupError::Invalid(format!(
            "PostgreSQL database(s) {} exist already; refusing to overwrite them (drop them, or pass \
             --replace-databases to drop and recreate them)",
            existing.join(", ")
        )))
    }
}

/// Puts the catalog in place; returns its URL.
async fn restore_catalog(
    config: &Config,
    manifest: &Manifest,
    to: &Path,
    replace: bool,
) -> Result<String, BackupError> {
    let Some(entry) = manifest.databases.iter().find(|d| d.tenant.is_none()) else {
        return Err(BackupError::Invalid("the manifest lists no catalog".into()));
    };
    if entry.engine == Engine::Sqlite {
        return Ok(format!("sqlite://{}", to.join(CATALOG_SQLITE).display()));
    }
    let catalog = PgDatabase::parse(&config.catalog.url)?;
    let admin = match &config.tenant_db.admin_url {
        Some(url) => PgDatabase::parse(url)?,
        None => catalog.with_name("postgres"),
    };
    let name = catalog.name();
    if replace {
        admin.drop_database(&name).await?;
    }
    admin.create_database(&name, &catalog.user()).await?;
    let dump = to.join(&entry.file);
    catalog.restore(&dump).await?;
    fs::remove_file(&dump).map_err(|e| BackupError::io(&dump, e))?;
    Ok(config.catalog.url.clone())
}

/// Restores one tenant's database; returns the PostgreSQL database it recreated.
async fn restore_tenant(
    config: &Config,
    catalog: &Catalog,
    keyring: &Keyring,
    to: &Path,
    entry: &DatabaseEntry,
    replace: bool,
) -> Result<Option<String>, BackupError> {
    let tenant = TenantName::parse(entry.tenant.as_deref().unwrap_or_default())
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    let file = to.join(&entry.file);
    let database = match keyring.tenant_database(&tenant).await {
        Ok(database) => database,
        // Added while the backup was taken, after the catalog's copy: nothing refers to it.
        Err(KeyringError::Catalog(passerelle_catalog::CatalogError::NotFound(_))) => {
            fs::remove_file(&file).map_err(|e| BackupError::io(&file, e))?;
            return Ok(None);
        }
        Err(e) => return Err(BackupError::Database(format!("tenant {tenant}: {e}"))),
    };
    if entry.engine == Engine::Sqlite {
        let place = to.join(TENANT_DB).join(format!("{tenant}.db"));
        let name = place.display().to_string();
        catalog.relocate_tenant_database(&tenant, &name, &format!("sqlite://{name}")).await?;
        return Ok(None);
    }
    let admin_url = config.tenant_db.admin_url.as_deref().unwrap_or_default();
    let provisioner = TenantDbProvisioner::postgres(admin_url, &config.tenant_db.name_prefix)
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    provisioner
        .recreate(&database, replace)
        .await
        .map_err(|e| BackupError::Database(format!("tenant {tenant}: {e}")))?;
    PgDatabase::parse(&database.url)?.restore(&file).await?;
    fs::remove_file(&file).map_err(|e| BackupError::io(&file, e))?;
    Ok(Some(database.name))
}
