//! `tenant copy-anonymized SOURCE --to TARGET | --to-file FILE`: the tables
//! of a tenant's import profiles, personal columns replaced, into a
//! test-zone tenant or a standalone SQLite file.

use std::path::Path;

use anyhow::Context as _;
use passerelle_catalog::TenantName;
use passerelle_import::{CopyObserver, CopyTarget, Profiles, TableCopied, copy_anonymized, source_tables};
use serde::Serialize;

use super::existing_tenant;
use crate::admin::Admin;
use crate::cli::CopyAnonymizedArgs;
use crate::error::{CliError, usage};
use crate::output::{self, say};
use crate::progress::Progress;

/// The audit action of a copy; its detail names source, target, tables and
/// rows, never a value.
const AUDIT_ACTION: &str = "tenant_copy_anonymized";

/// What a copy did: printed with `--json`, and the audit event's detail.
#[derive(Serialize)]
struct CopyReport {
    source: String,
    target: String,
    tables: Vec<TableCopied>,
    /// Tables of the source no profile names: not copied.
    skipped_tables: Vec<String>,
}

pub(super) async fn run(admin: &Admin, args: CopyAnonymizedArgs) -> Result<(), CliError> {
    let source = existing_tenant(admin, &args.source).await?;
    if is_test_zone(admin, &source).await? {
        return Err(usage(format!("tenant {source} is a test zone: it cannot be the source of a copy")));
    }
    let target_tenant = match &args.target.to {
        Some(name) => Some(test_zone_target(admin, &source, name).await?),
        None => None,
    };
    if let Some(file) = &args.target.to_file
        && file.symlink_metadata().is_ok()
    {
        return Err(usage(format!("{}: exists already; a copy goes to a new file", file.display())));
    }
    let text = admin.catalog.import_profiles(&source).await?.unwrap_or_default();
    let profiles = Profiles::parse(&text).map_err(|e| usage(format!("tenant {source}'s profiles: {e}")))?;
    if profiles.is_empty() {
        return Err(usage(format!(
            "tenant {source} has no import profile: profiles say which tables are copied and which columns are personal"
        )));
    }
    let keyring = admin.keyring();
    let source_db = keyring.tenant_database(&source).await.with_context(|| format!("tenant {source}"))?;
    let target_db = match &target_tenant {
        Some(name) => Some(keyring.tenant_database(name).await.with_context(|| format!("tenant {name}"))?),
        None => None,
    };
    let skipped_tables = unprofiled_tables(&source_db, &profiles).await.with_context(|| format!("tenant {source}"))?;
    for table in &skipped_tables {
        // Standard error: standard output may be JSON for a script.
        eprintln!("passerelle: warning: table {table} of tenant {source} is named by no profile; not copied");
    }
    let (target, target_name) = match (&target_db, &target_tenant, &args.target.to_file) {
        (Some(database), Some(name), _) => (CopyTarget::Tenant(database), format!("tenant {name}")),
        (_, _, Some(file)) => (CopyTarget::File(file), format!("file {}", absolute(file))),
        _ => return Err(usage("give --to TENANT or --to-file FILE")),
    };
    let mut observer = Bars { bar: None };
    let tables = copy_anonymized(&source_db, target, &profiles, &mut observer)
        .await
        .with_context(|| format!("copying tenant {source} to {target_name}"))?;
    drop(observer);
    for table in tables.iter().filter(|t| t.personal_columns.is_empty()) {
        eprintln!(
            "passerelle: warning: table {} has no personal column in tenant {source}'s profiles: copied as it is",
            table.table
        );
    }
    let report = CopyReport { source: source.to_string(), target: target_name, tables, skipped_tables };
    let detail = serde_json::to_string(&report).context("cannot write the audit detail")?;
    admin.audit(AUDIT_ACTION, Some(&source), None, Some(detail)).await?;
    if args.json.json {
        return output::json(&report);
    }
    for table in &report.tables {
        let personal =
            if table.personal_columns.is_empty() { "none".to_owned() } else { table.personal_columns.join(", ") };
        say!("table {}: {} rows copied (personal columns replaced: {personal})", table.table, table.rows);
    }
    say!("tenant {source} copied anonymized to {}", report.target);
    Ok(())
}

async fn is_test_zone(admin: &Admin, tenant: &TenantName) -> Result<bool, CliError> {
    Ok(admin.catalog.tenant(tenant).await?.is_some_and(|t| t.test_zone))
}

/// The `--to` tenant: another tenant, flagged as a test zone.
async fn test_zone_target(admin: &Admin, source: &TenantName, name: &str) -> Result<TenantName, CliError> {
    let target = existing_tenant(admin, name).await?;
    if target == *source {
        return Err(usage(format!("tenant {source} cannot be copied onto itself")));
    }
    if !is_test_zone(admin, &target).await? {
        return Err(usage(format!(
            "tenant {target} is not a test zone (create one with tenant add NAME --test-zone); copies go only there"
        )));
    }
    Ok(target)
}

/// The tables of the source database no profile names.
async fn unprofiled_tables(
    database: &passerelle_catalog::TenantDatabase,
    profiles: &Profiles,
) -> anyhow::Result<Vec<String>> {
    let tables = source_tables(database).await?;
    Ok(tables.into_iter().filter(|t| !profiles.iter().any(|p| p.table() == t)).collect())
}

/// `file` as an absolute path, for the audit trail.
fn absolute(file: &Path) -> String {
    std::path::absolute(file).unwrap_or_else(|_| file.to_owned()).display().to_string()
}

/// One progress bar per table, on a terminal.
struct Bars {
    bar: Option<Progress>,
}

impl CopyObserver for Bars {
    fn table_started(&mut self, table: &str, rows: u64) {
        // The previous table's bar is cleared first.
        self.bar = None;
        self.bar = Some(Progress::bar(rows, format!("table {table}")));
    }

    fn rows_copied(&mut self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.advance(rows);
        }
    }
}
