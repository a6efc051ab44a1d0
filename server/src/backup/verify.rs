//! A verification: the latest snapshot is restored into a scratch directory (every blob read from the
//! repository and authenticated), every file checked against the manifest, every SQLite database
//! checked with `PRAGMA integrity_check` and counted, every PostgreSQL dump restored into a scratch
//! database (dropped after) and counted, and `restic check` reads a rotating share of the
//! repository's packs, so that every pack is read within the retention. When the restore or the
//! files fail, the whole repository is read, to name the damaged packs.

use std::path::Path;
use std::time::{Duration, Instant};

use passerelle_config::Config;

use super::BackupError;
use super::manifest::{DatabaseEntry, Engine, Manifest};
use super::pg::PgDatabase;
use super::restic::{Restic, Snapshot, damaged_packs, tail};

/// What a verification found.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The snapshot checked; `None` when the repository has none.
    pub(crate) snapshot: Option<Snapshot>,
    /// Files in its manifest.
    pub(crate) files: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Databases checked.
    pub(crate) databases: usize,
    /// The share of packs read (`k/n`), or `all`.
    pub(crate) read: String,
    /// Every problem, naming its file, database or pack; empty: the backup is good.
    pub(crate) failures: Vec<String>,
    /// How long it took.
    pub(crate) took: Duration,
}

/// This period's share of packs, `k/n`: with `n` periods of `verify_interval` in the retention,
/// the shares 1..n come round in turn, so every pack is read within `retention_days`.
pub(super) fn rotating_share(retention_days: u32, verify_interval: Duration) -> String {
    let period = verify_interval.as_secs().max(1);
    let parts = (u64::from(retention_days) * 86_400 / period).clamp(1, 10_000);
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    format!("{}/{parts}", (now / period) % parts + 1)
}

/// Verifies the latest snapshot in `scratch` (an empty directory); `subset` `None`: read every pack.
pub(super) async fn verify(
    restic: &Restic,
    config: &Config,
    scratch: &Path,
    subset: Option<&str>,
) -> Result<Verified, BackupError> {
    let started = Instant::now();
    let mut verified = Verified {
        snapshot: None,
        files: 0,
        bytes: 0,
        databases: 0,
        read: subset.unwrap_or("all").to_owned(),
        failures: Vec::new(),
        took: Duration::ZERO,
    };
    let snapshots = restic.snapshots().await?;
    let Some(latest) = snapshots.into_iter().max_by(|a, b| a.time.cmp(&b.time)) else {
        verified.failures.push("the repository holds no passerelle snapshot".into());
        return Ok(Verified { took: started.elapsed(), ..verified });
    };
    let restored = restic.restore(&latest.id, scratch).await?;
    let mut damaged = !restored.ok;
    if !restored.ok {
        verified.failures.push(format!(
            "restore of snapshot {}: {}",
            latest.short_id,
            tail(restored.output.as_bytes())
        ));
    }
    match Manifest::read(scratch) {
        Ok(manifest) => {
            let files = manifest.check_files(scratch);
            damaged |= !files.is_empty();
            verified.failures.extend(files);
            verified.files = manifest.files.len();
            verified.bytes = manifest.bytes();
            verified.databases = manifest.databases.len();
            for database in &manifest.databases {
                if let Err(e) = check_database(config, scratch, database, &mut verified.failures).await {
                    verified.failures.push(format!("{}: {e}", database.file));
                }
            }
        }
        Err(e) => {
            damaged = true;
            verified.failures.push(e.to_string());
        }
    }
    // Damage found: read everything, so that the report names every damaged pack.
    let share = if damaged { None } else { subset };
    let checked = restic.check(share).await?;
    if !checked.ok || damaged {
        let packs = damaged_packs(&checked.output);
        if packs.is_empty() && !checked.ok {
            verified.failures.push(format!("restic check: {}", tail(checked.output.as_bytes())));
        }
        for pack in packs {
            verified.failures.push(format!("damaged pack data/{}/{pack}", &pack[..2]));
        }
    }
    if share.is_none() {
        "all".clone_into(&mut verified.read);
    }
    verified.snapshot = Some(latest);
    Ok(Verified { took: started.elapsed(), ..verified })
}

/// Checks one restored database against the manifest; problems go to `failures`.
async fn check_database(
    config: &Config,
    scratch: &Path,
    database: &DatabaseEntry,
    failures: &mut Vec<String>,
) -> Result<(), BackupError> {
    let file = scratch.join(&database.file);
    let rows = match database.engine {
        Engine::Sqlite => {
            let path = file.clone();
            let (problem, rows) = tokio::task::spawn_blocking(move || {
                Ok::<_, BackupError>((super::sqlite::integrity_problem(&path)?, super::sqlite::row_counts(&path)?))
            })
            .await
            .map_err(|e| BackupError::Invalid(e.to_string()))??;
            if let Some(problem) = problem {
                failures.push(format!("{}: integrity_check: {problem}", database.file));
            }
            rows
        }
        Engine::Postgres => restored_rows(config, &file).await?,
    };
    if rows != database.rows {
        failures.push(format!(
            "{}: row counts differ from the manifest (restored {rows:?}, manifest {:?})",
            database.file, database.rows
        ));
    }
    Ok(())
}

/// Restores a dump into a scratch database on the configured PostgreSQL server, counts its rows and
/// drops it.
async fn restored_rows(config: &Config, dump: &Path) -> Result<std::collections::BTreeMap<String, u64>, BackupError> {
    let admin_url = config.tenant_db.admin_url.as_deref().unwrap_or(&config.catalog.url);
    let admin = PgDatabase::parse(admin_url)?;
    let name = format!("passerelle_verify_{:016x}", rand::random::<u64>());
    admin.create_database(&name, &admin.user()).await?;
    let scratch = admin.with_name(&name);
    let counted = async {
        scratch.restore(dump).await?;
        scratch.row_counts().await
    }
    .await;
    let dropped = admin.drop_database(&name).await;
    let rows = counted?;
    dropped?;
    Ok(rows)
}
