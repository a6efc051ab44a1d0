//! Administration shared by the CLI and `serve --demo`: the steps that
//! create and destroy tenants and users, each undone when a later step fails,
//! and each recorded in the audit trail with the acting administrator.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context as _;
use ipnet::IpNet;
use passerelle_catalog::{AuditEvent, Catalog, Login, TenantName};
use passerelle_config::{Config, TenantDbBackend};
use passerelle_import::{Keyring, TenantDbProvisioner};
use passerelle_keys::{AuthorizedKey, MasterKey};

use crate::data_dir::DataDir;
use crate::error::{CliError, usage};
use crate::master_key;
use crate::progress::Progress;
use crate::purge::{self, PurgeReport};
use crate::removal;

/// How long `tenant remove` lets running servers end the tenant's live
/// sessions before it takes the tree apart: they check the catalog every
/// second.
const SESSIONS_END: std::time::Duration = std::time::Duration::from_secs(2);

/// An opened configuration, data directory and catalog, acting for one administrator.
pub(crate) struct Admin {
    pub(crate) config: Config,
    pub(crate) data_dir: DataDir,
    pub(crate) catalog: Catalog,
    /// The master key (`keys.master_key_file`), checked against the catalog's record of it.
    master_key: Arc<MasterKey>,
    /// Whether opening created the master key (a new installation).
    pub(crate) created_master_key: bool,
    provisioner: TenantDbProvisioner,
    actor: String,
}

impl Admin {
    /// Opens the existing data directory and the catalog (applying
    /// migrations); a missing data directory is refused, never created.
    pub(crate) async fn open(config: Config) -> Result<Self, CliError> {
        let data_dir = DataDir::open_existing(&config.data_dir)?;
        let admin = Self::with_data_dir(config, data_dir).await?;
        if admin.created_master_key {
            // Standard error: standard output may be JSON for a script.
            eprintln!(
                "passerelle: created master key {}; keep an offline copy of it",
                admin.config.keys.master_key_file.display()
            );
        }
        Ok(admin)
    }

    /// Opens the data directory and the catalog, creating them when absent:
    /// for `serve` and `init` only.
    pub(crate) async fn create(config: Config) -> Result<Self, CliError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        Self::with_data_dir(config, data_dir).await
    }

    async fn with_data_dir(config: Config, data_dir: DataDir) -> Result<Self, CliError> {
        let provisioner = match config.tenant_db.backend {
            TenantDbBackend::Sqlite => TenantDbProvisioner::Sqlite { dir: data_dir.tenant_databases() },
            TenantDbBackend::Postgres => TenantDbProvisioner::postgres(
                config.tenant_db.admin_url.as_deref().unwrap_or_default(),
                &config.tenant_db.name_prefix,
            )
            .map_err(|e| usage(e.to_string()))?,
        };
        let catalog = Catalog::open(&config.catalog.url)
            .await
            .with_context(|| format!("cannot open the catalog at {}", config.catalog.redacted_url()))?;
        let master_key::Opened { key, created } = master_key::open(&config, &catalog).await?;
        let catalog = catalog.with_audit_key(master_key::audit_key(&key));
        Ok(Self {
            config,
            data_dir,
            catalog,
            master_key: Arc::new(key),
            created_master_key: created,
            provisioner,
            actor: actor(),
        })
    }

    /// The tenants' data keys, under [`Admin::master_key`].
    pub(crate) fn keyring(&self) -> Keyring {
        Keyring::new(self.catalog.clone(), Arc::clone(&self.master_key))
    }

    /// The master key, loaded and checked when this was opened: what derives
    /// and wraps every other key (see [`MasterKey::derive`]).
    pub(crate) fn master_key(&self) -> &Arc<MasterKey> {
        &self.master_key
    }

    /// Creates a tenant: tree, own database and account, catalog row (flagged
    /// as a test zone when `test_zone`). On any failure the steps already
    /// done are undone.
    pub(crate) async fn add_tenant(
        &self,
        name: &TenantName,
        allowed_ips: &[IpNet],
        test_zone: bool,
    ) -> Result<(), CliError> {
        if self.catalog.tenant(name).await?.is_some() {
            return Err(usage(format!("tenant {name} already exists")));
        }
        let root = self.data_dir.tenant_root(name);
        if root.exists() {
            return Err(usage(format!(
                "tenant {name}: a leftover tree exists at {}; move it away first",
                root.display()
            )));
        }
        create_tree(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let database = match self.provisioner.create(name).await {
            Ok(database) => database,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(CliError::Runtime(anyhow::Error::new(e).context(format!("tenant {name}"))));
            }
        };
        // The data key is born with the tenant; its database password is
        // kept only sealed with it.
        let (key, stored_key) = self.keyring().new_tenant_key(name);
        let sealed = match Keyring::seal_database(&key, name, database.clone()) {
            Ok(sealed) => sealed,
            Err(e) => {
                let _ = self.provisioner.destroy(&database).await;
                let _ = fs::remove_dir_all(&root);
                return Err(CliError::Runtime(anyhow::Error::new(e).context(format!("tenant {name}"))));
            }
        };
        if let Err(e) = self.catalog.add_tenant_zone(name, allowed_ips, &sealed, &stored_key, test_zone).await {
            let _ = self.provisioner.destroy(&database).await;
            let _ = fs::remove_dir_all(&root);
            return Err(e.into());
        }
        // Standard error: standard output may be JSON for a script. A failed
        // look is no reason to undo the tenant.
        if let Ok(open) = self.provisioner.databases_open_to(&database).await
            && !open.is_empty()
        {
            eprintln!(
                "passerelle: warning: tenant {name}'s database role can also connect to {} (PUBLIC holds CONNECT \
                 there); close them: REVOKE CONNECT ON DATABASE <name> FROM PUBLIC",
                open.join(", ")
            );
        }
        let detail = test_zone.then(|| "test zone".to_owned());
        self.audit("tenant_add", Some(name), None, detail).await
    }

    /// Destroys a tenant's users' access, database, tree, archives, data key
    /// and catalog rows, and says what went ([`PurgeReport`], also kept in
    /// the audit trail). The data key goes last, with the catalog rows: a
    /// purge that fails half-way leaves the remaining archives readable.
    pub(crate) async fn remove_tenant(&self, name: &TenantName) -> Result<PurgeReport, CliError> {
        if self.catalog.tenant(name).await?.is_none() {
            return Err(usage(format!("tenant {name} not found")));
        }
        // Lock users out first, so nobody writes while the tenant is taken
        // apart, and let every node end their live sessions (saying why).
        self.catalog.mark_tenant_removing(name).await?;
        let users = self.catalog.users(Some(name)).await?;
        for user in &users {
            self.catalog.set_admin_lock(&Login::parse(&user.login)?, true).await?;
        }
        if !users.is_empty() {
            let _waiting = Progress::spinner(format!("ending the live sessions of tenant {name}'s users"));
            tokio::time::sleep(SESSIONS_END).await;
        }
        let database = self.catalog.tenant_database(name).await?;
        {
            let _dropping = Progress::spinner(format!("destroying tenant {name}'s database and account"));
            self.provisioner.destroy(&database).await.with_context(|| format!("tenant {name}"))?;
        }
        let roots =
            [self.data_dir.tenant_root(name), self.data_dir.tenant_spool(name), self.data_dir.tenant_archive(name)];
        let (data_dir, tenant) = (self.data_dir.clone(), name.clone());
        let measured = tokio::task::spawn_blocking(move || {
            let archived = fs::read_dir(data_dir.tenant_archive(&tenant)).map_or(0, |entries| entries.count() as u64);
            crate::usage::tenant_usage(&data_dir, &tenant).map(|usage| (usage, archived))
        });
        let (usage, archived) = measured
            .await
            .map_err(|e| anyhow::anyhow!("measuring files: {e}"))?
            .with_context(|| format!("tenant {name}: cannot measure its files"))?;
        let directories = roots.iter().filter(|dir| dir.exists()).map(|dir| dir.display().to_string()).collect();
        let what = format!("tenant {name}'s files");
        tokio::task::spawn_blocking(move || removal::remove_trees(&roots, &what))
            .await
            .map_err(|e| anyhow::anyhow!("removing files: {e}"))?
            .map_err(|(path, e)| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
        let data_key = self.catalog.tenant_key(name).await?.map(|key| key.key_id);
        self.catalog.remove_tenant(name).await?;
        let report = PurgeReport {
            tenant: name.to_string(),
            purged_at: crate::output::timestamp(passerelle_catalog::now_ms()),
            actor: self.actor.clone(),
            directories,
            files: usage.files,
            bytes: usage.bytes,
            archived_originals: archived,
            database: format!("{} {}", database.backend, database.name),
            database_role: database.role.clone(),
            data_key,
            users: users.iter().map(|user| user.login.clone()).collect(),
            catalog_rows: purge::CATALOG_ROWS.into(),
            backups: purge::BACKUPS.into(),
        };
        let detail = serde_json::to_string(&report).context("cannot write the purge report")?;
        self.audit(purge::PURGE_ACTION, Some(name), None, Some(detail)).await?;
        Ok(report)
    }

    /// Creates a user with an optional password (checked for strength and
    /// hashed here), SSH keys (already parsed, so already checked) and the
    /// networks it may log in from (empty: any).
    pub(crate) async fn add_user(
        &self,
        tenant: &TenantName,
        login: &Login,
        password: Option<&str>,
        keys: &[AuthorizedKey],
        allowed_ips: &[IpNet],
    ) -> Result<(), CliError> {
        if self.catalog.tenant(tenant).await?.is_none() {
            return Err(usage(format!("tenant {tenant} not found")));
        }
        if self.catalog.user(login).await?.is_some() {
            return Err(usage(format!("login {login} already exists")));
        }
        let hash = password.map(|p| self.checked_hash(p, tenant, login)).transpose()?;
        self.catalog.add_user(tenant, login, hash.as_deref()).await?;
        for key in keys {
            self.catalog.add_key(login, &key.fingerprint(), &key.to_openssh()).await?;
        }
        if !allowed_ips.is_empty() {
            self.catalog.set_user_allowed_ips(login, allowed_ips).await?;
        }
        self.audit("user_add", Some(tenant), Some(login), None).await
    }

    /// Checks a new password against the policy and hashes it with argon2id.
    pub(crate) fn checked_hash(&self, password: &str, tenant: &TenantName, login: &Login) -> Result<String, CliError> {
        passerelle_keys::check_password_strength(password, &[login.as_str(), tenant.as_str()])
            .map_err(|e| usage(e.to_string()))?;
        passerelle_keys::hash_password(password).map_err(|e| CliError::Runtime(e.into()))
    }

    /// Records an administrative action in the audit trail.
    /// Who acts: `admin:<login name>`.
    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }

    pub(crate) async fn audit(
        &self,
        action: &str,
        tenant: Option<&TenantName>,
        login: Option<&Login>,
        detail: Option<String>,
    ) -> Result<(), CliError> {
        self.audit_in(&self.catalog, action, tenant, login, detail).await
    }

    /// [`Admin::audit`] into `catalog`: this one keyed with the audit key of
    /// a master key that replaced the one this was opened with.
    pub(crate) async fn audit_in(
        &self,
        catalog: &Catalog,
        action: &str,
        tenant: Option<&TenantName>,
        login: Option<&Login>,
        detail: Option<String>,
    ) -> Result<(), CliError> {
        let event = AuditEvent {
            actor: self.actor.clone(),
            tenant: tenant.map(ToString::to_string),
            login: login.map(ToString::to_string),
            protocol: "cli".into(),
            action: action.into(),
            outcome: "ok".into(),
            detail,
            ..AuditEvent::default()
        };
        catalog.record(&event).await.context("cannot write the audit trail")?;
        Ok(())
    }
}

/// `inbox/` and `outbox/` under a new tenant root, all 0700.
fn create_tree(root: &std::path::Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o700).recursive(true);
    if let Some(parent) = root.parent() {
        builder.create(parent)?;
    }
    // The root itself must be new: a name clash is never merged into.
    fs::DirBuilder::new().mode(0o700).create(root)?;
    builder.create(root.join("inbox"))?;
    builder.create(root.join("outbox"))
}

/// The administrator behind a CLI call: `admin:<name>`, the name of the
/// real user id (from the password database, so it holds with `$USER` unset:
/// root shells, systemd units, cron); run through sudo by another user,
/// `admin:<sudo user> via sudo as <name>`, so that the person is named first.
fn actor() -> String {
    let name = crate::data_dir::user_name(nix::unistd::Uid::current());
    let sudo_user = std::env::var("SUDO_USER").ok().filter(|v| !v.is_empty() && *v != name);
    actor_name(&name, sudo_user.as_deref())
}

/// The actor for the real user's `name` and the `SUDO_USER` that ran sudo.
fn actor_name(name: &str, sudo_user: Option<&str>) -> String {
    match sudo_user {
        Some(sudo_user) => format!("admin:{sudo_user} via sudo as {name}"),
        None => format!("admin:{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_names_the_person_first() {
        assert_eq!(actor_name("root", None), "admin:root");
        assert_eq!(actor_name("root", Some("bob")), "admin:bob via sudo as root");
    }
}
