//! The receipt a client downloads: `/outbox/<path>.result.json` for
//! `/inbox/<path>`, in the format the README documents field by field
//! ("Import pipeline", **Receipt**): a client interface. Written to a
//! hidden temporary in the outbox, then renamed, so a client never reads
//! half a receipt; through a capability on the tenant's outbox, so no path
//! (or link planted in the tree) leads it elsewhere.
//!
//! The moment a file is taken under a name that has a receipt, a
//! `received` receipt carrying its SHA-256 replaces that receipt: a script
//! waiting for the receipt never reads the verdict of the previous file. A
//! name without a receipt gets none until its verdict, so a script that
//! waits for the receipt to appear reads a verdict. A verdict
//! never replaces the `received` receipt of another job (a newer file of
//! the same name, taken while this one ran): jobs of a tenant end in the
//! order their files were taken, so any other job's `received` receipt is
//! newer. The check and the rename happen under one lock, which the writer
//! of `received` receipts takes too.
//!
//! Every name written here fits the 255-byte limit of a file name for
//! every legal inbox name: the temporary is named after the job, not the
//! file, and a receipt name that would be too long is shortened
//! ([`receipt_name`]).

use std::io::{self, Read, Write};
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::digest;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use passerelle_catalog::TenantName;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::Layout;
use crate::validate::ImportError;

/// What a receipt says.
#[derive(Debug, Serialize)]
pub(crate) struct Receipt<'a> {
    /// The file's path relative to `/inbox`.
    pub(crate) file: &'a str,
    /// `received`, `imported`, `rejected` or `duplicate`.
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
    /// RFC 3339, UTC; `None` while the job runs (`received`).
    pub(crate) finished_at: Option<String>,
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

/// What a receipt's name adds to the file's name.
pub const RECEIPT_SUFFIX: &str = ".result.json";
/// What the temporary a receipt is written to ends with (one left by a
/// crash is removed with old receipts).
pub(crate) const TEMPORARY_SUFFIX: &str = ".receipt.passerelle-tmp";
/// The longest file name on the filesystems the server runs on (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Hex digits of the name's SHA-256 a shortened receipt name keeps: 64
/// bits, so two long names of one folder never share a receipt in practice.
const NAME_HASH_HEX: usize = 16;

/// The receipt's file name for an inbox file named `name` (its last path
/// component): `<name>.result.json`, or, when that would exceed 255 bytes,
/// `<first bytes of name>~<16 hex digits>.result.json`, where the hex
/// digits begin the SHA-256 of `name` and the kept part is cut on a
/// character boundary (the receipt's `file` field gives the full path).
pub(crate) fn receipt_name(name: &str) -> String {
    if name.len() + RECEIPT_SUFFIX.len() <= NAME_MAX {
        return format!("{name}{RECEIPT_SUFFIX}");
    }
    let room = NAME_MAX - RECEIPT_SUFFIX.len() - 1 - NAME_HASH_HEX;
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = hex::encode(digest::digest(&digest::SHA256, name.as_bytes()));
    format!("{}~{}{RECEIPT_SUFFIX}", &name[..cut], &hash[..NAME_HASH_HEX])
}

/// The receipt's path in the outbox for inbox path `file`: the same
/// folders, and [`receipt_name`] of its last component.
pub(crate) fn receipt_path(file: &str) -> String {
    match file.rsplit_once('/') {
        Some((parent, name)) => format!("{parent}/{}", receipt_name(name)),
        None => receipt_name(file),
    }
}

/// What a receipt already in place says about whose it is.
#[derive(Deserialize)]
struct Owner {
    status: String,
    import_id: String,
}

/// Held while a receipt is checked and renamed into place.
static RENAMING: Mutex<()> = Mutex::new(());

/// Largest receipt read back to see whose it is (a receipt holds at most
/// 100 errors, far below).
const MAX_OWNER_READ: u64 = 4 << 20;

/// How a receipt is put in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placing {
    /// A file was just taken: it replaces the receipt in place, if there is
    /// one, without waiting for the disk (it only says that a file arrived;
    /// the verdict that follows is synced).
    Received,
    /// A verdict: synced, and it replaces anything but another job's
    /// `received` receipt.
    Verdict,
}

/// Writes `receipt` atomically into the tenant's outbox, creating the
/// directories of its path. Returns whether it was put in place (`false`:
/// a verdict that a newer file's `received` receipt keeps out, or a
/// `received` receipt with no receipt to replace).
pub(crate) fn write(layout: &Layout, tenant: &TenantName, receipt: &Receipt<'_>, placing: Placing) -> io::Result<bool> {
    let outbox = Dir::open_ambient_dir(layout.outbox(tenant), ambient_authority())?;
    let target = receipt_path(receipt.file);
    if placing == Placing::Received && outbox.symlink_metadata(&target).is_err() {
        return Ok(false);
    }
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
    let replaces = || dir.symlink_metadata(name).is_ok();
    // Named after the job, not the file: a name near the limit would
    // overflow it, and one job writes one receipt at a time.
    let temporary = format!(".{}{TEMPORARY_SUFFIX}", receipt.import_id);
    let mut body = serde_json::to_vec_pretty(receipt).map_err(io::Error::other)?;
    body.push(b'\n');
    let mut file = dir.open_with(&temporary, OpenOptions::new().write(true).create(true).truncate(true))?;
    file.write_all(&body)?;
    if placing == Placing::Verdict {
        file.sync_all()?;
    }
    drop(file);
    let _one = RENAMING.lock().unwrap_or_else(PoisonError::into_inner);
    let kept_out = match placing {
        // The client deleted it meanwhile.
        Placing::Received => !replaces(),
        Placing::Verdict => newer_file_taken(&dir, name, receipt.import_id),
    };
    if kept_out {
        dir.remove_file(&temporary)?;
        return Ok(false);
    }
    dir.rename(&temporary, &dir, name)?;
    Ok(true)
}

/// Whether the receipt `name` in `dir` is another job's `received` receipt.
/// An unreadable or foreign file is not: the verdict replaces it.
fn newer_file_taken(dir: &Dir, name: &str, import_id: &str) -> bool {
    let Ok(file) = dir.open(name) else { return false };
    let mut text = Vec::new();
    if file.take(MAX_OWNER_READ).read_to_end(&mut text).is_err() {
        return false;
    }
    serde_json::from_slice::<Owner>(&text).is_ok_and(|owner| owner.status == "received" && owner.import_id != import_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(layout: &Layout, tenant: &TenantName, file: &str) -> Option<serde_json::Value> {
        let text = std::fs::read(layout.outbox(tenant).join(receipt_path(file))).ok()?;
        Some(serde_json::from_slice(&text).unwrap())
    }

    fn receipt<'a>(status: &'a str, import_id: &'a str, sha256: &'a str) -> Receipt<'a> {
        Receipt {
            file: "employees/a.csv",
            status,
            profile: None,
            rows: 0,
            sha256: Some(sha256),
            import_id,
            received_at: rfc3339(0),
            finished_at: None,
            duplicate_of: None,
            error_count: 0,
            errors: &[],
        }
    }

    #[test]
    fn received_replaces_a_receipt_and_a_verdict_never_covers_a_newer_files_received() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path().join("tenants"), root.path().join("spool"), root.path().join("archive"));
        let acme = TenantName::parse("acme").unwrap();
        std::fs::create_dir_all(layout.outbox(&acme)).unwrap();
        // Nothing to replace: a first file's receipt is its verdict.
        assert!(!write(&layout, &acme, &receipt("received", "j1", "aa"), Placing::Received).unwrap());
        assert!(read(&layout, &acme, "employees/a.csv").is_none());
        assert!(write(&layout, &acme, &receipt("imported", "j1", "aa"), Placing::Verdict).unwrap());
        // A second file is taken, then a third while the second's job runs.
        assert!(write(&layout, &acme, &receipt("received", "j2", "bb"), Placing::Received).unwrap());
        assert_eq!(read(&layout, &acme, "employees/a.csv").unwrap()["status"], "received");
        assert!(write(&layout, &acme, &receipt("received", "j3", "cc"), Placing::Received).unwrap());
        assert!(!write(&layout, &acme, &receipt("rejected", "j2", "bb"), Placing::Verdict).unwrap());
        let now = read(&layout, &acme, "employees/a.csv").unwrap();
        assert_eq!((now["status"].as_str(), now["sha256"].as_str()), (Some("received"), Some("cc")));
        assert!(write(&layout, &acme, &receipt("imported", "j3", "cc"), Placing::Verdict).unwrap());
        assert_eq!(read(&layout, &acme, "employees/a.csv").unwrap()["status"], "imported");
        // No temporaries left.
        let names: Vec<_> = std::fs::read_dir(layout.outbox(&acme).join("employees")).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn receipt_names_keep_short_names_and_shorten_long_ones_within_the_limit() {
        assert_eq!(receipt_path("employees/2026-11.csv"), "employees/2026-11.csv.result.json");
        assert_eq!(receipt_path("a.csv"), "a.csv.result.json");
        let fits = "x".repeat(NAME_MAX - RECEIPT_SUFFIX.len());
        assert_eq!(receipt_name(&fits), format!("{fits}{RECEIPT_SUFFIX}"));
        // Every legal length, ASCII and multi-byte (2, 3 and 4 bytes a character).
        for unit in ["x", "é", "€", "𝄞"] {
            for len in (1..=NAME_MAX / unit.len()).map(|n| unit.repeat(n)) {
                let name = format!("{len}.csv");
                if name.len() > NAME_MAX {
                    continue;
                }
                let receipt = receipt_name(&name);
                assert!(receipt.len() <= NAME_MAX, "{} bytes for a {}-byte name", receipt.len(), name.len());
                assert!(receipt.ends_with(RECEIPT_SUFFIX));
            }
        }
        // Two long names that share their first 226 bytes get different receipts.
        let stem = "é".repeat(120);
        let (a, b) = (format!("{stem}-a.csv"), format!("{stem}-b.csv"));
        assert_ne!(receipt_name(&a), receipt_name(&b));
        assert!(receipt_name(&a).starts_with(&"é".repeat(113)), "{}", receipt_name(&a));
        let hash = hex::encode(digest::digest(&digest::SHA256, a.as_bytes()));
        assert!(receipt_name(&a).ends_with(&format!("~{}{RECEIPT_SUFFIX}", &hash[..16])));
    }
}
