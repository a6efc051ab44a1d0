//! Archiving a job's original once the job has its verdict, getting it
//! back for `import retry`, and deleting it after the retention period. Everything about how originals are kept is
//! behind [`archive`] and [`restore`]: today a rename into
//! `<archive>/<tenant>/<job id>` (0600, outside every tenant tree).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use passerelle_catalog::TenantName;

use super::layout::Layout;

/// Moves the spooled file of `job_id` into the tenant's archive. A file
/// archived already (a crash after the move) is fine.
pub(crate) fn archive(layout: &Layout, tenant: &TenantName, job_id: &str) -> io::Result<()> {
    let spooled = layout.spool_dir(tenant).join(job_id);
    let archive_dir = layout.archive_dir(tenant);
    let archived = archive_dir.join(job_id);
    if !spooled.exists() && archived.exists() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&archive_dir)?;
    fs::rename(&spooled, &archived)?;
    // Retention counts from the job's end, not from the upload.
    fs::File::options().write(true).open(&archived)?.set_modified(SystemTime::now())?;
    // Not synced: a rename lost in a crash leaves the file in the spool,
    // and the next start archives it (`archive_leftovers`).
    Ok(())
}

/// Deletes the archived originals of `tenants` older than `retention`;
/// returns how many went.
pub(crate) fn prune(layout: &Layout, tenants: &[TenantName], retention: Duration) -> io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else { return Ok(0) };
    let mut removed = 0;
    for tenant in tenants {
        let Ok(entries) = fs::read_dir(layout.archive_dir(tenant)) else { continue };
        for entry in entries.flatten() {
            let meta = entry.metadata()?;
            if meta.is_file() && meta.modified()? < cutoff {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Brings the archived original of `job_id` back into the spool, for a
/// job run again. `false`: there is no archived original.
pub(crate) fn restore(layout: &Layout, tenant: &TenantName, job_id: &str) -> io::Result<bool> {
    let archived = layout.archive_dir(tenant).join(job_id);
    if !archived.exists() {
        return Ok(false);
    }
    let spool_dir = layout.spool_dir(tenant);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&spool_dir)?;
    fs::rename(&archived, spool_dir.join(job_id))?;
    sync_dir(&spool_dir)?;
    Ok(true)
}

/// Makes a rename into `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_originals_go_after_their_retention_and_come_back_for_a_retry() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path().join("tenants"), root.path().join("spool"), root.path().join("archive"));
        let acme = TenantName::parse("acme").unwrap();
        fs::create_dir_all(layout.spool_dir(&acme)).unwrap();
        for id in ["old", "new"] {
            fs::write(layout.spool_dir(&acme).join(id), id).unwrap();
            archive(&layout, &acme, id).unwrap();
            archive(&layout, &acme, id).unwrap(); // archived already: fine
        }
        let day = Duration::from_secs(86_400);
        let old = fs::File::options().write(true).open(layout.archive_dir(&acme).join("old")).unwrap();
        old.set_modified(SystemTime::now() - 2 * day).unwrap();
        assert_eq!(prune(&layout, std::slice::from_ref(&acme), day).unwrap(), 1);
        assert!(!layout.archive_dir(&acme).join("old").exists());
        assert!(restore(&layout, &acme, "new").unwrap());
        assert_eq!(fs::read(layout.spool_dir(&acme).join("new")).unwrap(), b"new");
        assert!(!restore(&layout, &acme, "old").unwrap());
    }
}
