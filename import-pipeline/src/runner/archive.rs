//! Archiving a job's original once the job has its verdict, and getting it
//! back for `import retry`. Everything about how originals are kept is
//! behind [`archive`] and [`restore`]: today a rename into
//! `<archive>/<tenant>/<job id>` (0600, outside every tenant tree).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

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
    sync_dir(&archive_dir)
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
