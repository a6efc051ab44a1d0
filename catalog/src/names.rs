//! Strictly validated names. A tenant name or login ends up in file paths,
//! database names and role names, so it is never a path fragment: only the
//! characters below, checked once, here.

use std::fmt;

use crate::error::NameError;

/// A tenant's name: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantName(String);

/// A user's login, unique across tenants: `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Login(String);

impl TenantName {
    /// Validates `raw` as a tenant name.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check(raw, "tenant name", 63, "'-'", |c| c == '-').map(|()| Self(raw.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Login {
    /// Validates `raw` as a login.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check(raw, "login", 64, "'.', '_' and '-'", |c| matches!(c, '.' | '_' | '-')).map(|()| Self(raw.to_owned()))
    }

    /// The login as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(
    raw: &str,
    what: &'static str,
    max_len: usize,
    extra_described: &str,
    extra: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    let invalid = |reason: String| NameError { what, reason };
    let mut chars = raw.chars();
    let Some(first) = chars.next() else {
        return Err(invalid("must not be empty".into()));
    };
    if raw.len() > max_len {
        return Err(invalid(format!("is {} characters long; at most {max_len} are allowed", raw.chars().count())));
    }
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !plain(first) {
        return Err(invalid("must start with a lower-case letter or a digit".into()));
    }
    if let Some(bad) = chars.find(|&c| !plain(c) && !extra(c)) {
        return Err(invalid(format!(
            "contains {bad:?}; only lower-case letters, digits and {extra_described} are allowed"
        )));
    }
    Ok(())
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for good in ["acme", "a", "0day", "acme-corp", &"a".repeat(63)] {
            assert!(TenantName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "Acme", "a b", "-a", "a.b", "a_b", &"a".repeat(64), &"a".repeat(300), "é", "a\0"]
        {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logins() {
        for good in ["alice", "alice.smith", "a_b-c", "0", &"a".repeat(64)] {
            assert!(Login::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "Alice", "a b", ".a", "_a", &"a".repeat(65), "ａ"] {
            assert!(Login::parse(bad).is_err(), "{bad}");
        }
    }
}
