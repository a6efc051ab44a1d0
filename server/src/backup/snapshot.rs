//! The copy a backup stores: everything needed to rebuild the service, laid out as a data
//! directory, with its manifest. Databases are copied consistently (SQLite `VACUUM INTO`,
//! PostgreSQL `pg_dump` in one snapshot); host keys and the TLS identity are copied; the archive's
//! files, written once and never changed, are hard-linked.
//!
//! ```text
//! manifest.json            sizes, SHA-256 sums, row counts
//! catalog.db | catalog.pgdump
//! tenant-db/<tenant>.db | tenant-db/<tenant>.pgdump
//! hostkeys/                SSH host keys
//! tls/cert.pem, key.pem    FTPS identity
//! archive/<tenant>/        archived originals
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use passerelle_catalog::{Catalog, TenantName};
use passerelle_config::Config;
use passerelle_import::{Keyring, KeyringError};

use super::BackupError;
use super::manifest::{DatabaseEntry, Engine, FORMAT, FileEntry, Manifest};
use super::pg::PgDatabase;
use crate::data_dir::DataDir;

/// The catalog copy's name for each engine.
pub(super) const CATALOG_SQLITE: &str = "catalog.db";
/// See [`CATALOG_SQLITE`].
pub(super) const CATALOG_PG: &str = "catalog.pgdump";
/// Where tenant database copies go.
pub(super) const TENANT_DB: &str = "tenant-db";

/// What a backup is taken from.
pub(crate) struct Sources<'a> {
    /// The configuration (catalog URL, TLS files).
    pub(crate) config: &'a Config,
    /// The live catalog.
    pub(crate) catalog: &'a Catalog,
    /// Opens the tenants' database passwords, sealed in the catalog.
    pub(crate) keyring: &'a Keyring,
    /// The data directory.
    pub(crate) data_dir: &'a DataDir,
}

/// Fills the empty directory `staging` with the copy and its manifest.
pub(super) async fn stage(sources: &Sources<'_>, staging: &Path) -> Result<Manifest, BackupError> {
    let taken_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut databases = vec![copy_catalog(sources.config, staging).await?];
    let tenant_dir = staging.join(TENANT_DB);
    super::private_dir(&tenant_dir)?;
    for tenant in sources.catalog.tenants().await? {
        let name = TenantName::parse(&tenant.name).map_err(|e| BackupError::Invalid(e.to_string()))?;
        if let Some(entry) = copy_tenant(sources.catalog, sources.keyring, &name, &tenant_dir).await? {
            databases.push(entry);
        }
    }
    let root = sources.data_dir.root().to_path_buf();
    let tls = [(sources.config.ftps.cert.clone(), "cert.pem"), (sources.config.ftps.key.clone(), "key.pem")];
    let target = staging.to_path_buf();
    let files = tokio::task::spawn_blocking(move || copy_files(&root, &tls, &target))
        .await
        .map_err(|e| BackupError::Invalid(format!("copying files: {e}")))??;
    let manifest = Manifest { format: FORMAT, taken_at, files, databases };
    manifest.write(staging)?;
    Ok(manifest)
}

/// Copies the catalog: `VACUUM INTO` on SQLite, `pg_dump` on PostgreSQL.
async fn copy_catalog(config: &Config, staging: &Path) -> Result<DatabaseEntry, BackupError> {
    if config.catalog.is_postgres() {
        let database = PgDatabase::parse(&config.catalog.url)?;
        let rows = database.dump(&staging.join(CATALOG_PG)).await?;
        return Ok(DatabaseEntry {
            file: CATALOG_PG.into(),
            engine: Engine::Postgres,
            tenant: None,
            database: Some(database.name()),
            rows,
        });
    }
    let source = crate::state::sqlite_file(&config.catalog.url)
        .ok_or_else(|| BackupError::Invalid("catalog.url: no SQLite file to copy".into()))?;
    let rows = sqlite_copy(source, staging.join(CATALOG_SQLITE)).await?;
    Ok(DatabaseEntry { file: CATALOG_SQLITE.into(), engine: Engine::Sqlite, tenant: None, database: None, rows })
}

/// Copies one tenant's database; `None` when the tenant went away meanwhile.
async fn copy_tenant(
    catalog: &Catalog,
    keyring: &Keyring,
    tenant: &TenantName,
    dir: &Path,
) -> Result<Option<DatabaseEntry>, BackupError> {
    let database = match keyring.tenant_database(tenant).await {
        Ok(database) => database,
        Err(KeyringError::Catalog(passerelle_catalog::CatalogError::NotFound(_))) => return Ok(None),
        Err(e) => return Err(BackupError::Database(format!("tenant {tenant}: {e}"))),
    };
    let (file, engine, name, rows) = if database.backend == "postgres" {
        let file = format!("{tenant}.pgdump");
        let rows = PgDatabase::parse(&database.url)?.dump(&dir.join(&file)).await?;
        (file, Engine::Postgres, Some(database.name), rows)
    } else {
        let file = format!("{tenant}.db");
        let source = PathBuf::from(&database.name);
        if !source.exists() && catalog.tenant(tenant).await?.is_none() {
            return Ok(None);
        }
        (file.clone(), Engine::Sqlite, None, sqlite_copy(source, dir.join(&file)).await?)
    };
    Ok(Some(DatabaseEntry {
        file: format!("{TENANT_DB}/{file}"),
        engine,
        tenant: Some(tenant.to_string()),
        database: name,
        rows,
    }))
}

/// `VACUUM INTO` then counts, on a blocking thread.
async fn sqlite_copy(source: PathBuf, target: PathBuf) -> Result<std::collections::BTreeMap<String, u64>, BackupError> {
    tokio::task::spawn_blocking(move || {
        super::sqlite::vacuum_into(&source, &target)?;
        super::sqlite::row_counts(&target)
    })
    .await
    .map_err(|e| BackupError::Invalid(format!("copying a SQLite database: {e}")))?
}

/// Copies host keys and the TLS identity, links the archive, and measures every file of `staging`.
fn copy_files(root: &Path, tls: &[(PathBuf, &str)], staging: &Path) -> Result<Vec<FileEntry>, BackupError> {
    let hostkeys = root.join("hostkeys");
    for file in files_under(&hostkeys)? {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        place(&file, &staging.join(relative), false)?;
    }
    for (source, name) in tls {
        if source.exists() {
            place(source, &staging.join("tls").join(name), false)?;
        }
    }
    let archive = root.join("archive");
    for file in files_under(&archive)? {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        // An original that went (retention, a retry) between the listing and now is not an error.
        match place(&file, &staging.join(relative), true) {
            Err(BackupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    let mut entries = Vec::new();
    for file in files_under(staging)? {
        let relative = file.strip_prefix(staging).unwrap_or(&file);
        let name = relative.to_string_lossy().into_owned();
        if name != super::manifest::FILE {
            entries.push(FileEntry::of(&file, &name)?);
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// Puts a copy of `source` at `target` (parents made 0700): a hard link when `link` and the
/// filesystem allows it, else a copy.
fn place(source: &Path, target: &Path, link: bool) -> Result<(), BackupError> {
    if let Some(parent) = target.parent() {
        super::private_dir(parent)?;
    }
    if link && fs::hard_link(source, target).is_ok() {
        return Ok(());
    }
    fs::copy(source, target).map(drop).map_err(|e| BackupError::io(source, e))
}

/// Every regular file under `dir` (none when it does not exist), symbolic links not followed.
pub(super) fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(&current, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| BackupError::io(&current, e))?;
            let kind = entry.file_type().map_err(|e| BackupError::io(&entry.path(), e))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}
