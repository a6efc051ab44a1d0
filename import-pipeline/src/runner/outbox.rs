//! Receipt retention: receipts older than `receipts.retention_days` (by
//! their modification time: when they were last written) leave the
//! tenants' outboxes. A pass looks at a bounded number of entries, so an
//! outbox of millions of files never holds the runner for long; what it
//! leaves is seen by the next pass.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use passerelle_catalog::TenantName;

use super::layout::Layout;
use super::receipt::{RECEIPT_SUFFIX, TEMPORARY_SUFFIX};

/// Deepest directory a pass descends into under an outbox.
const MAX_DEPTH: usize = 16;
/// Most entries one pass looks at, all tenants together.
const MAX_ENTRIES: usize = 200_000;

/// Deletes the receipts (and leftover receipt temporaries) of `tenants`
/// last written more than `retention` ago; returns how many went. Links
/// are neither followed nor removed; other files are left alone.
pub(crate) fn prune(layout: &Layout, tenants: &[TenantName], retention: Duration) -> io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else { return Ok(0) };
    let mut removed = 0;
    let mut seen = 0;
    for tenant in tenants {
        let mut pending: Vec<(PathBuf, usize)> = vec![(layout.outbox(tenant), 0)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_ENTRIES {
                    return Ok(removed);
                }
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() && depth < MAX_DEPTH {
                    pending.push((entry.path(), depth + 1));
                    continue;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !kind.is_file() || !(name.ends_with(RECEIPT_SUFFIX) || name.ends_with(TEMPORARY_SUFFIX)) {
                    continue;
                }
                let Ok(modified) = entry.metadata().and_then(|meta| meta.modified()) else { continue };
                if modified < cutoff {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        // Deleted by its client meanwhile.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_receipts_past_their_retention_go() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path().join("tenants"), root.path().join("spool"), root.path().join("archive"));
        let acme = TenantName::parse("acme").unwrap();
        let outbox = layout.outbox(&acme);
        fs::create_dir_all(outbox.join("employees")).unwrap();
        let day = Duration::from_secs(86_400);
        for (name, age) in [
            ("employees/old.csv.result.json", 3 * day),
            ("employees/new.csv.result.json", Duration::ZERO),
            ("old.csv.result.json", 3 * day),
            ("notes.txt", 3 * day),
            (".job.receipt.passerelle-tmp", 3 * day),
        ] {
            let path = outbox.join(name);
            fs::write(&path, "{}").unwrap();
            fs::File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - age).unwrap();
        }
        assert_eq!(prune(&layout, std::slice::from_ref(&acme), 2 * day).unwrap(), 3);
        let mut left: Vec<_> = ["employees/new.csv.result.json", "notes.txt", "employees/old.csv.result.json"]
            .iter()
            .filter(|name| outbox.join(name).exists())
            .collect();
        left.sort();
        assert_eq!(left, [&"employees/new.csv.result.json", &"notes.txt"]);
    }
}
