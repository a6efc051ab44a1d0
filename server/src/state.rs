//! The state `serve` needs and creates at its first start: the data
//! directory, the catalog, the master key, the SSH host keys and the FTPS
//! certificate.
//! `init` runs exactly this and nothing else, so both create the same things.

use std::path::Path;

use anyhow::Context as _;
use passerelle_config::Config;
use passerelle_keys::{HostKeys, KeyError, TlsIdentity};

use crate::admin::Admin;
use crate::error::CliError;

/// Everything a server needs from its data directory, ready.
pub(crate) struct State {
    /// The opened data directory and catalog.
    pub(crate) admin: Admin,
    /// The SSH host keys.
    pub(crate) host_keys: HostKeys,
    /// The FTPS certificate and key.
    pub(crate) tls: TlsIdentity,
    /// What did not exist before and was created, for people (`init` prints it).
    pub(crate) created: Vec<String>,
}

/// Opens the data directory, catalog, host keys and TLS identity, creating
/// those that are absent, and says which were.
pub(crate) async fn prepare(config: Config) -> Result<State, CliError> {
    let mut created = Vec::new();
    if !config.data_dir.exists() {
        created.push(format!("data directory {}", config.data_dir.display()));
    }
    let catalog_file = sqlite_file(&config.catalog.url);
    if catalog_file.as_deref().is_some_and(|file| !file.exists()) {
        created.push(format!("catalog {}", config.catalog.redacted_url()));
    }
    let admin = Admin::create(config).await?;
    if admin.created_master_key {
        created.push(format!(
            "master key {} (keep an offline copy: without it no archive can be decrypted)",
            admin.config.keys.master_key_file.display()
        ));
    }
    seal_clear_passwords(&admin).await?;
    let dir = admin.data_dir.host_keys();
    let host_keys = match HostKeys::load(&dir) {
        Ok(keys) => keys,
        Err(KeyError::MissingHostKey { .. }) => {
            created.push(format!("SSH host keys in {}", dir.display()));
            HostKeys::load_or_generate(&dir).context("SSH host keys")?
        }
        Err(e) => return Err(anyhow::Error::new(e).context("SSH host keys").into()),
    };
    let (cert, key) = (&admin.config.ftps.cert, &admin.config.ftps.key);
    if !cert.exists() && !key.exists() {
        created.push(format!("self-signed FTPS certificate {} and key {}", cert.display(), key.display()));
    }
    let tls = TlsIdentity::load_or_generate(cert, key).context("FTPS certificate")?;
    Ok(State { admin, host_keys, tls, created })
}

/// Tenant database passwords an earlier version kept in clear in the
/// catalog are sealed with their tenants' data keys.
async fn seal_clear_passwords(admin: &Admin) -> Result<(), CliError> {
    let keyring = admin.keyring();
    for tenant in admin.catalog.tenants().await? {
        let name = passerelle_catalog::TenantName::parse(&tenant.name)?;
        if keyring.seal_clear_password(&name).await.with_context(|| format!("tenant {name}"))? {
            tracing::info!(tenant = %name, "tenant database password sealed in the catalog");
        }
    }
    Ok(())
}

/// The file of a `sqlite://` catalog URL (`None` for other databases).
pub(crate) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:///var/lib/p/catalog.db"), Some("/var/lib/p/catalog.db".into()));
        assert_eq!(sqlite_file("sqlite://data/catalog.db?mode=rwc"), Some("data/catalog.db".into()));
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
