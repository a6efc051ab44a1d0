//! The installation's master key (`keys.master_key_file`): loaded by every
//! command that opens the catalog, checked against the identifier the
//! catalog recorded, and created only at the first start of a new
//! installation, when the catalog has recorded none: a lost or misplaced key
//! is refused, never silently replaced (that would make every wrapped data
//! key, hence every archive, unreadable).

use std::path::{Path, PathBuf};

use passerelle_catalog::{AuditKey, Catalog, StoredDataKey};
use passerelle_config::Config;
use passerelle_keys::{KeyError, MasterKey, WrappedKey};

use crate::admin::Admin;
use crate::error::{CliError, usage};

/// The master key, and whether it was created just now.
pub(crate) struct Opened {
    /// The key.
    pub(crate) key: MasterKey,
    /// Whether this call created it (a new installation).
    pub(crate) created: bool,
}

/// Loads the master key named by `config`, or creates it when neither the
/// file nor the catalog's record of it exists. A missing file the catalog
/// knows of, another key than the recorded one, or a file group or others
/// can read is refused with a message naming the file.
pub(crate) async fn open(config: &Config, catalog: &Catalog) -> Result<Opened, CliError> {
    let path = &config.keys.master_key_file;
    let recorded = catalog.master_key_id().await?;
    let (key, created) = match (MasterKey::load(path), &recorded) {
        (Ok(key), _) => (key, false),
        (Err(KeyError::MissingMasterKey { .. }), None) => match MasterKey::create(path) {
            Ok(key) => (key, true),
            // Another command created it at the same moment: use theirs.
            Err(KeyError::AlreadyExists { .. }) => (MasterKey::load(path).map_err(refused)?, false),
            Err(e) => return Err(refused(e)),
        },
        (Err(KeyError::MissingMasterKey { .. }), Some(id)) => {
            return Err(usage(format!(
                "master key {} does not exist, but this catalog's data keys are wrapped under master key {id}; \
                 restore that file from your offline copy (keys.master_key_file names where it is looked for)",
                path.display()
            )));
        }
        (Err(e), _) => return Err(refused(e)),
    };
    let recorded = match recorded {
        Some(id) => id,
        None => catalog.record_master_key_id(&key.id()).await?,
    };
    if recorded != key.id()
        && let Some(key) = finish_interrupted_rotation(path, &recorded)?
    {
        return Ok(Opened { key, created: false });
    }
    if recorded != key.id() {
        return Err(usage(format!(
            "master key {} (id {}) is not the one this catalog's data keys are wrapped under (id {recorded}); \
             restore the right file from your offline copy",
            path.display(),
            key.id()
        )));
    }
    Ok(Opened { key, created })
}

/// What `keys rotate-master` did.
pub(crate) struct Rotation {
    /// The id of the key replaced.
    pub(crate) old_id: String,
    /// The id of the new key.
    pub(crate) new_id: String,
    /// Data keys re-wrapped.
    pub(crate) rewrapped: usize,
    /// Where the old key is kept.
    pub(crate) old_file: PathBuf,
    /// The audit chain's key from now on (derived from the new master key).
    pub(crate) audit_key: AuditKey,
}

/// Replaces the master key of `admin`'s installation, crash-safely:
///
/// 1. the new key is written to `<file>.new` (0600);
/// 2. every data key is re-wrapped under it, and the catalog's record of
///    the master key changed, in one catalog transaction: before it commits
///    the old key is the one, after it the new one (a crash after it is
///    finished by the next command, see [`open`]);
/// 3. the old file is kept as `<file>.old` (a hard link), and `<file>.new`
///    renamed over `<file>`.
///
/// No archive is read or written: only the wrapping of their keys changes.
/// The audit chain, whose key derives from the master key, is re-MAC'ed in
/// the transaction of step 2; a broken chain refuses the rotation (it
/// would hide the break).
pub(crate) async fn rotate(admin: &Admin) -> Result<Rotation, CliError> {
    let path = &admin.config.keys.master_key_file;
    let (pending, old_file) = (beside(path, ".new"), beside(path, ".old"));
    if old_file.exists() {
        return Err(usage(format!(
            "{} exists from an earlier rotation; once your offline copy holds the current key, delete it, then \
             rotate again",
            old_file.display()
        )));
    }
    // Opening the catalog finished any rotation whose transaction committed:
    // a `.new` left now is from one that never did, and protects nothing.
    remove_if_present(&pending)?;
    let old = admin.master_key();
    let new = MasterKey::create(&pending).map_err(refused)?;
    let rewrapped = match rewrap(admin, old, &new).await {
        Ok(rewrapped) => rewrapped,
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            return Err(e);
        }
    };
    install(path, &pending, &old_file)?;
    Ok(Rotation { old_id: old.id(), new_id: new.id(), rewrapped, old_file, audit_key: audit_key(&new) })
}

/// Re-wraps every data key from `old` to `new` in one catalog transaction.
async fn rewrap(admin: &Admin, old: &MasterKey, new: &MasterKey) -> Result<usize, CliError> {
    let stored = admin.catalog.tenant_keys().await?;
    let mut rewrapped = Vec::with_capacity(stored.len());
    for key in stored {
        let data = old.unwrap(&WrappedKey::from_stored(key.wrapped.clone()), &key.tenant).map_err(refused)?;
        rewrapped.push(StoredDataKey { wrapped: new.wrap(&data, &key.tenant).as_str().to_owned(), ..key });
    }
    admin.catalog.rewrap_tenant_keys(&old.id(), &new.id(), &rewrapped, &audit_key(new)).await?;
    Ok(rewrapped.len())
}

/// Keeps `path` as `old_file` and puts `pending` in its place, durably.
fn install(path: &Path, pending: &Path, old_file: &Path) -> Result<(), CliError> {
    let io = |what: &str, file: &Path, e: std::io::Error| {
        CliError::Runtime(anyhow::anyhow!("master key rotation: cannot {what} {}: {e}", file.display()))
    };
    if !old_file.exists() {
        std::fs::hard_link(path, old_file).map_err(|e| io("keep the old key as", old_file, e))?;
    }
    std::fs::rename(pending, path).map_err(|e| io("install the new key at", path, e))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("flush", dir, e))
}

/// When the catalog records `recorded` but `path` holds another key: a
/// rotation whose transaction committed before its new key took the file's
/// place. Finishes it and returns the new key; `None` when that is not it.
fn finish_interrupted_rotation(path: &Path, recorded: &str) -> Result<Option<MasterKey>, CliError> {
    let pending = beside(path, ".new");
    let Ok(new) = MasterKey::load(&pending) else { return Ok(None) };
    if new.id() != recorded {
        return Ok(None);
    }
    install(path, &pending, &beside(path, ".old"))?;
    tracing::warn!(file = %path.display(), "finished an interrupted master key rotation");
    eprintln!("passerelle: finished an interrupted master key rotation of {}", path.display());
    Ok(Some(new))
}

/// `path` with `suffix` added to its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<(), CliError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CliError::Runtime(anyhow::anyhow!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// A key file that cannot be used is a refused configuration (exit 2).
fn refused(e: KeyError) -> CliError {
    usage(e.to_string())
}

/// HKDF purpose of the audit chain's key.
const AUDIT_CHAIN_PURPOSE: &str = "audit-chain";

/// The key that MACs the audit chain, derived from `master`.
pub(crate) fn audit_key(master: &MasterKey) -> AuditKey {
    AuditKey::new(master.derive(AUDIT_CHAIN_PURPOSE))
}
