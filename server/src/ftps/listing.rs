//! How files look to FTP clients: `LIST` lines (the `ls -l` layout shared
//! with SFTP long names, which every FTP client parses), `NLST` names, and
//! the machine-readable facts of `MLSD`/`MLST` (RFC 3659).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::fs::{FileStat, TenantPath};

/// A `LIST` line.
pub(crate) fn list_line(name: &str, stat: &FileStat, owner: &str, now: SystemTime) -> String {
    stat.long_name(name, owner, now)
}

/// An RFC 3659 time value, `YYYYMMDDHHMMSS` in UTC (MDTM, `modify` fact).
pub(crate) fn timeval(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// The facts of one entry followed by a space and its name (`MLSD` line,
/// `MLST` line without the leading space). `perm` tells what this user may
/// do, from the area rules: writes only strictly below `/inbox`.
pub(crate) fn facts(name: &str, stat: &FileStat, path: &TenantPath) -> String {
    let is_inbox = path.parent().is_root() && path.file_name() == Some("inbox");
    let perm = match (stat.is_dir, path.is_writable()) {
        (true, true) => "elcdfmp",
        // `/inbox` itself takes new entries but cannot be renamed or removed.
        (true, false) if is_inbox => "elcm",
        (true, false) => "el",
        (false, true) => "rdfw",
        (false, false) => "r",
    };
    let kind = if stat.is_dir { "dir" } else { "file" };
    format!("type={kind};size={};modify={};perm={perm}; {name}", stat.size, timeval(stat.modified))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timevals_are_utc_digits() {
        assert_eq!(timeval(UNIX_EPOCH + Duration::from_secs(1_709_547_600)), "20240304102000");
    }
}
