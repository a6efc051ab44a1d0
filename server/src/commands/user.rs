//! `user add/list/remove/passwd/lock/unlock`.

use passerelle_catalog::{LockState, Login, TenantName};

use super::{parse_networks, password_from_stdin, read_keys};
use crate::admin::Admin;
use crate::cli::UserCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

pub(super) async fn run(admin: &Admin, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Add { tenant, login, password_stdin, keys, no_credentials, allow_ip } => {
            add(admin, &tenant, &login, password_stdin, &keys, no_credentials, &allow_ip).await?;
        }
        UserCommand::AllowIp { login, change } => {
            let login = Login::parse(&login)?;
            let tenant = tenant_of(admin, &login).await?;
            let allowed = if change.clear { Vec::new() } else { parse_networks("--set", &change.set)? };
            admin.catalog.set_user_allowed_ips(&login, &allowed).await?;
            let shown = if allowed.is_empty() {
                "any".to_owned()
            } else {
                allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            };
            admin.audit("user_allow_ip", Some(&tenant), Some(&login), Some(shown.clone())).await?;
            say!("user {login}: allowed ips {shown}");
        }
        UserCommand::List { tenant, json } => {
            let tenant = tenant.as_deref().map(TenantName::parse).transpose()?;
            if let Some(name) = &tenant
                && admin.catalog.tenant(name).await?.is_none()
            {
                return Err(usage(format!("tenant {name} not found")));
            }
            let users = admin.catalog.users(tenant.as_ref()).await?;
            if json.json {
                return output::json(&users);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let state = match u.lock_state(passerelle_catalog::now_ms()) {
                        LockState::ByAdmin => "locked".to_owned(),
                        LockState::Until(until) => format!("locked until {}", output::timestamp(until)),
                        LockState::Unlocked => "active".to_owned(),
                    };
                    vec![
                        u.login.clone(),
                        u.tenant.clone(),
                        if u.has_password { "yes" } else { "no" }.to_owned(),
                        u.key_count.to_string(),
                        if u.allowed_ips.is_empty() { "any".to_owned() } else { u.allowed_ips.join(",") },
                        state,
                    ]
                })
                .collect();
            output::table(&["LOGIN", "TENANT", "PASSWORD", "KEYS", "ALLOWED IPS", "STATE"], &rows);
        }
        UserCommand::Remove { login } => {
            let login = Login::parse(&login)?;
            let tenant = tenant_of(admin, &login).await?;
            admin.catalog.remove_user(&login).await?;
            admin.audit("user_remove", Some(&tenant), Some(&login), None).await?;
            say!("user {login} removed");
        }
        UserCommand::Passwd { login, password_stdin: _ } => {
            let login = Login::parse(&login)?;
            let tenant = tenant_of(admin, &login).await?;
            let hash = admin.checked_hash(&password_from_stdin()?, &tenant, &login)?;
            admin.catalog.set_password_hash(&login, &hash).await?;
            admin.audit("user_passwd", Some(&tenant), Some(&login), None).await?;
            say!("password of {login} changed");
        }
        UserCommand::Lock { login } => set_lock(admin, &login, true).await?,
        UserCommand::Unlock { login } => set_lock(admin, &login, false).await?,
    }
    Ok(())
}

/// `user add`: every input is read and checked before the catalog is touched.
async fn add(
    admin: &Admin,
    tenant: &str,
    login: &str,
    password_stdin: bool,
    keys: &[std::path::PathBuf],
    no_credentials: bool,
    allow_ip: &[String],
) -> Result<(), CliError> {
    let tenant = TenantName::parse(tenant)?;
    let login = Login::parse(login)?;
    // A user nobody can log in as is almost always a forgotten flag.
    if !password_stdin && keys.is_empty() && !no_credentials {
        return Err(usage(format!(
            "user add {login}: no --password-stdin and no --key, so {login} could never log in; give one, \
             or pass --no-credentials to create the user without any"
        )));
    }
    let allowed = parse_networks("--allow-ip", allow_ip)?;
    // Every input is read and checked before the catalog is touched.
    let mut parsed = Vec::new();
    for file in keys {
        parsed.extend(read_keys(file)?);
    }
    let password = if password_stdin { Some(password_from_stdin()?) } else { None };
    admin.add_user(&tenant, &login, password.as_deref(), &parsed, &allowed).await?;
    say!("user {login} created in tenant {tenant}");
    Ok(())
}

async fn set_lock(admin: &Admin, login: &str, locked: bool) -> Result<(), CliError> {
    let login = Login::parse(login)?;
    let tenant = tenant_of(admin, &login).await?;
    admin.catalog.set_admin_lock(&login, locked).await?;
    let action = if locked { "user_lock" } else { "user_unlock" };
    admin.audit(action, Some(&tenant), Some(&login), None).await?;
    say!("user {login} {}", if locked { "locked" } else { "unlocked" });
    Ok(())
}

/// The tenant of an existing user; an unknown login is a refused input.
pub(super) async fn tenant_of(admin: &Admin, login: &Login) -> Result<TenantName, CliError> {
    let user = admin.catalog.user(login).await?.ok_or_else(|| usage(format!("login {login} not found")))?;
    Ok(TenantName::parse(&user.tenant)?)
}
