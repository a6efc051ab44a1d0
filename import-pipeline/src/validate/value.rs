//! Typed values and the per-type checks that produce them.

use chrono::{NaiveDate, NaiveDateTime};

use crate::profile::{Column, ColumnType};

/// One checked value, ready for the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// An empty field in a column that is not required.
    Null,
    /// A `text` or `email` value, verbatim (already UTF-8).
    Text(String),
    /// An `integer` value.
    Integer(i64),
    /// A `decimal` value normalised to `[-]digits[.digits]` with `.` as
    /// separator, no `+`, no leading zeros and no negative zero; the
    /// fractional digits are kept as written, so `"1,50"` becomes `"1.50"`.
    /// A string so that loading is exact.
    Decimal(String),
    /// A `boolean` value.
    Boolean(bool),
    /// A `date` value.
    Date(NaiveDate),
    /// A `timestamp` value (no time zone).
    Timestamp(NaiveDateTime),
}

/// Longest part of a refused value quoted back in a message.
const QUOTED_MAX_CHARS: usize = 40;

/// Quotes a refused value for a message: escaped like a Rust string literal
/// (so control characters and quotes cannot break a receipt line) and cut
/// after [`QUOTED_MAX_CHARS`] characters.
pub(crate) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED_MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Checks one field against its column. Fields are not trimmed: `" 12"` is
/// not an integer. An empty field is [`Value::Null`], or refused when the
/// column is required.
pub(crate) fn parse(column: &Column, text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return if column.required() { Err("value required".to_owned()) } else { Ok(Value::Null) };
    }
    match column.column_type() {
        ColumnType::Text => Ok(Value::Text(text.to_owned())),
        ColumnType::Integer => integer(text).map(Value::Integer),
        ColumnType::Decimal { separator } => decimal(text, *separator).map(Value::Decimal),
        ColumnType::Boolean => boolean(text).map(Value::Boolean),
        ColumnType::Date(format) => format
            .parse_date(text)
            .map(Value::Date)
            .map_err(|_| format!("expected date like {}, got {}", format.example(), quote(text))),
        ColumnType::Timestamp(format) => format
            .parse_timestamp(text)
            .map(Value::Timestamp)
            .map_err(|_| format!("expected timestamp like {}, got {}", format.example(), quote(text))),
        ColumnType::Email => {
            if is_email(text) {
                Ok(Value::Text(text.to_owned()))
            } else {
                Err(format!("expected e-mail address like name@example.com, got {}", quote(text)))
            }
        }
    }
}

fn integer(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|_| {
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            format!("integer {} is out of range (-9223372036854775808 to 9223372036854775807)", quote(text))
        } else {
            format!("expected integer, got {}", quote(text))
        }
    })
}

/// `[+-]digits[<separator>digits]`; anything else (thousands separators,
/// the other separator, exponents, spaces) is refused.
fn decimal(text: &str, separator: u8) -> Result<String, String> {
    let refuse = || format!("expected decimal with '{}' as separator, got {}", char::from(separator), quote(text));
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = match body.bytes().position(|b| b == separator) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !fraction.is_none_or(digits) {
        return Err(refuse());
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let zero = whole == "0" && fraction.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    let mut normal = String::with_capacity(text.len());
    if negative && !zero {
        normal.push('-');
    }
    normal.push_str(whole);
    if let Some(fraction) = fraction {
        normal.push('.');
        normal.push_str(fraction);
    }
    Ok(normal)
}

fn boolean(text: &str) -> Result<bool, String> {
    const TRUE: [&str; 3] = ["true", "1", "yes"];
    const FALSE: [&str; 3] = ["false", "0", "no"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Ok(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Ok(false)
    } else {
        Err(format!("expected boolean (true/false, 1/0, yes/no), got {}", quote(text)))
    }
}

/// A sane shape, not RFC 5322: one `@`, a non-empty local part of at most
/// 64 bytes, a domain with a dot and no empty label, no spaces or control
/// characters, at most 254 bytes in all.
fn is_email(text: &str) -> bool {
    if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(integer("42"), Ok(42));
        assert_eq!(integer("-7"), Ok(-7));
        assert_eq!(integer("+7"), Ok(7));
        assert_eq!(integer("007"), Ok(7));
        assert_eq!(integer("12a"), Err("expected integer, got \"12a\"".to_owned()));
        assert_eq!(integer(" 12"), Err("expected integer, got \" 12\"".to_owned()));
        assert!(integer("1.0").is_err());
        assert!(integer("-").is_err());
        assert!(integer("99999999999999999999").unwrap_err().contains("out of range"));
    }

    #[test]
    fn decimals_are_normalised() {
        assert_eq!(decimal("1234,56", b','), Ok("1234.56".to_owned()));
        assert_eq!(decimal("1234.56", b'.'), Ok("1234.56".to_owned()));
        assert_eq!(decimal("+001.50", b'.'), Ok("1.50".to_owned()));
        assert_eq!(decimal("-0,00", b','), Ok("0.00".to_owned()));
        assert_eq!(decimal("-12", b','), Ok("-12".to_owned()));
        assert_eq!(decimal("0", b'.'), Ok("0".to_owned()));
    }

    #[test]
    fn decimals_refuse_the_other_separator_and_thousands() {
        assert_eq!(decimal("1.5", b','), Err("expected decimal with ',' as separator, got \"1.5\"".to_owned()));
        for bad in ["1,5", "1,234.56", "1 234.56", "1e5", ".5", "5.", "", "-", "1..2", "1.2.3", "NaN"] {
            assert!(decimal(bad, b'.').is_err(), "{bad:?} accepted");
        }
        assert!(decimal("1.234,56", b',').is_err());
    }

    #[test]
    fn booleans() {
        for yes in ["true", "TRUE", "1", "Yes"] {
            assert_eq!(boolean(yes), Ok(true));
        }
        for no in ["false", "False", "0", "NO"] {
            assert_eq!(boolean(no), Ok(false));
        }
        assert!(boolean("y").is_err());
        assert!(boolean("2").is_err());
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", "first.last+tag@sub.example.org", "é@exemple.fr"] {
            assert!(is_email(good), "{good:?} refused");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@", "a@@b.co", "a@b@c.co", "a b@c.co", "a@b..co", "a@.b.co", "a@b.co."] {
            assert!(!is_email(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn refused_values_are_quoted_safely_and_cut() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(40)));
    }
}
