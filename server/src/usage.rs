//! What a tenant stores, as its quota counts it: the regular files of its
//! tree (inbox and outbox), of its import spool and of its archive, with
//! their apparent sizes (`st_size`). The CLI (`tenant show`) and the
//! server's quota tracker both measure with [`tenant_usage`].
//!
//! A file with several names counts once: a file taken into an import job
//! at the end of its upload keeps its inbox name while the job runs (a hard
//! link into the spool).
//!
//! Upload temporaries count while they exist, and are also reported apart:
//! the server tracks uploads in progress itself, byte by byte, and takes
//! them out of a scan so that they are not counted twice.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use passerelle_catalog::TenantName;

use crate::data_dir::DataDir;
use crate::engine::fs::UPLOAD_TEMP_PREFIX;

/// Directories waiting to be visited, at most. The walk is depth-first, so
/// this only grows with directories that hold many sub-directories; beyond
/// it the measure fails rather than take unbounded memory.
const MAX_PENDING_DIRS: usize = 100_000;

/// Files and bytes of one tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Sum of the sizes of every regular file, upload temporaries included.
    pub(crate) bytes: u64,
    /// Regular files, upload temporaries included.
    pub(crate) files: u64,
    /// The part of `bytes` in upload temporaries.
    pub(crate) uploading_bytes: u64,
    /// The part of `files` that are upload temporaries.
    pub(crate) uploading_files: u64,
}

impl Usage {
    /// Without the uploads in progress.
    pub(crate) fn settled(self) -> (u64, u64) {
        (self.bytes.saturating_sub(self.uploading_bytes), self.files.saturating_sub(self.uploading_files))
    }

    /// Counts one regular file.
    fn add(&mut self, name: &std::ffi::OsStr, size: u64) {
        self.bytes = self.bytes.saturating_add(size);
        self.files += 1;
        if name.as_encoded_bytes().starts_with(UPLOAD_TEMP_PREFIX.as_bytes()) {
            self.uploading_bytes = self.uploading_bytes.saturating_add(size);
            self.uploading_files += 1;
        }
    }
}

/// Measures `tenant`'s tree, spool and archive. Blocking (a walk of every
/// directory): the server calls it on the blocking pool. Directories that do
/// not exist count as empty, and entries that vanish during the walk (the
/// import pipeline moves files) are skipped; symlinks met in a listing are
/// neither followed nor counted.
pub(crate) fn tenant_usage(data_dir: &DataDir, tenant: &TenantName) -> io::Result<Usage> {
    let mut usage = Usage::default();
    // Files with more than one link met so far (device, inode).
    let mut linked = HashSet::new();
    let mut pending: Vec<PathBuf> =
        vec![data_dir.tenant_root(tenant), data_dir.tenant_spool(tenant), data_dir.tenant_archive(tenant)];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if gone(&err) => continue,
            Err(err) => return Err(io::Error::new(err.kind(), format!("{}: {err}", dir.display()))),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) if gone(&err) => continue,
                Err(err) => return Err(err),
            };
            // Neither call follows a symlink.
            let Ok(file_type) = entry.file_type() else { continue };
            if file_type.is_dir() {
                if pending.len() >= MAX_PENDING_DIRS {
                    return Err(io::Error::other(format!(
                        "{}: more than {MAX_PENDING_DIRS} directories to visit",
                        dir.display()
                    )));
                }
                pending.push(entry.path());
            } else if file_type.is_file()
                && let Ok(meta) = entry.metadata()
                && (meta.nlink() < 2 || linked.insert((meta.dev(), meta.ino())))
            {
                usage.add(&entry.file_name(), meta.len());
            }
        }
    }
    Ok(usage)
}

/// An entry or directory removed while the walk was under way.
fn gone(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tree_spool_and_archive_with_temporaries_apart() {
        let base = tempfile::tempdir().unwrap();
        let data_dir = DataDir::open(&base.path().join("data")).unwrap();
        let acme = TenantName::parse("acme").unwrap();
        let root = data_dir.tenant_root(&acme);
        assert_eq!(tenant_usage(&data_dir, &acme).unwrap(), Usage::default(), "nothing yet");

        fs::create_dir_all(root.join("inbox/a/b")).unwrap();
        fs::create_dir_all(root.join("outbox")).unwrap();
        fs::write(root.join("inbox/a/b/deep.csv"), [0; 100]).unwrap();
        fs::write(root.join("inbox/.passerelle-upload-00"), [0; 7]).unwrap();
        fs::write(root.join("outbox/x.result.json"), [0; 10]).unwrap();
        fs::File::create(root.join("inbox/sparse")).unwrap().set_len(1 << 30).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("inbox/link")).unwrap();
        fs::create_dir_all(data_dir.tenant_spool(&acme)).unwrap();
        fs::write(data_dir.tenant_spool(&acme).join("job"), [0; 1000]).unwrap();
        fs::create_dir_all(data_dir.tenant_archive(&acme)).unwrap();
        fs::write(data_dir.tenant_archive(&acme).join("old"), [0; 5]).unwrap();
        let other = TenantName::parse("other").unwrap();
        fs::create_dir_all(data_dir.tenant_root(&other)).unwrap();
        fs::write(data_dir.tenant_root(&other).join("theirs"), [0; 50]).unwrap();

        let usage = tenant_usage(&data_dir, &acme).unwrap();
        assert_eq!(usage.files, 6);
        assert_eq!(usage.bytes, 100 + 7 + 10 + (1 << 30) + 1000 + 5, "apparent sizes");
        assert_eq!((usage.uploading_files, usage.uploading_bytes), (1, 7));
        assert_eq!(usage.settled(), (usage.bytes - 7, 5));
        // A file taken into a job keeps its inbox name while the job runs (a
        // hard link into the spool): it counts once.
        fs::write(root.join("inbox/taken.csv"), [0; 300]).unwrap();
        fs::hard_link(root.join("inbox/taken.csv"), data_dir.tenant_spool(&acme).join("job2")).unwrap();
        let linked = tenant_usage(&data_dir, &acme).unwrap();
        assert_eq!((linked.files, linked.bytes), (usage.files + 1, usage.bytes + 300));
    }
}
