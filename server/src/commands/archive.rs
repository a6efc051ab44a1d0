//! `archive verify/decrypt`: reading the encrypted archive of imported
//! originals back.

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use passerelle_catalog::TenantName;
use passerelle_import::{ArchiveCheck, RunnerError};
use serde::Serialize;

use super::existing_tenant;
use crate::admin::Admin;
use crate::cli::ArchiveCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

/// One checked archive, for `--json`.
#[derive(Serialize)]
struct Checked<'a> {
    tenant: &'a str,
    job_id: &'a str,
    path: String,
    ok: bool,
    bytes: Option<u64>,
    error: Option<String>,
}

impl<'a> From<&'a ArchiveCheck> for Checked<'a> {
    fn from(check: &'a ArchiveCheck) -> Self {
        Self {
            tenant: &check.tenant,
            job_id: &check.job_id,
            path: check.path.display().to_string(),
            ok: check.outcome.is_ok(),
            bytes: check.outcome.as_ref().ok().copied(),
            error: check.outcome.as_ref().err().map(ToString::to_string),
        }
    }
}

pub(super) async fn run(admin: &Admin, command: ArchiveCommand) -> Result<(), CliError> {
    match command {
        ArchiveCommand::Verify { tenant, json } => verify(admin, tenant.as_deref(), json.json).await,
        ArchiveCommand::Decrypt { file, output } => decrypt(admin, &file, output.as_deref()).await,
    }
}

/// Decrypts every archive (of one tenant) against its recorded SHA-256;
/// any failure, each named, makes the command fail.
async fn verify(admin: &Admin, tenant: Option<&str>, json: bool) -> Result<(), CliError> {
    let tenants = match tenant {
        Some(name) => vec![existing_tenant(admin, name).await?],
        None => admin.catalog.tenants().await?.iter().map(|t| TenantName::parse(&t.name)).collect::<Result<_, _>>()?,
    };
    let layout = admin.data_dir.import_layout();
    let checks = passerelle_import::verify_archives(&admin.catalog, &admin.keyring(), &layout, &tenants)
        .await
        .map_err(|e| CliError::Runtime(e.into()))?;
    let failed = checks.iter().filter(|check| check.outcome.is_err()).count();
    if json {
        output::json(&checks.iter().map(Checked::from).collect::<Vec<_>>())?;
    } else {
        for check in &checks {
            match &check.outcome {
                Ok(bytes) => say!("ok      {} {} ({bytes} bytes)", check.tenant, check.job_id),
                Err(e) => say!("FAILED  {} {} {}: {e}", check.tenant, check.job_id, check.path.display()),
            }
        }
        say!("{} archived originals verified, {failed} failed", checks.len());
    }
    if failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{failed} of {} archived originals failed verification",
            checks.len()
        )));
    }
    Ok(())
}

/// Decrypts one archive file to `output` (a new 0600 file) or standard output.
async fn decrypt(admin: &Admin, file: &Path, output: Option<&Path>) -> Result<(), CliError> {
    if !file.is_file() {
        return Err(usage(format!("{}: not a file", file.display())));
    }
    let keyring = admin.keyring();
    let decrypted = match output {
        None => passerelle_import::decrypt_archive(&keyring, file.to_path_buf(), std::io::stdout()).await,
        Some(out) => {
            let created = OpenOptions::new().write(true).create_new(true).mode(0o600).open(out);
            let created = created.map_err(|e| usage(format!("{}: {e}", out.display())))?;
            let done = passerelle_import::decrypt_archive(&keyring, file.to_path_buf(), BufWriter::new(created)).await;
            if done.is_err() {
                // Never leave part of an original behind.
                let _ = std::fs::remove_file(out);
            }
            done
        }
    };
    match decrypted {
        Ok(_) => Ok(()),
        Err(e @ RunnerError::Archive(_)) => {
            Err(CliError::Runtime(anyhow::anyhow!("{}: cannot be decrypted: {e}", file.display())))
        }
        Err(e) => Err(CliError::Runtime(e.into())),
    }
}
