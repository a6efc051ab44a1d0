//! Attributes reported to clients: per entry ([`FileStat`]) and per filesystem
//! ([`FsStats`]).

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_std::fs::MetadataExt as _;

use super::path::MAX_NAME_BYTES;

/// What a client learns about one file or directory. Symlinks and special
/// files never get one: they are refused or left out of listings.
#[derive(Clone, Debug)]
pub(crate) struct FileStat {
    /// Size in bytes (for a directory, whatever the filesystem says).
    pub(crate) size: u64,
    /// Directory rather than regular file.
    pub(crate) is_dir: bool,
    /// The real permission bits, `mode & 0o777`.
    pub(crate) permissions: u32,
    /// Last modification.
    pub(crate) modified: SystemTime,
    /// Last access.
    pub(crate) accessed: SystemTime,
}

impl FileStat {
    /// From the metadata of an entry looked up through a cap-std `Dir`.
    pub(super) fn from_cap(meta: &cap_std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            is_dir: meta.is_dir(),
            permissions: meta.mode() & 0o777,
            modified: unix_time(meta.mtime(), meta.mtime_nsec()),
            accessed: unix_time(meta.atime(), meta.atime_nsec()),
        }
    }

    /// From the metadata of an open file.
    pub(super) fn from_std(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            is_dir: meta.is_dir(),
            permissions: meta.mode() & 0o777,
            modified: unix_time(meta.mtime(), meta.mtime_nsec()),
            accessed: unix_time(meta.atime(), meta.atime_nsec()),
        }
    }
}

#[cfg(test)]
impl FileStat {
    /// An entry modified and accessed `modified` seconds after the epoch.
    pub(crate) fn sample(is_dir: bool, permissions: u32, size: u64, modified: u64) -> Self {
        let t = UNIX_EPOCH + Duration::from_secs(modified);
        Self { size, is_dir, permissions, modified: t, accessed: t }
    }
}

/// Seconds and nanoseconds since the epoch as a `SystemTime`; times before
/// 1970 are possible on disk and are kept, not clamped.
fn unix_time(secs: i64, nanos: i64) -> SystemTime {
    let nanos = u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(u64::from(nanos))
    }
}

/// Space on the filesystem holding the tenant tree (SFTP `statvfs@openssh.com`,
/// FTP has no equivalent). Block counts are in units of `block_size`.
#[derive(Clone, Debug)]
pub(crate) struct FsStats {
    /// Size of the blocks counted below (the fragment size, `f_frsize`).
    pub(crate) block_size: u64,
    /// Total blocks.
    pub(crate) blocks: u64,
    /// Free blocks.
    pub(crate) blocks_free: u64,
    /// Free blocks available to unprivileged users.
    pub(crate) blocks_available: u64,
    /// Total inodes.
    pub(crate) files: u64,
    /// Free inodes.
    pub(crate) files_free: u64,
    /// Longest name accepted: the smaller of ours and the filesystem's.
    pub(crate) name_max: u64,
}

impl FsStats {
    /// From `fstatvfs`.
    pub(super) fn from_statvfs(vfs: &rustix::fs::StatVfs) -> Self {
        Self {
            block_size: vfs.f_frsize,
            blocks: vfs.f_blocks,
            blocks_free: vfs.f_bfree,
            blocks_available: vfs.f_bavail,
            files: vfs.f_files,
            files_free: vfs.f_ffree,
            name_max: vfs.f_namemax.min(MAX_NAME_BYTES as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_and_after_the_epoch() {
        assert_eq!(unix_time(0, 0), UNIX_EPOCH);
        assert_eq!(unix_time(10, 5), UNIX_EPOCH + Duration::new(10, 5));
        assert_eq!(unix_time(-10, 0), UNIX_EPOCH - Duration::from_secs(10));
    }
}
