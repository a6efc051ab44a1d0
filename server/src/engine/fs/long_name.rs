//! The `ls -l` line of an entry: SFTP's long names and FTP's `LIST` lines
//! share OpenSSH's layout, which clients of both protocols parse.

use std::time::{SystemTime, UNIX_EPOCH};

use super::FileStat;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/// Listings show the time of day for files changed within this many seconds
/// (six months, like `ls`), the year otherwise.
const RECENT: i64 = 182 * 24 * 3600;

impl FileStat {
    /// `-rw-r--r--    1 owner    owner        1234 Mar  4 10:20 name`
    pub(crate) fn long_name(&self, name: &str, owner: &str, now: SystemTime) -> String {
        let mut mode = String::with_capacity(10);
        mode.push(if self.is_dir { 'd' } else { '-' });
        for shift in [6, 3, 0] {
            let bits = (self.permissions >> shift) & 0o7;
            mode.push(if bits & 4 != 0 { 'r' } else { '-' });
            mode.push(if bits & 2 != 0 { 'w' } else { '-' });
            mode.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        let links = if self.is_dir { 2 } else { 1 };
        let when = time_column(unix_seconds(self.modified), unix_seconds(now));
        format!("{mode} {links:>4} {owner:<8} {owner:<8} {size:>8} {when} {name}", size = self.size)
    }
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

/// Seconds since the epoch, negative before it.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn long_name_of_a_recent_file_shows_the_time_of_day() {
        // 2024-03-04 10:20:00 UTC
        let s = FileStat::sample(false, 0o644, 1234, 1_709_547_600);
        let now = UNIX_EPOCH + Duration::from_secs(1_709_547_600 + 3600);
        assert_eq!(s.long_name("a.csv", "alice", now), "-rw-r--r--    1 alice    alice        1234 Mar  4 10:20 a.csv");
    }

    #[test]
    fn long_name_of_an_old_directory_shows_the_year() {
        // 2019-11-20 08:00:00 UTC
        let s = FileStat::sample(true, 0o700, 4096, 1_574_236_800);
        let now = UNIX_EPOCH + Duration::from_secs(1_709_547_600);
        assert_eq!(s.long_name("inbox", "bob", now), "drwx------    2 bob      bob          4096 Nov 20  2019 inbox");
    }
}
