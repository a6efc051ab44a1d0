//! Hiding passwords inside database URLs before they are printed or logged.

/// What replaces a password.
pub(crate) const MASK: &str = "***";

/// Replaces the password of `scheme://user:password@host/...` and any `password=` query parameter by
/// [`MASK`]; any other text is returned unchanged.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..].find(['/', '?', '#']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, MASK);
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    format!("{name}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(redact_url("postgres://u:s3cr%40t@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
        assert_eq!(
            redact_url("postgres://u@db/x?password=p&sslmode=require"),
            "postgres://u@db/x?password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("sqlite://./data/catalog.db"), "sqlite://./data/catalog.db");
    }
}
