//! The tenants' data keys, unwrapped from the catalog under the master key
//! when needed, and what they protect in the catalog: tenant database
//! passwords.
//!
//! ```text
//!  master key ──unwrap──► tenant data key ──► archive of originals (stream)
//!  (file)                 (catalog, wrapped)  └─► database password (sealed)
//! ```

use std::fmt;
use std::sync::Arc;

use passerelle_catalog::{Catalog, CatalogError, StoredDataKey, TenantDatabase, TenantName};
use passerelle_keys::stream::KeyId;
use passerelle_keys::{DataKey, KeyError, MasterKey, WrappedKey};
use thiserror::Error;
use url::Url;

/// Why a data key or a sealed value is unavailable.
#[derive(Debug, Error)]
pub enum KeyringError {
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A key does not unwrap or a value does not decrypt.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The catalog holds a key identifier or URL this build cannot read.
    #[error("catalog holds {0}")]
    Corrupt(String),
}

/// A tenant's data key, unwrapped, with its public identifier.
pub struct TenantKey {
    id: KeyId,
    key: DataKey,
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl TenantKey {
    /// The key's public identifier (written in archive headers).
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn key(&self) -> &DataKey {
        &self.key
    }

    /// A random key, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self { id: KeyId::generate(), key: DataKey::generate() }
    }
}

/// Unwraps and creates data keys; cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    catalog: Catalog,
    master: Arc<MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("master", &self.master).finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring over `catalog`'s wrapped keys and `master`.
    pub fn new(catalog: Catalog, master: Arc<MasterKey>) -> Self {
        Self { catalog, master }
    }

    /// The catalog holding the wrapped keys.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A new data key for `tenant`, and its wrapped form for the catalog
    /// (stored with the tenant's row, in one transaction).
    pub fn new_tenant_key(&self, tenant: &TenantName) -> (TenantKey, StoredDataKey) {
        let key = TenantKey { id: KeyId::generate(), key: DataKey::generate() };
        let stored = StoredDataKey {
            tenant: tenant.to_string(),
            key_id: key.id.to_string(),
            wrapped: self.master.wrap(&key.key, tenant.as_str()).as_str().to_owned(),
        };
        (key, stored)
    }

    /// `tenant`'s data key. A tenant created before archives were encrypted
    /// has none yet: it is made now.
    pub async fn tenant_key(&self, tenant: &TenantName) -> Result<TenantKey, KeyringError> {
        if let Some(stored) = self.catalog.tenant_key(tenant).await? {
            return self.unwrap(&stored);
        }
        let (_, stored) = self.new_tenant_key(tenant);
        match self.catalog.add_tenant_key(&stored).await {
            // Another process made one at the same moment: theirs counts.
            Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let stored = self
            .catalog
            .tenant_key(tenant)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("data key of tenant {tenant}")))?;
        self.unwrap(&stored)
    }

    /// The data key `id` (from an archive header) and its tenant, or `None`
    /// when no such key exists (any more: its tenant was purged).
    pub async fn key_by_id(&self, id: KeyId) -> Result<Option<(String, TenantKey)>, KeyringError> {
        match self.catalog.tenant_key_by_id(&id.to_string()).await? {
            Some(stored) => Ok(Some((stored.tenant.clone(), self.unwrap(&stored)?))),
            None => Ok(None),
        }
    }

    fn unwrap(&self, stored: &StoredDataKey) -> Result<TenantKey, KeyringError> {
        let id = KeyId::parse(&stored.key_id)
            .ok_or_else(|| KeyringError::Corrupt(format!("an invalid data key id {:?}", stored.key_id)))?;
        let wrapped = WrappedKey::from_stored(stored.wrapped.clone());
        Ok(TenantKey { id, key: self.master.unwrap(&wrapped, &stored.tenant)? })
    }

    /// `database` as the catalog keeps it: the password taken out of its
    /// URL and sealed with `key`. A URL without password (SQLite) is kept.
    pub fn seal_database(
        key: &TenantKey,
        tenant: &TenantName,
        mut database: TenantDatabase,
    ) -> Result<TenantDatabase, KeyringError> {
        let Ok(mut url) = Url::parse(&database.url) else { return Ok(database) };
        let Some(password) = url.password().map(str::to_owned) else { return Ok(database) };
        url.set_password(None).map_err(|()| KeyringError::Corrupt("a database URL without a host".into()))?;
        let password = percent_decoded(&password);
        database.sealed_password = Some(key.key.seal(password.as_bytes(), &password_context(tenant)));
        database.url = url.into();
        Ok(database)
    }

    /// `database` as read from the catalog, with its password back in its
    /// URL, to connect with.
    pub fn open_database(
        key: &TenantKey,
        tenant: &TenantName,
        mut database: TenantDatabase,
    ) -> Result<TenantDatabase, KeyringError> {
        let Some(sealed) = database.sealed_password.take() else { return Ok(database) };
        let password = key.key.open(&sealed, &password_context(tenant))?;
        let password = std::str::from_utf8(&password)
            .map_err(|_| KeyringError::Corrupt("a database password not UTF-8".into()))?;
        let mut url = Url::parse(&database.url)
            .map_err(|_| KeyringError::Corrupt(format!("an invalid database URL for tenant {tenant}")))?;
        url.set_password(Some(password)).map_err(|()| KeyringError::Corrupt("a database URL without a host".into()))?;
        database.url = url.into();
        Ok(database)
    }

    /// Seals the database password an earlier version kept in clear in
    /// `tenant`'s catalog row; `true` when there was one.
    pub async fn seal_clear_password(&self, tenant: &TenantName) -> Result<bool, KeyringError> {
        let database = self.catalog.tenant_database(tenant).await?;
        if database.sealed_password.is_some() {
            return Ok(false);
        }
        let sealed = Self::seal_database(&self.tenant_key(tenant).await?, tenant, database)?;
        let Some(password) = &sealed.sealed_password else { return Ok(false) };
        self.catalog.set_tenant_database_url(tenant, &sealed.url, password).await?;
        Ok(true)
    }

    /// The tenant's database with its password, for a connection.
    pub async fn tenant_database(&self, tenant: &TenantName) -> Result<TenantDatabase, KeyringError> {
        let database = self.catalog.tenant_database(tenant).await?;
        if database.sealed_password.is_none() {
            return Ok(database);
        }
        Self::open_database(&self.tenant_key(tenant).await?, tenant, database)
    }
}

/// What a sealed database password is bound to.
fn password_context(tenant: &TenantName) -> String {
    format!("tenant database password of {tenant}")
}

/// The password as typed, from its form in a URL (`%40` for `@`).
fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}
