//! Clean-up of upload temporaries left behind by a crash or a kill -9.
//!
//! A running server removes the temporary of every upload that does not
//! commit, but a process that dies cannot. Leftovers are invisible to clients
//! and never imported; they only take space and make their directory
//! impossible to `rmdir`. Sweeping those not modified for a while is safe:
//! a live upload touches its temporary with every write.

use std::time::SystemTime;

use cap_fs_ext::DirExt as _;
use cap_std::fs::Dir;

use super::error::FsError;
use super::path::UPLOAD_TEMP_PREFIX;

/// Deepest directory level visited below `/inbox`; deeper trees are left
/// alone rather than risking unbounded recursion.
const MAX_DEPTH: usize = 64;

/// Removes temporaries under `dir` last modified before `cutoff`; returns how
/// many went. Symlinks are neither followed nor removed.
pub(super) fn sweep(dir: &Dir, cutoff: SystemTime, depth: usize) -> Result<usize, FsError> {
    let mut removed = 0;
    for entry in dir.entries()? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if depth < MAX_DEPTH {
                // Gone or swapped for a symlink since readdir: skip it.
                if let Ok(sub) = dir.open_dir_nofollow(&name) {
                    removed += sweep(&sub, cutoff, depth + 1)?;
                }
            }
        } else if file_type.is_file() && name.starts_with(UPLOAD_TEMP_PREFIX) {
            let Ok(meta) = dir.symlink_metadata(&name) else {
                continue;
            };
            let stale = meta.modified().map(|t| t.into_std() < cutoff).unwrap_or(false);
            if stale && meta.is_file() && dir.remove_file(&name).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}
