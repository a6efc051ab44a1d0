//! How files look to SFTP clients: attributes and times (the `ls -l` long
//! names of directory listings are the engine's, shared with FTP).

use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::Attrs;
use crate::engine::fs::{FileStat, unix_seconds};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

/// SFTP attributes of a file: size, type and permission bits, times.
/// Ownership is not reported (uid/gid on the server mean nothing to a client).
pub(super) fn attrs(stat: &FileStat) -> Attrs {
    let kind = if stat.is_dir { S_IFDIR } else { S_IFREG };
    Attrs {
        size: Some(stat.size),
        uid_gid: None,
        permissions: Some(kind | (stat.permissions & 0o777)),
        times: Some((unix_seconds_u32(stat.accessed), unix_seconds_u32(stat.modified))),
    }
}

/// SFTP v3 times are unsigned 32-bit seconds: clamped into that range.
fn unix_seconds_u32(t: SystemTime) -> u32 {
    u32::try_from(unix_seconds(t).max(0)).unwrap_or(u32::MAX)
}

/// The `SystemTime` of an SFTP v3 time.
pub(super) fn system_time(secs: u32) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(u64::from(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_carry_the_file_type_bits() {
        assert_eq!(attrs(&FileStat::sample(true, 0o700, 0, 0)).permissions, Some(0o040_700));
        assert_eq!(attrs(&FileStat::sample(false, 0o600, 0, 0)).permissions, Some(0o100_600));
        assert_eq!(attrs(&FileStat::sample(false, 0o600, 7, 5)).times, Some((5, 5)));
    }
}
