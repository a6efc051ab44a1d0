//! Rows to PostgreSQL `COPY` binary format, on the validation thread, and
//! the text forms of dates and timestamps that SQLite tables keep.
//!
//! Binary format: a signature and header, then per row a field count and
//! each field as its length (-1 for NULL) and its bytes in PostgreSQL's
//! binary wire form; a -1 trailer ends the data. Values that validation
//! already parsed (integers, decimals, dates, timestamps, booleans) reach
//! the server in the form it stores, so it parses nothing: what makes the
//! load faster than `psql \copy` of the same text. Text is sent as it is
//! (UTF-8, without NUL bytes, which validation refuses).

use std::io::Write as _;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::Batcher;
use crate::validate::{Row, Value};

/// A batch is sent once it reaches this many bytes.
const BATCH_BYTES: usize = 256 << 10;
/// What every binary `COPY` stream starts with: signature, flags, header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// PostgreSQL's epoch for dates and timestamps.
const PG_EPOCH: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");

/// Encodes rows as `COPY ... FROM STDIN WITH (FORMAT binary)`, with
/// `_import_id` and `_line` appended.
pub(super) struct CopyBinary {
    buf: Vec<u8>,
    import_id: Vec<u8>,
}

impl CopyBinary {
    pub(super) fn new(import_id: &str) -> Self {
        let mut buf = Vec::with_capacity(BATCH_BYTES + 4096);
        buf.extend_from_slice(HEADER);
        Self { buf, import_id: import_id.as_bytes().to_vec() }
    }

    fn encode(&mut self, row: &Row) {
        let fields = i16::try_from(row.values.len() + 2).unwrap_or(i16::MAX);
        self.buf.extend_from_slice(&fields.to_be_bytes());
        for value in &row.values {
            write_value(value, &mut self.buf);
        }
        write_field(&self.import_id, &mut self.buf);
        write_field(&i64::try_from(row.line).unwrap_or(i64::MAX).to_be_bytes(), &mut self.buf);
    }
}

impl Batcher for CopyBinary {
    type Batch = Vec<u8>;

    fn push(&mut self, row: Row) -> Option<Vec<u8>> {
        self.encode(&row);
        if self.buf.len() >= BATCH_BYTES {
            let next = Vec::with_capacity(BATCH_BYTES + 4096);
            Some(std::mem::replace(&mut self.buf, next))
        } else {
            None
        }
    }

    /// The last rows and the trailer.
    fn finish(&mut self) -> Option<Vec<u8>> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        Some(std::mem::take(&mut self.buf))
    }
}

fn write_field(bytes: &[u8], out: &mut Vec<u8>) {
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Value::Text(text) => write_field(text.as_bytes(), out),
        Value::Integer(n) => write_field(&n.to_be_bytes(), out),
        Value::Decimal(d) => write_numeric(d, out),
        Value::Boolean(b) => write_field(&[u8::from(*b)], out),
        Value::Date(date) => write_field(&days_since_epoch(*date).to_be_bytes(), out),
        Value::Timestamp(ts) => write_field(&micros_since_epoch(*ts).to_be_bytes(), out),
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    i32::try_from((date - PG_EPOCH).num_days()).unwrap_or(i32::MAX)
}

/// Microseconds since 2000-01-01 00:00:00; nanoseconds are rounded half to
/// even, as PostgreSQL rounds a longer fraction written as text.
fn micros_since_epoch(ts: NaiveDateTime) -> i64 {
    let since = ts - PG_EPOCH.and_hms_opt(0, 0, 0).expect("midnight");
    let seconds = since.num_seconds();
    let nanos = i64::from(ts.nanosecond() % 1_000_000_000);
    let (mut micros, rest) = (nanos / 1000, nanos % 1000);
    if rest > 500 || (rest == 500 && micros % 2 == 1) {
        micros += 1;
    }
    seconds.saturating_mul(1_000_000).saturating_add(micros)
}

/// A normalised decimal (`[-]digits[.digits]`, as validation writes it) in
/// `numeric`'s binary form: base-10000 digits, the weight of the first, the
/// sign and the display scale (the fractional digits as written). Numbers
/// beyond what `numeric` holds get counts PostgreSQL refuses, as it
/// refuses their text.
fn write_numeric(decimal: &str, out: &mut Vec<u8>) {
    let (negative, body) = match decimal.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, decimal),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let whole = whole.trim_start_matches('0');
    let mut groups: Vec<i16> = Vec::with_capacity((whole.len() + fraction.len()) / 4 + 2);
    let lead = whole.len() % 4;
    if lead > 0 {
        groups.push(group(&whole[..lead]));
    }
    for at in (lead..whole.len()).step_by(4) {
        groups.push(group(&whole[at..at + 4]));
    }
    let whole_groups = groups.len();
    for at in (0..fraction.len()).step_by(4) {
        let part = &fraction[at..(at + 4).min(fraction.len())];
        groups.push(group(part) * [1000, 100, 10, 1][part.len() - 1]);
    }
    let saturate = |n: usize| i16::try_from(n).unwrap_or(i16::MAX);
    let weight = if whole_groups == 0 { -1 } else { saturate(whole_groups - 1) };
    let sign: i16 = if negative { 0x4000 } else { 0 };
    let len = i32::try_from(8 + 2 * groups.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    for word in [saturate(groups.len()), weight, sign, saturate(fraction.len())] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    for digit in groups {
        out.extend_from_slice(&digit.to_be_bytes());
    }
}

/// Up to four decimal digits as a number.
fn group(digits: &str) -> i16 {
    digits.bytes().fold(0, |n, d| n * 10 + i16::from(d - b'0'))
}

/// ISO 8601 `YYYY-MM-DD`, which PostgreSQL reads whatever its `DateStyle`.
pub(super) fn write_date(date: NaiveDate, out: &mut Vec<u8>) {
    let _ = write!(out, "{:04}-{:02}-{:02}", date.year(), date.month(), date.day());
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (fraction only when not zero).
pub(super) fn write_timestamp(ts: NaiveDateTime, out: &mut Vec<u8>) {
    write_date(ts.date(), out);
    let _ = write!(out, " {:02}:{:02}:{:02}", ts.hour(), ts.minute(), ts.second());
    let nanos = ts.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        out.push(b'.');
        out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(decimal: &str) -> Vec<i16> {
        let mut out = Vec::new();
        write_numeric(decimal, &mut out);
        out[4..].chunks(2).map(|w| i16::from_be_bytes([w[0], w[1]])).collect()
    }

    #[test]
    fn decimals_become_base_10000_digits_with_their_scale() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(numeric("1234.56"), [2, 0, 0, 2, 1234, 5600]);
        assert_eq!(numeric("-12345.6"), [3, 1, 0x4000, 1, 1, 2345, 6000]);
        assert_eq!(numeric("0.05"), [1, -1, 0, 2, 500]);
        assert_eq!(numeric("0"), [0, -1, 0, 0]);
        assert_eq!(numeric("100000000"), [3, 2, 0, 0, 1, 0, 0]);
        assert_eq!(numeric("1.50"), [2, 0, 0, 2, 1, 5000]);
    }

    #[test]
    fn rows_are_fields_with_lengths_and_the_stream_ends_with_a_trailer() {
        let mut copy = CopyBinary::new("job");
        let day = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap();
        let row = Row {
            line: 7,
            values: vec![
                Value::Text("a\tb".to_owned()),
                Value::Null,
                Value::Integer(-5),
                Value::Boolean(true),
                Value::Date(day),
                Value::Timestamp(day.and_hms_nano_opt(0, 0, 1, 2_500).unwrap()),
            ],
        };
        assert!(copy.push(row).is_none());
        let bytes = copy.finish().unwrap();
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&8i16.to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x03a\tb");
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x08");
        expected.extend_from_slice(&(-5i64).to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x01\x01");
        expected.extend_from_slice(b"\0\0\0\x04");
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x08");
        // 2.5 µs rounds half to even: 2 µs.
        expected.extend_from_slice(&(86_400_000_000i64 + 1_000_000 + 2).to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x03job");
        expected.extend_from_slice(b"\0\0\0\x08");
        expected.extend_from_slice(&7i64.to_be_bytes());
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(bytes, expected);
    }
}
