//! How files look to FTP clients: `LIST` lines (the `ls -l` layout shared
//! with SFTP long names, which every FTP client parses), `NLST` names, and
//! the machine-readable facts of `MLSD`/`MLST` (RFC 3659); and the listing
//! of a path in any of these formats, read through the engine's session a
//! batch at a time, so that a huge directory is never held whole.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::fs::{FileStat, FsError, TenantPath};
use crate::engine::{DirListing, Session};

/// Which listing a command wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// `LIST`: `ls -l` lines.
    List,
    /// `NLST`: names only.
    Nlst,
    /// `MLSD`: RFC 3659 facts.
    Mlsd,
}

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

/// A listing in progress: a directory read batch by batch, or the one line
/// of a file.
pub(crate) enum Listing {
    /// LIST or NLST of a file: its line, until taken.
    Single(Option<String>),
    /// A directory, read through the engine a batch at a time.
    Dir {
        /// The open directory.
        listing: DirListing,
        /// Its path (MLSD facts depend on it).
        path: TenantPath,
        /// The format.
        kind: ListKind,
    },
}

impl Listing {
    /// Starts the listing of `path` (a directory, or a single file for LIST
    /// and NLST).
    pub(crate) async fn open(session: &Session, path: &TenantPath, kind: ListKind) -> Result<Self, FsError> {
        let stat = session.stat(path).await?;
        if stat.is_dir {
            let listing = session.open_dir(path).await?;
            return Ok(Self::Dir { listing, path: path.clone(), kind });
        }
        let name = path.file_name().unwrap_or_default();
        match kind {
            ListKind::List => {
                Ok(Self::Single(Some(list_line(name, &stat, session.login().as_str(), SystemTime::now()))))
            }
            ListKind::Nlst => Ok(Self::Single(Some(name.to_owned()))),
            ListKind::Mlsd => Err(FsError::NotADirectory),
        }
    }

    /// The next lines; empty at the end.
    pub(crate) async fn next_lines(&mut self, session: &Session) -> Result<Vec<String>, FsError> {
        let (listing, path, kind) = match self {
            Self::Single(line) => return Ok(line.take().into_iter().collect()),
            Self::Dir { listing, path, kind } => (listing, path, *kind),
        };
        let now = SystemTime::now();
        let owner = session.login().as_str();
        let mut lines = Vec::new();
        for (name, stat) in listing.next_batch().await? {
            lines.push(match kind {
                ListKind::List => list_line(&name, &stat, owner, now),
                ListKind::Nlst => name,
                ListKind::Mlsd => facts(&name, &stat, &session.resolve(path, name.as_bytes())?),
            });
        }
        Ok(lines)
    }

    /// The next lines as the data connection carries them (CRLF-terminated);
    /// empty at the end.
    pub(crate) async fn next_text(&mut self, session: &Session) -> Result<Vec<u8>, FsError> {
        let mut text = String::new();
        for line in self.next_lines(session).await? {
            text.push_str(&line);
            text.push_str("\r\n");
        }
        Ok(text.into_bytes())
    }
}

/// The path of `LIST -la /x` and the like: `ls` options are skipped, as
/// clients send them though RFC 959 knows none.
pub(crate) fn listing_path(arg: &[u8]) -> Vec<u8> {
    let mut rest = arg;
    while rest.first() == Some(&b'-') {
        match rest.iter().position(|&b| b == b' ') {
            Some(space) => rest = &rest[space + 1..],
            None => rest = &[],
        }
    }
    rest.to_vec()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timevals_are_utc_digits() {
        assert_eq!(timeval(UNIX_EPOCH + Duration::from_secs(1_709_547_600)), "20240304102000");
    }

    #[test]
    fn ls_options_are_skipped() {
        assert_eq!(listing_path(b"-la /inbox"), b"/inbox");
        assert_eq!(listing_path(b"-a"), b"");
        assert_eq!(listing_path(b"inbox"), b"inbox");
    }
}
