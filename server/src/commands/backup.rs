//! `backup run/verify/list/restore`: what `serve` does on its schedule, by hand, and the
//! disaster-recovery restore. Runs and verifications are recorded in the audit trail.

use std::path::Path;

use passerelle_config::Config;
use serde_json::json;

use crate::admin::Admin;
use crate::backup::{BackupError, Backups, Sources};
use crate::cli::BackupCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

pub(super) async fn run(config: Config, command: BackupCommand) -> Result<(), CliError> {
    let Some(backups) = Backups::of(&config)? else {
        return Err(usage("backups are off: set backup.repository and backup.password_file"));
    };
    match command {
        BackupCommand::Run(flag) => run_backup(&backups, Admin::open(config).await?, flag.json).await,
        BackupCommand::Verify { read_all, json } => {
            verify(&backups, Admin::open(config).await?, read_all, json.json).await
        }
        BackupCommand::List(flag) => list(&backups, flag.json).await,
        BackupCommand::Restore { snapshot, to, replace_databases } => {
            restore(&backups, &config, &snapshot, &to, replace_databases).await
        }
    }
}

fn failed(e: BackupError) -> CliError {
    CliError::Runtime(anyhow::Error::new(e))
}

async fn run_backup(backups: &Backups, admin: Admin, as_json: bool) -> Result<(), CliError> {
    let keyring = admin.keyring();
    let sources =
        Sources { config: &admin.config, catalog: &admin.catalog, keyring: &keyring, data_dir: &admin.data_dir };
    let result = backups.run(&sources, "manual").await;
    admin.catalog.record(&crate::backup::report::run_event(admin.actor(), "cli", &result)).await?;
    let stored = result.map_err(failed)?;
    if as_json {
        return output::json(&json!({
            "snapshot": stored.snapshot,
            "files": stored.files,
            "bytes": stored.bytes,
            "added_bytes": stored.added,
            "copy_ms": stored.copy.as_millis(),
            "duration_ms": stored.took.as_millis(),
        }));
    }
    say!(
        "snapshot {} stored in {}: {} files, {} bytes ({} added to the repository) in {:.1} s",
        stored.snapshot,
        backups.repository(),
        stored.files,
        stored.bytes,
        stored.added,
        stored.took.as_secs_f64()
    );
    Ok(())
}

async fn verify(backups: &Backups, admin: Admin, read_all: bool, as_json: bool) -> Result<(), CliError> {
    let mut result = backups.verify(&admin.config, read_all).await;
    if let Ok(verified) = &mut result {
        crate::backup::check_live_archive(&admin.catalog, &admin.keyring(), &admin.data_dir, verified).await;
    }
    admin.catalog.record(&crate::backup::report::verify_event(admin.actor(), "cli", &result)).await?;
    let verified = result.map_err(failed)?;
    let snapshot = verified.snapshot.as_ref().map_or("-", |s| s.short_id.as_str());
    if as_json {
        output::json(&json!({
            "snapshot": snapshot,
            "files": verified.files,
            "bytes": verified.bytes,
            "databases": verified.databases,
            "packs_read": verified.read,
            "failures": verified.failures,
            "duration_ms": verified.took.as_millis(),
        }))?;
    } else {
        for failure in &verified.failures {
            say!("FAILED: {failure}");
        }
        let verdict = if verified.failures.is_empty() { "verified" } else { "NOT verified" };
        say!(
            "snapshot {snapshot} {verdict}: {} files, {} bytes, {} databases, packs read {}, in {:.1} s",
            verified.files,
            verified.bytes,
            verified.databases,
            verified.read,
            verified.took.as_secs_f64()
        );
    }
    if verified.failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Runtime(anyhow::anyhow!("backup verification failed: {} failure(s)", verified.failures.len())))
    }
}

async fn list(backups: &Backups, as_json: bool) -> Result<(), CliError> {
    let snapshots = backups.list().await.map_err(failed)?;
    if as_json {
        return output::json(&snapshots);
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| vec![s.short_id.clone(), s.time.clone(), s.tags.join(","), s.hostname.clone()])
        .collect();
    output::table(&["SNAPSHOT", "TIME", "TAGS", "HOST"], &rows);
    Ok(())
}

async fn restore(backups: &Backups, config: &Config, snapshot: &str, to: &Path, replace: bool) -> Result<(), CliError> {
    if snapshot != "latest" && !(snapshot.len() >= 8 && snapshot.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(usage(format!("{snapshot:?}: not a snapshot id (as `backup list` prints it) nor \"latest\"")));
    }
    let restored = backups.restore(config, snapshot, to, replace).await.map_err(failed)?;
    say!(
        "snapshot {} restored into {}: {} tenants, {} files{}",
        restored.snapshot,
        restored.data_dir.display(),
        restored.tenants,
        restored.files,
        if restored.databases.is_empty() {
            String::new()
        } else {
            format!(", PostgreSQL databases {}", restored.databases.join(", "))
        }
    );
    say!("start the server from it: passerelle serve --data-dir {}", restored.data_dir.display());
    Ok(())
}
