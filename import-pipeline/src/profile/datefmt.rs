//! Date and timestamp formats: chrono `strftime` patterns, checked once when
//! the profile is read and rendered with an example for error messages.

use std::fmt::Write as _;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveDateTime};

/// The date every format is rendered with in messages: `expected date like 31/12/2026`.
const EXAMPLE_DATE: (i32, u32, u32) = (2026, 12, 31);
/// The time of day shown in timestamp examples.
const EXAMPLE_TIME: (u32, u32, u32) = (23, 59, 59);

/// A checked `strftime` pattern for a date or timestamp column.
#[derive(Clone, Debug)]
pub struct DateFormat {
    pattern: String,
    items: Vec<Item<'static>>,
    example: String,
}

impl DateFormat {
    /// Checks `pattern` for a `date` column: it must parse, need no time of
    /// day or offset, and read back the example date it writes (so it has a
    /// year, a month and a day).
    pub(crate) fn date(pattern: &str) -> Result<Self, String> {
        let items = items(pattern)?;
        let (y, m, d) = EXAMPLE_DATE;
        let example_value = NaiveDate::from_ymd_opt(y, m, d).expect("valid example date");
        let example = render(&example_value.format_with_items(items.iter()), pattern, "date")?;
        let format = Self { pattern: pattern.to_owned(), items, example };
        let back = format.parse_date(&format.example).ok();
        match back.map(|d| render(&d.format_with_items(format.items.iter()), pattern, "date")) {
            Some(Ok(text)) if text == format.example => Ok(format),
            _ => Err(format!(
                "format {pattern:?} cannot read back the dates it writes (it needs a year, a month and a day)"
            )),
        }
    }

    /// Checks `pattern` for a `timestamp` column: it must parse, need no
    /// offset, and read back the example timestamp it writes (a format may
    /// leave out seconds, not the date or the hour).
    pub(crate) fn timestamp(pattern: &str) -> Result<Self, String> {
        let items = items(pattern)?;
        let (y, m, d) = EXAMPLE_DATE;
        let (h, min, s) = EXAMPLE_TIME;
        let example_value = NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_opt(h, min, s))
            .expect("valid example timestamp");
        let example = render(&example_value.format_with_items(items.iter()), pattern, "timestamp")?;
        let format = Self { pattern: pattern.to_owned(), items, example };
        let back = format.parse_timestamp(&format.example).ok();
        match back.map(|t| render(&t.format_with_items(format.items.iter()), pattern, "timestamp")) {
            Some(Ok(text)) if text == format.example => Ok(format),
            _ => Err(format!(
                "format {pattern:?} cannot read back the timestamps it writes (it needs a date and a time of day; use type = \"date\" for dates alone)"
            )),
        }
    }

    /// The pattern as written in the profile.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// 2026-12-31 (23:59:59) written in this format, as shown in messages.
    pub fn example(&self) -> &str {
        &self.example
    }

    /// Reads a date written in this format.
    pub(crate) fn parse_date(&self, text: &str) -> Result<NaiveDate, chrono::ParseError> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, self.items.iter())?;
        parsed.to_naive_date()
    }

    /// Reads a timestamp written in this format.
    pub(crate) fn parse_timestamp(&self, text: &str) -> Result<NaiveDateTime, chrono::ParseError> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, self.items.iter())?;
        parsed.to_naive_datetime_with_offset(0)
    }
}

fn items(pattern: &str) -> Result<Vec<Item<'static>>, String> {
    if pattern.is_empty() {
        return Err("format is empty".to_owned());
    }
    StrftimeItems::new(pattern)
        .parse_to_owned()
        .map_err(|_| format!("format {pattern:?} is not a valid strftime pattern"))
}

/// Writes the example; chrono reports specifiers the value cannot supply
/// (a time in a date format, an offset in a naive timestamp) as a formatting error.
fn render(value: &impl std::fmt::Display, pattern: &str, kind: &str) -> Result<String, String> {
    let mut text = String::new();
    write!(text, "{value}").map_err(|_| {
        format!("format {pattern:?} asks for fields a {kind} does not have (time of day, time zone or offset)")
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_formats_render_the_example_date() {
        assert_eq!(DateFormat::date("%d/%m/%Y").unwrap().example(), "31/12/2026");
        assert_eq!(DateFormat::date("%Y-%m-%d").unwrap().example(), "2026-12-31");
        assert_eq!(DateFormat::timestamp("%Y-%m-%dT%H:%M:%S").unwrap().example(), "2026-12-31T23:59:59");
    }

    #[test]
    fn unusable_formats_are_refused() {
        assert!(DateFormat::date("%d/%m").is_err(), "no year");
        assert!(DateFormat::date("%Y-%m-%d %H:%M").is_err(), "time in a date");
        assert!(DateFormat::date("%Q").is_err(), "bad specifier");
        assert!(DateFormat::date("").is_err());
        assert!(DateFormat::timestamp("%Y-%m-%d").is_err(), "no time");
        assert!(DateFormat::timestamp("%Y-%m-%d %H:%M:%S %z").is_err(), "offset");
    }

    #[test]
    fn dates_are_parsed_strictly() {
        let format = DateFormat::date("%d/%m/%Y").unwrap();
        assert_eq!(format.parse_date("01/02/2026").unwrap(), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        assert!(format.parse_date("2026-02-01").is_err());
        assert!(format.parse_date("31/02/2026").is_err());
        assert!(format.parse_date("01/02/2026 x").is_err());
    }
}
