//! Client paths: from raw protocol bytes to a [`TenantPath`].
//!
//! Resolution is purely lexical and never touches the disk. It is the first of
//! two fences: it turns whatever a client sent into a list of plain names
//! (no `/`, no `.`, no `..`, no NUL, no control characters, bounded lengths),
//! clamping `..` at the tenant root the way a chroot does. The second fence is
//! cap-std plus the no-follow walk in `walk.rs`, which holds even if this one
//! had a bug.

use std::fmt;

use passerelle_import::RECEIPT_SUFFIX;
use passerelle_tree::InboxPath;

use super::error::FsError;

/// Longest client path accepted, in bytes (PATH_MAX).
pub(crate) const MAX_PATH_BYTES: usize = 4096;
/// Longest single name accepted, in bytes (NAME_MAX).
pub(crate) const MAX_NAME_BYTES: usize = 255;
/// Prefix of the hidden temporary files behind uploads in progress. Names
/// starting with it are invisible in listings and cannot be addressed, so a
/// client can neither read nor disturb another upload's partial data.
pub(crate) const UPLOAD_TEMP_PREFIX: &str = ".passerelle-upload-";

/// Name of the writable area under the tenant root.
const INBOX: &str = "inbox";
/// Name of the area of receipts under the tenant root.
const OUTBOX: &str = "outbox";

/// Which part of the tenant tree a path is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area {
    /// `/` itself, and any path not under `/inbox` or `/outbox` (such paths
    /// never exist for a client: the root shows only the two areas).
    Root,
    /// `/inbox` and everything below it.
    Inbox,
    /// `/outbox` and everything below it.
    Outbox,
}

/// A normalised path inside one tenant's tree; only `TenantFs::resolve` (and
/// [`TenantPath::root`]) build one, so holding one proves the checks ran.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TenantPath {
    /// Plain names from the root down; each passed [`check_name`] and none is
    /// an upload temporary name.
    components: Vec<String>,
}

impl TenantPath {
    /// The tenant root, `/`.
    pub(crate) fn root() -> Self {
        Self { components: Vec::new() }
    }

    /// As clients see it: `/inbox/a.csv`, `/` for the root.
    pub(crate) fn to_client_string(&self) -> String {
        if self.components.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::with_capacity(self.components.iter().map(|c| c.len() + 1).sum());
        for component in &self.components {
            out.push('/');
            out.push_str(component);
        }
        out
    }

    /// Which area the path is in.
    pub(crate) fn area(&self) -> Area {
        match self.components.first().map(String::as_str) {
            Some(INBOX) => Area::Inbox,
            Some(OUTBOX) => Area::Outbox,
            _ => Area::Root,
        }
    }

    /// The last name, `None` for the root.
    pub(crate) fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// Whether this is `/`.
    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The containing directory (`/` for the root itself, like `cd ..`).
    pub(crate) fn parent(&self) -> Self {
        let mut components = self.components.clone();
        components.pop();
        Self { components }
    }

    /// The path relative to `/inbox`, for paths strictly below it.
    pub(crate) fn inbox_path(&self) -> Option<InboxPath> {
        match self.components.split_first() {
            Some((area, below)) if area == INBOX && !below.is_empty() => InboxPath::parse(&below.join("/")),
            _ => None,
        }
    }

    /// Whether clients may create, change or remove this entry: only strictly
    /// below `/inbox`.
    pub(crate) fn is_writable(&self) -> bool {
        self.area() == Area::Inbox && self.components.len() >= 2
    }

    /// Whether this names a receipt in `/outbox`, which clients may delete
    /// (and do nothing else to).
    pub(crate) fn is_receipt(&self) -> bool {
        self.area() == Area::Outbox
            && self.components.len() >= 2
            && self.file_name().is_some_and(|name| name.ends_with(RECEIPT_SUFFIX))
    }

    /// The names from the root down.
    pub(super) fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether `self` lies strictly below `ancestor`.
    pub(super) fn is_strictly_below(&self, ancestor: &Self) -> bool {
        self.components.len() > ancestor.components.len() && self.components.starts_with(&ancestor.components)
    }

    /// Whether the path is one a client could ever reach: the root, or under
    /// one of the two areas. Anything else is reported missing without asking
    /// the disk, which hides whatever else sits in the tenant root.
    pub(super) fn is_visible(&self) -> bool {
        self.is_root() || self.area() != Area::Root
    }
}

impl fmt::Display for TenantPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_client_string())
    }
}

/// Whether a directory entry's name is one clients may see: UTF-8 (checked by
/// the caller), addressable by [`resolve`], and not an upload in progress.
pub(super) fn is_listable_name(name: &str) -> bool {
    check_name(name).is_ok() && name != "." && name != ".." && !name.starts_with(UPLOAD_TEMP_PREFIX)
}

/// Checks one name as sent by a client; `.` and `..` are handled by the caller.
fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(FsError::InvalidPath("name too long"));
    }
    // `char::is_control` covers C0 (including NUL), DEL and C1: none has a
    // business in a file name and some confuse terminals and log readers.
    if name.chars().any(char::is_control) {
        return Err(FsError::InvalidPath("control character in name"));
    }
    Ok(())
}

/// Resolves raw client bytes against `cwd`.
///
/// Absolute paths start at the tenant root; relative ones at `cwd`. Empty
/// components and `.` are dropped; `..` removes the previous name and stops at
/// the root (`/../../etc/passwd` is `/etc/passwd`, which does not exist for a
/// client). Unicode is kept as sent: look-alikes (`ｉｎｂｏｘ`, `∕`) are just
/// other names, unnormalised, and cannot escape.
pub(super) fn resolve(cwd: &TenantPath, raw: &[u8]) -> Result<TenantPath, FsError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(FsError::InvalidPath("path too long"));
    }
    if raw.contains(&0) {
        return Err(FsError::InvalidPath("NUL in path"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| FsError::InvalidPath("not UTF-8"))?;
    let mut components = if text.starts_with('/') { Vec::new() } else { cwd.components.clone() };
    for name in text.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            _ => {
                check_name(name)?;
                components.push(name.to_owned());
            }
        }
    }
    // Checked on the result only: a temporary name that `..` removed again is
    // never looked up.
    if components.iter().any(|c| c.starts_with(UPLOAD_TEMP_PREFIX)) {
        return Err(FsError::InvalidPath("reserved name"));
    }
    let resolved = TenantPath { components };
    // A relative path can grow past the limit through a deep `cwd`.
    if resolved.components.iter().map(|c| c.len() + 1).sum::<usize>() > MAX_PATH_BYTES {
        return Err(FsError::InvalidPath("path too long"));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cwd: &str, raw: &str) -> Result<String, FsError> {
        let cwd = resolve(&TenantPath::root(), cwd.as_bytes()).expect("cwd");
        resolve(&cwd, raw.as_bytes()).map(|p| p.to_client_string())
    }

    fn invalid(result: Result<String, FsError>) -> bool {
        matches!(result, Err(FsError::InvalidPath(_)))
    }

    #[test]
    fn absolute_and_relative_paths() {
        assert_eq!(at("/", "/inbox/a.csv").unwrap(), "/inbox/a.csv");
        assert_eq!(at("/inbox", "a.csv").unwrap(), "/inbox/a.csv");
        assert_eq!(at("/inbox", "sub//./b.csv").unwrap(), "/inbox/sub/b.csv");
        assert_eq!(at("/inbox/sub", "../c").unwrap(), "/inbox/c");
        assert_eq!(at("/inbox/sub", "").unwrap(), "/inbox/sub");
        assert_eq!(at("/inbox/sub", ".").unwrap(), "/inbox/sub");
        assert_eq!(at("/inbox", "/").unwrap(), "/");
        assert_eq!(at("/inbox", "dir/").unwrap(), "/inbox/dir");
    }

    #[test]
    fn dot_dot_is_clamped_at_the_root() {
        assert_eq!(at("/", "../").unwrap(), "/");
        assert_eq!(at("/", "/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(at("/", "inbox/../../x").unwrap(), "/x");
        assert_eq!(at("/", "/inbox/../../../etc").unwrap(), "/etc");
        assert_eq!(at("/inbox", "../../../../outbox").unwrap(), "/outbox");
        assert_eq!(at("/", "/../other-tenant/inbox/x").unwrap(), "/other-tenant/inbox/x");
        assert_eq!(at("/", "/etc/passwd").unwrap(), "/etc/passwd");
    }

    #[test]
    fn areas() {
        let area = |raw: &str| resolve(&TenantPath::root(), raw.as_bytes()).unwrap().area();
        assert_eq!(area("/"), Area::Root);
        assert_eq!(area("/inbox"), Area::Inbox);
        assert_eq!(area("/inbox/a/b"), Area::Inbox);
        assert_eq!(area("/outbox/r.json"), Area::Outbox);
        assert_eq!(area("/etc/passwd"), Area::Root);
        assert_eq!(area("/inboxx"), Area::Root);
        assert_eq!(area("/ｉｎｂｏｘ/a"), Area::Root);
        let writable = |raw: &str| resolve(&TenantPath::root(), raw.as_bytes()).unwrap().is_writable();
        assert!(writable("/inbox/a"));
        assert!(!writable("/inbox"));
        assert!(!writable("/"));
        assert!(!writable("/outbox/a"));
        assert!(!writable("/etc/a"));
    }

    #[test]
    fn hostile_bytes_are_refused() {
        assert!(invalid(at("/", "/inbox/a\0b")));
        assert!(invalid(at("/", "/inbox/a\nb")));
        assert!(invalid(at("/", "/inbox/a\rb")));
        assert!(invalid(at("/", "/inbox/\x1b[31m")));
        assert!(invalid(at("/", "/inbox/a\x7fb")));
        assert!(invalid(at("/", "/inbox/a\u{85}b")));
        let bad_utf8 = resolve(&TenantPath::root(), b"/inbox/\xff\xfe.csv");
        assert!(matches!(bad_utf8, Err(FsError::InvalidPath(_))));
        let overlong_slash = resolve(&TenantPath::root(), b"/inbox/\xc0\xaf..\xc0\xafx");
        assert!(matches!(overlong_slash, Err(FsError::InvalidPath(_))));
    }

    #[test]
    fn lengths_are_bounded() {
        let long_component = format!("/inbox/{}", "a".repeat(300));
        assert!(invalid(at("/", &long_component)));
        assert!(at("/", &format!("/inbox/{}", "a".repeat(255))).is_ok());
        let long_path = format!("/inbox/{}", "a/".repeat(2048));
        assert!(invalid(at("/", &long_path)));
        let four_kib_name = "x".repeat(4096);
        assert!(invalid(at("/", &four_kib_name)));
        // A long cwd plus a relative path may not exceed the limit either.
        let deep = format!("/inbox/{}", vec!["b".repeat(200); 20].join("/"));
        let cwd = resolve(&TenantPath::root(), deep.as_bytes()).unwrap();
        assert!(matches!(resolve(&cwd, "c".repeat(200).as_bytes()), Err(FsError::InvalidPath(_))));
    }

    #[test]
    fn unicode_look_alikes_are_plain_names() {
        assert_eq!(at("/", "/inbox/..∕x").unwrap(), "/inbox/..∕x");
        assert_eq!(at("/", "/ｉｎｂｏｘ/a").unwrap(), "/ｉｎｂｏｘ/a");
        // NFC and NFD spellings stay distinct names.
        assert_ne!(at("/", "/inbox/caf\u{e9}").unwrap(), at("/", "/inbox/cafe\u{301}").unwrap());
    }

    #[test]
    fn upload_temporaries_cannot_be_named() {
        assert!(invalid(at("/", "/inbox/.passerelle-upload-0123abcd")));
        assert!(invalid(at("/inbox", ".passerelle-upload-x/y")));
        assert_eq!(at("/", "/inbox/.passerelle-upload-x/../a").unwrap(), "/inbox/a");
        assert!(!is_listable_name(".passerelle-upload-00ff"));
        assert!(is_listable_name(".hidden"));
        assert!(!is_listable_name("bad\nname"));
    }

    #[test]
    fn helpers() {
        let p = resolve(&TenantPath::root(), b"/inbox/employees/2026.csv").unwrap();
        assert_eq!(p.file_name(), Some("2026.csv"));
        assert_eq!(p.parent().to_client_string(), "/inbox/employees");
        assert_eq!(p.to_string(), "/inbox/employees/2026.csv");
        assert_eq!(TenantPath::root().file_name(), None);
        assert_eq!(TenantPath::root().parent(), TenantPath::root());
        assert!(p.is_strictly_below(&p.parent()));
        assert!(!p.is_strictly_below(&p));
    }
}
