//! Removing a tenant's directories (tree, spool, archive) with progress a
//! terminal can show: a tenant with years of archives holds many files.
//!
//! The directories are taken apart two levels down (`inbox/<dir>`,
//! `archive/<job>`), each entry with [`fs::remove_dir_all`], which never
//! follows a symbolic link out of the tree, then the directories
//! themselves. Listing first gives the bar its length.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::progress::Progress;

/// Most entries listed for the bar; beyond, the rest are removed with
/// their parent, the bar simply ends sooner.
const MAX_LISTED: usize = 1_000_000;

/// Removes every directory of `roots` and all under it; a missing one is
/// fine. On error, says which path could not be removed.
pub(crate) fn remove_trees(roots: &[PathBuf], what: &str) -> Result<(), (PathBuf, io::Error)> {
    let entries = {
        let _listing = Progress::spinner(format!("listing {what}"));
        listed(roots)
    };
    let bar = Progress::bar(entries.len() as u64, format!("removing {what}"));
    for entry in &entries {
        remove(entry).map_err(|e| (entry.clone(), e))?;
        bar.advance(1);
    }
    for root in roots {
        remove(root).map_err(|e| (root.clone(), e))?;
    }
    Ok(())
}

/// The entries one and two levels under each root, deepest first, so that
/// removing them in order never removes a listed entry with its parent.
fn listed(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut entries = Vec::new();
    for root in roots {
        for child in children(root) {
            if entries.len() >= MAX_LISTED {
                return entries;
            }
            if is_real_dir(&child) {
                entries.extend(children(&child).into_iter().take(MAX_LISTED - entries.len()));
            }
            entries.push(child);
        }
    }
    entries
}

/// The entries of `dir`; none when it cannot be read (it is removed whole later).
fn children(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).map(|list| list.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

/// Whether `path` is a directory itself, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Removes `path` (a directory with all under it, or anything else as one
/// entry); already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    let removed = if is_real_dir(path) { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match removed {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        done => done,
    }
}
