//! A path below a tenant's `/inbox`.

use std::fmt;

/// The writable area of a tenant's tree, as clients name it.
const INBOX: &str = "/inbox";

/// A file's path relative to a tenant's `/inbox` (`employees/2026-11.csv`):
/// one or more plain names joined by `/`, never empty, absolute, `.`, `..`
/// or holding a NUL. Only [`InboxPath::parse`] builds one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboxPath(String);

impl InboxPath {
    /// Checks `relative` (`employees/a.csv`); `None` unless every component
    /// is a plain name.
    pub fn parse(relative: &str) -> Option<Self> {
        let plain = |name: &str| !name.is_empty() && name != "." && name != ".." && !name.contains('\0');
        (!relative.is_empty() && relative.split('/').all(plain)).then(|| Self(relative.to_owned()))
    }

    /// The path relative to `/inbox`.
    pub fn as_relative(&self) -> &str {
        &self.0
    }
}

/// As clients see it: `/inbox/employees/a.csv`.
impl fmt::Display for InboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{INBOX}/{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_are_accepted() {
        let path = InboxPath::parse("employees/a.csv").expect("plain path");
        assert_eq!(path.as_relative(), "employees/a.csv");
        assert_eq!(path.to_string(), "/inbox/employees/a.csv");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "/a.csv", "a//b", "a/", "../a", "a/./b", "a/..", "a\0b"] {
            assert_eq!(InboxPath::parse(bad), None, "{bad:?} was accepted");
        }
    }
}
