//! Directory listings read in batches from an open directory, so that a
//! directory of a million entries never sits in memory: a front-end asks for
//! the next batch when it has sent the previous one (SFTP READDIR, an FTPS
//! data connection). Each batch is read on the blocking pool and sorted by
//! name; the listing as a whole is in directory order, as from `ls -f`.
//!
//! What is listed: regular files and directories only; symlinks, special
//! files, names that are not UTF-8 or hold control characters, and uploads
//! in progress are left out, since no operation would accept them. The root
//! lists only `inbox` and `outbox`.

use std::sync::{Arc, Mutex, PoisonError};

use cap_std::fs::{Dir, ReadDir};

use super::error::FsError;
use super::stat::FileStat;
use super::{blocking, path, walk};

/// Entries per batch (what OpenSSH puts in one READDIR reply).
pub(crate) const BATCH: usize = 100;

/// An open directory being listed. Concurrent calls take turns.
pub(crate) struct DirCursor {
    /// `None` once the end was reached.
    state: Arc<Mutex<Option<Open>>>,
}

/// The directory and where its listing stands.
struct Open {
    dir: Dir,
    entries: ReadDir,
    /// Whether this is the tenant root (only `inbox` and `outbox` listed).
    is_root: bool,
}

impl DirCursor {
    /// Starts listing `dir`.
    pub(super) fn new(dir: Dir, is_root: bool) -> Result<Self, FsError> {
        let entries = dir.entries()?;
        Ok(Self { state: Arc::new(Mutex::new(Some(Open { dir, entries, is_root }))) })
    }

    /// The next entries, at most [`BATCH`], sorted by name; empty at the end.
    pub(crate) async fn next_batch(&self) -> Result<Vec<(String, FileStat)>, FsError> {
        let state = Arc::clone(&self.state);
        blocking(move || {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(open) = state.as_mut() else { return Ok(Vec::new()) };
            let (mut batch, ended) = open.read(BATCH)?;
            if ended {
                // Closes the directory now rather than when the client does.
                *state = None;
            }
            batch.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(batch)
        })
        .await
    }
}

impl Open {
    /// Up to `max` listable entries, and whether the directory ended.
    fn read(&mut self, max: usize) -> Result<(Vec<(String, FileStat)>, bool), FsError> {
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max {
            let Some(entry) = self.entries.next() else { return Ok((batch, true)) };
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !path::is_listable_name(&name) || (self.is_root && !matches!(name.as_str(), "inbox" | "outbox")) {
                continue;
            }
            // Both from the entry itself, neither follows a symlink.
            let file_type = entry.file_type()?;
            if !(file_type.is_file() || file_type.is_dir()) {
                continue;
            }
            match walk::plain_metadata(&self.dir, &name) {
                Ok(meta) => batch.push((name, FileStat::from_cap(&meta))),
                // Removed or swapped for a symlink since readdir.
                Err(FsError::NotFound | FsError::PermissionDenied) => {}
                Err(err) => return Err(err),
            }
        }
        Ok((batch, false))
    }
}
