//! `tenant add/allow-ip/quota/list/show/remove/purge-report`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use passerelle_catalog::{Tenant, TenantName};

use super::{parse_networks, quota};
use crate::admin::Admin;
use crate::cli::TenantCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};
use crate::purge::PurgeReport;

pub(super) async fn run(admin: &Admin, command: TenantCommand) -> Result<(), CliError> {
    match command {
        TenantCommand::Add { name, allow_ip, test_zone } => add(admin, &name, &allow_ip, test_zone).await?,
        TenantCommand::CopyAnonymized(args) => super::copy_anonymized::run(admin, args).await?,
        TenantCommand::AllowIp { name, change } => {
            let name = TenantName::parse(&name)?;
            let allowed = if change.clear { Vec::new() } else { parse_networks("--set", &change.set)? };
            admin.catalog.set_tenant_allowed_ips(&name, &allowed).await?;
            let shown = if allowed.is_empty() {
                "any".to_owned()
            } else {
                allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            };
            admin.audit("tenant_allow_ip", Some(&name), None, Some(shown.clone())).await?;
            say!("tenant {name}: allowed ips {shown}");
        }
        TenantCommand::Quota { name, change } => quota::set(admin, &name, change).await?,
        TenantCommand::List(flag) => {
            let tenants = admin.catalog.tenants().await?;
            if flag.json {
                return output::json(&tenants);
            }
            let rows: Vec<Vec<String>> = tenants.iter().map(row).collect();
            output::table(&["TENANT", "CREATED", "DATABASE", "ALLOWED IPS", "ZONE"], &rows);
        }
        TenantCommand::Show { name, json } => {
            let name = TenantName::parse(&name)?;
            let tenant = admin.catalog.tenant(&name).await?.ok_or_else(|| usage(format!("tenant {name} not found")))?;
            if json.json {
                return quota::show_json(admin, &name, &tenant);
            }
            say!("tenant:      {}", tenant.name);
            say!("created:     {}", output::timestamp(tenant.created_at));
            say!("database:    {} {}", tenant.database_backend, tenant.database_name);
            if let Some(role) = &tenant.database_role {
                say!("db account:  {role}");
            }
            say!("allowed ips: {}", allowed_ips(&tenant));
            if tenant.test_zone {
                say!("zone:        test (receives anonymized copies)");
            }
            say!("users:       {}", admin.catalog.users(Some(&name)).await?.len());
            for line in quota::show_lines(admin, &name, &tenant)? {
                say!("{line}");
            }
        }
        TenantCommand::Remove { name, purge, yes, json } => {
            let name = TenantName::parse(&name)?;
            if !purge {
                return Err(usage(format!(
                    "tenant remove destroys tenant {name}'s files, database and archives; pass --purge to confirm"
                )));
            }
            if !yes {
                confirm(&name)?;
            }
            let report = admin.remove_tenant(&name).await?;
            if json {
                return output::json(&report);
            }
            say!("tenant {name} removed");
        }
        TenantCommand::PurgeReport { name, json } => {
            let name = TenantName::parse(&name)?;
            let report = PurgeReport::latest(&admin.catalog, &name).await?;
            if json.json {
                return output::json(&report);
            }
            for line in report.lines() {
                say!("{line}");
            }
        }
    }
    Ok(())
}

/// `tenant add`.
async fn add(admin: &Admin, name: &str, allow_ip: &[String], test_zone: bool) -> Result<(), CliError> {
    let name = TenantName::parse(name)?;
    let allowed = parse_networks("--allow-ip", allow_ip)?;
    admin.add_tenant(&name, &allowed, test_zone).await?;
    let zone = if test_zone { " (test zone)" } else { "" };
    say!("tenant {name} created{zone}");
    Ok(())
}

/// Asks the operator to type the tenant name; without a terminal, `--yes` is required.
fn confirm(name: &TenantName) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!("tenant remove {name}: not a terminal; pass --yes to confirm")));
    }
    eprint!("This destroys tenant {name}'s files, database and archives. Type the tenant name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| usage(e.to_string()))?;
    if answer.trim() != name.as_str() {
        return Err(usage("not confirmed; nothing was removed"));
    }
    Ok(())
}

fn row(tenant: &Tenant) -> Vec<String> {
    vec![
        tenant.name.clone(),
        output::timestamp(tenant.created_at),
        format!("{} {}", tenant.database_backend, tenant.database_name),
        allowed_ips(tenant),
        if tenant.test_zone { "test" } else { "-" }.to_owned(),
    ]
}

fn allowed_ips(tenant: &Tenant) -> String {
    if tenant.allowed_ips.is_empty() { "any".into() } else { tenant.allowed_ips.join(",") }
}
