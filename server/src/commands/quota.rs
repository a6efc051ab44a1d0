//! `tenant quota`, and the quota half of `tenant show`: a tenant's limits
//! come from its own override in the catalog, else from `[quotas]` in the
//! configuration; its usage is measured the way the server measures it.

use passerelle_catalog::{Tenant, TenantName, TenantQuota};
use passerelle_config::{ByteSize, QuotasConfig};
use serde::Serialize;

use crate::admin::Admin;
use crate::cli::QuotaChange;
use crate::error::{CliError, usage};
use crate::output::say;
use crate::progress::Progress;
use crate::usage::{Usage, tenant_usage};

/// Where a limit comes from.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Origin {
    /// The tenant's own override (`tenant quota`).
    Tenant,
    /// `[quotas]` of the configuration.
    Default,
}

/// One limit in force; `limit: None` is unlimited.
#[derive(Clone, Copy, Debug, Serialize)]
struct Limit {
    limit: Option<u64>,
    from: Origin,
}

impl Limit {
    fn of(own: Option<u64>, default: Option<u64>) -> Self {
        match own {
            Some(limit) => Self { limit: Some(limit), from: Origin::Tenant },
            None => Self { limit: default, from: Origin::Default },
        }
    }

    /// `"10 GiB (tenant override)"`, `"10000 (default [quotas])"`, `"unlimited"`.
    fn label(self, show: fn(u64) -> String) -> String {
        let Some(limit) = self.limit else { return "unlimited".to_owned() };
        match self.from {
            Origin::Tenant => format!("{} (tenant override)", show(limit)),
            Origin::Default => format!("{} (default [quotas])", show(limit)),
        }
    }

    /// `"9.8 GiB of 10 GiB (tenant override)"`, `"123, unlimited"`.
    fn describe(self, used: u64, show: fn(u64) -> String) -> String {
        match self.limit {
            Some(_) => format!("{} of {}", show(used), self.label(show)),
            None => format!("{}, unlimited", show(used)),
        }
    }
}

/// Both limits of a tenant.
#[derive(Clone, Copy, Debug, Serialize)]
struct Limits {
    bytes: Limit,
    files: Limit,
}

impl Limits {
    fn of(quota: TenantQuota, defaults: QuotasConfig) -> Self {
        Self {
            bytes: Limit::of(quota.bytes, defaults.bytes.map(ByteSize::bytes)),
            files: Limit::of(quota.files, defaults.files),
        }
    }
}

/// What a tenant stores, exactly, for `--json`.
#[derive(Debug, Serialize)]
struct Stored {
    bytes: u64,
    files: u64,
}

/// `tenant show --json`: the tenant, what it stores and its limits.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    tenant: &'a Tenant,
    usage: Stored,
    limits: Limits,
}

/// `tenant quota NAME (--bytes SIZE --files N | --clear)`: changes the
/// override, audits it, and prints the limits now in force.
pub(super) async fn set(admin: &Admin, name: &str, change: QuotaChange) -> Result<(), CliError> {
    let name = TenantName::parse(name)?;
    let detail = if change.clear {
        admin.catalog.clear_tenant_quota(&name).await?;
        "cleared".to_owned()
    } else {
        let bytes = change
            .bytes
            .as_deref()
            .map(|text| ByteSize::parse(text).map_err(|e| usage(format!("--bytes: {e}"))))
            .transpose()?;
        if bytes.is_some_and(|size| size.bytes() == 0) {
            return Err(usage("--bytes: must be at least 1 byte (--clear removes the tenant's own quota)"));
        }
        if change.files == Some(0) {
            return Err(usage("--files: must be at least 1 (--clear removes the tenant's own quota)"));
        }
        admin.catalog.set_tenant_quota(&name, bytes.map(ByteSize::bytes), change.files).await?;
        let mut parts = Vec::new();
        parts.extend(bytes.map(|b| format!("bytes {b}")));
        parts.extend(change.files.map(|n| format!("files {n}")));
        parts.join(", ")
    };
    admin.audit("tenant_quota", Some(&name), None, Some(detail)).await?;
    let tenant = admin.catalog.tenant(&name).await?.ok_or_else(|| usage(format!("tenant {name} not found")))?;
    let limits = Limits::of(tenant.quota, admin.config.quotas);
    say!(
        "tenant {name}: quota bytes {}, files {}",
        limits.bytes.label(ByteSize::human),
        limits.files.label(|n| n.to_string())
    );
    Ok(())
}

/// Measures what `tenant` stores.
fn measure(admin: &Admin, tenant: &TenantName) -> Result<Usage, CliError> {
    // It walks the tenant's whole tree and archive: say so on a terminal.
    let _measuring = Progress::spinner(format!("measuring what tenant {tenant} stores"));
    tenant_usage(&admin.data_dir, tenant)
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("tenant {tenant}: cannot measure its usage: {e}")))
}

/// The `bytes:` and `files:` lines of `tenant show`.
pub(super) fn show_lines(admin: &Admin, name: &TenantName, tenant: &Tenant) -> Result<[String; 2], CliError> {
    let usage = measure(admin, name)?;
    let limits = Limits::of(tenant.quota, admin.config.quotas);
    Ok([
        format!("bytes:       {}", limits.bytes.describe(usage.bytes, ByteSize::human)),
        format!("files:       {}", limits.files.describe(usage.files, |n| n.to_string())),
    ])
}

/// `tenant show --json`.
pub(super) fn show_json(admin: &Admin, name: &TenantName, tenant: &Tenant) -> Result<(), CliError> {
    let usage = measure(admin, name)?;
    let limits = Limits::of(tenant.quota, admin.config.quotas);
    crate::output::json(&Shown { tenant, usage: Stored { bytes: usage.bytes, files: usage.files }, limits })
}
