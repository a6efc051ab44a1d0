//! How files look to SFTP clients: attributes and the `ls -l` style long
//! name of directory listings (OpenSSH's layout, which some clients parse).

use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::Attrs;
use crate::engine::fs::FileStat;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/// Listings show the time of day for files changed within this many seconds
/// (six months, like `ls`), the year otherwise.
const RECENT: i64 = 182 * 24 * 3600;

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

/// `-rw-r--r--    1 owner    owner        1234 Mar  4 10:20 name`
pub(crate) fn long_name(name: &str, stat: &FileStat, owner: &str, now: SystemTime) -> String {
    let mut mode = String::with_capacity(10);
    mode.push(if stat.is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (stat.permissions >> shift) & 0o7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let links = if stat.is_dir { 2 } else { 1 };
    let when = time_column(unix_seconds(stat.modified), unix_seconds(now));
    format!("{mode} {links:>4} {owner:<8} {owner:<8} {size:>8} {when} {name}", size = stat.size)
}

/// `Mar  4 10:20` for recent times, `Mar  4  2019` for others (UTC).
fn time_column(secs: i64, now: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    if (now - secs).abs() < RECENT {
        format!("{month} {:>2} {:02}:{:02}", t.day(), t.hour(), t.minute())
    } else {
        format!("{month} {:>2} {:>5}", t.day(), t.year())
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
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
    use std::time::Duration;

    use super::*;

    fn stat(is_dir: bool, permissions: u32, size: u64, modified: u64) -> FileStat {
        let t = UNIX_EPOCH + Duration::from_secs(modified);
        FileStat { size, is_dir, permissions, modified: t, accessed: t }
    }

    #[test]
    fn long_name_of_a_recent_file_shows_the_time_of_day() {
        // 2024-03-04 10:20:00 UTC
        let s = stat(false, 0o644, 1234, 1_709_547_600);
        let now = UNIX_EPOCH + Duration::from_secs(1_709_547_600 + 3600);
        assert_eq!(
            long_name("a.csv", &s, "alice", now),
            "-rw-r--r--    1 alice    alice        1234 Mar  4 10:20 a.csv"
        );
    }

    #[test]
    fn long_name_of_an_old_directory_shows_the_year() {
        // 2019-11-20 08:00:00 UTC
        let s = stat(true, 0o700, 4096, 1_574_236_800);
        let now = UNIX_EPOCH + Duration::from_secs(1_709_547_600);
        assert_eq!(long_name("inbox", &s, "bob", now), "drwx------    2 bob      bob          4096 Nov 20  2019 inbox");
    }

    #[test]
    fn attrs_carry_the_file_type_bits() {
        assert_eq!(attrs(&stat(true, 0o700, 0, 0)).permissions, Some(0o040_700));
        assert_eq!(attrs(&stat(false, 0o600, 0, 0)).permissions, Some(0o100_600));
        assert_eq!(attrs(&stat(false, 0o600, 7, 5)).times, Some((5, 5)));
    }
}
