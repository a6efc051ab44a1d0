//! The receipt a client downloads: `/outbox/<path>.result.json` for
//! `/inbox/<path>`, in the format the README documents field by field
//! ("Import pipeline", **Receipt**): a client interface. Written to a
//! hidden temporary in the outbox, synced, then renamed, so a client never
//! reads half a receipt; through a capability on the tenant's outbox, so no
//! path (or link planted in the tree) leads it elsewhere.

use std::io::{self, Write};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use passerelle_catalog::TenantName;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::Layout;
use crate::validate::ImportError;

/// What a receipt says.
#[derive(Debug, Serialize)]
pub(crate) struct Receipt<'a> {
    /// The file's path relative to `/inbox`.
    pub(crate) file: &'a str,
    /// `imported`, `rejected` or `duplicate`.
    pub(crate) status: &'a str,
    /// The profile that matched, if one did.
    pub(crate) profile: Option<&'a str>,
    /// Rows loaded (0 unless imported).
    pub(crate) rows: u64,
    /// SHA-256 of the file, lower-case hex.
    pub(crate) sha256: Option<&'a str>,
    /// The job's id, also `_import_id` of every loaded row.
    pub(crate) import_id: &'a str,
    /// RFC 3339, UTC.
    pub(crate) received_at: String,
    /// RFC 3339, UTC.
    pub(crate) finished_at: String,
    /// For a duplicate: the import that loaded this content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) duplicate_of: Option<&'a str>,
    /// How many errors in all (`errors` holds the first 100).
    pub(crate) error_count: u64,
    /// The first errors: line, column, message.
    pub(crate) errors: &'a [ImportError],
}

/// Unix milliseconds as RFC 3339 in UTC (`Z`): up to three fractional
/// digits, trailing zeros dropped, none on a whole second.
pub(crate) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The receipt's path in the outbox for inbox path `file`.
pub(crate) fn receipt_path(file: &str) -> String {
    format!("{file}.result.json")
}

/// Writes `receipt` atomically into the tenant's outbox, creating the
/// directories of its path.
pub(crate) fn write(layout: &Layout, tenant: &TenantName, receipt: &Receipt<'_>) -> io::Result<()> {
    let outbox = Dir::open_ambient_dir(layout.outbox(tenant), ambient_authority())?;
    let target = receipt_path(receipt.file);
    let (parent, name) = match target.rsplit_once('/') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, target.as_str()),
    };
    let dir = match parent {
        Some(parent) => {
            outbox.create_dir_all(parent)?;
            outbox.open_dir(parent)?
        }
        None => outbox,
    };
    let temporary = format!(".{name}.passerelle-tmp");
    let mut body = serde_json::to_vec_pretty(receipt).map_err(io::Error::other)?;
    body.push(b'\n');
    let mut file = dir.open_with(&temporary, OpenOptions::new().write(true).create(true).truncate(true))?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    dir.rename(&temporary, &dir, name)?;
    Ok(())
}
