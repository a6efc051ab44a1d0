//! Rows to PostgreSQL `COPY` text format, on the validation thread.
//!
//! Text format: fields separated by tab, rows ended by newline, NULL as
//! `\N`; in values, backslash, tab, newline and carriage return are written
//! `\\`, `\t`, `\n`, `\r` — so no value can end a field or a row, or look
//! like NULL. Everything else is written as is (the text is UTF-8 and, as
//! validation refuses them, has no NUL bytes).

use std::io::Write as _;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::Batcher;
use crate::validate::{Row, Value};

/// A batch is sent once it reaches this many bytes.
const BATCH_BYTES: usize = 256 << 10;

/// Encodes rows as `COPY ... FROM STDIN` text, with `_import_id` and `_line` appended.
pub(super) struct CopyText {
    buf: Vec<u8>,
    import_id: Vec<u8>,
}

impl CopyText {
    pub(super) fn new(import_id: &str) -> Self {
        let mut escaped = Vec::with_capacity(import_id.len());
        escape(import_id.as_bytes(), &mut escaped);
        Self { buf: Vec::with_capacity(BATCH_BYTES + 4096), import_id: escaped }
    }

    fn encode(&mut self, row: &Row) {
        for value in &row.values {
            write_value(value, &mut self.buf);
            self.buf.push(b'\t');
        }
        self.buf.extend_from_slice(&self.import_id);
        self.buf.push(b'\t');
        let _ = write!(self.buf, "{}", row.line);
        self.buf.push(b'\n');
    }
}

impl Batcher for CopyText {
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

    fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = match value {
        Value::Null => {
            out.extend_from_slice(b"\\N");
            Ok(())
        }
        Value::Text(text) => {
            escape(text.as_bytes(), out);
            Ok(())
        }
        Value::Integer(n) => write!(out, "{n}"),
        // Normalised `[-]digits[.digits]`: nothing to escape.
        Value::Decimal(d) => {
            out.extend_from_slice(d.as_bytes());
            Ok(())
        }
        Value::Boolean(b) => {
            out.push(if *b { b't' } else { b'f' });
            Ok(())
        }
        Value::Date(date) => {
            write_date(*date, out);
            Ok(())
        }
        Value::Timestamp(ts) => {
            write_timestamp(*ts, out);
            Ok(())
        }
    };
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

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_so_they_cannot_end_a_field_or_a_row() {
        let mut copy = CopyText::new("job\t1");
        let row = Row {
            line: 7,
            values: vec![
                Value::Text("a\\N\tb\nc\r".to_owned()),
                Value::Null,
                Value::Integer(-5),
                Value::Decimal("-1.50".to_owned()),
                Value::Boolean(true),
                Value::Date(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
                Value::Timestamp(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap().and_hms_milli_opt(3, 4, 5, 120).unwrap()),
                Value::Text("\\N".to_owned()),
            ],
        };
        assert!(copy.push(row).is_none());
        let text = String::from_utf8(copy.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            "a\\\\N\\tb\\nc\\r\t\\N\t-5\t-1.50\tt\t2026-01-02\t2026-01-02 03:04:05.12\t\\\\N\tjob\\t1\t7\n"
        );
        assert!(copy.finish().is_none());
    }
}
