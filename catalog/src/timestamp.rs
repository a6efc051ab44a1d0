//! The one way passerelle writes a time for people and scripts: RFC 3339,
//! UTC, milliseconds (`2026-12-04T11:04:07.123Z`). The catalog stores Unix
//! milliseconds; every JSON output and table of the CLI goes through
//! [`rfc3339_ms`], here or through the `serde` helpers below.

use serde::Serializer;
use time::OffsetDateTime;
use time::macros::format_description;

/// Unix milliseconds as RFC 3339 in UTC with exactly three fractional
/// digits; a time out of `time`'s range falls back to the number itself.
pub fn rfc3339_ms(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `#[serde(serialize_with = "…")]` for a Unix-milliseconds field.
pub(crate) fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339_ms(*ms))
}

/// `#[serde(serialize_with = "…")]` for an optional Unix-milliseconds field.
// serde hands `serialize_with` a reference to the field, an `&Option`.
#[allow(clippy::ref_option)]
pub(crate) fn serialize_option<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serializer.serialize_str(&rfc3339_ms(*ms)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_382_247_123), "2026-12-04T11:04:07.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
