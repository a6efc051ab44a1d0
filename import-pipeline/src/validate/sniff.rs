//! Delimiter detection (`delimiter = "auto"`) from the first record.

use super::input::LineEnds;
use crate::profile::DELIMITERS;

/// Scans the first record (the header, or the first row without one),
/// counting each candidate delimiter outside quotes.
#[derive(Default)]
pub(super) struct FirstRecord {
    started: bool,
    in_quotes: bool,
    counts: [u64; DELIMITERS.len()],
    /// Line ends before the first record (blank lines), for its line number.
    leading_newlines: u64,
    line_ends: LineEnds,
}

impl FirstRecord {
    /// Scans more of the file; `true` once the first record's end was seen.
    pub(super) fn scan(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if !self.started {
                if b == b'\n' || b == b'\r' {
                    self.leading_newlines += self.line_ends.count(&[b]);
                    continue;
                }
                self.started = true;
            }
            match b {
                // A doubled quote inside quotes toggles twice: still inside.
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' | b'\r' if !self.in_quotes => return true,
                _ if !self.in_quotes => {
                    if let Some(k) = DELIMITERS.iter().position(|&d| d == b) {
                        self.counts[k] += 1;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// The line the first record starts on.
    pub(super) fn line(&self) -> u64 {
        self.leading_newlines + 1
    }

    /// Chooses the delimiter: the candidate that splits the first record
    /// into exactly the profile's number of columns if there is one, else
    /// the most frequent one (the header check then names what differs).
    /// Ties, and a first line without any candidate for a profile of
    /// several columns, are refused.
    pub(super) fn choose(&self, columns: usize) -> Result<u8, String> {
        let want = columns as u64 - 1;
        if want == 0 && self.counts.iter().all(|&c| c == 0) {
            return Ok(b',');
        }
        let exact: Vec<usize> = (0..DELIMITERS.len()).filter(|&k| want > 0 && self.counts[k] == want).collect();
        if let [k] = exact.as_slice() {
            return Ok(DELIMITERS[*k]);
        }
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let top: Vec<usize> = (0..DELIMITERS.len()).filter(|&k| max > 0 && self.counts[k] == max).collect();
        match (exact.len(), top.as_slice()) {
            (0, [k]) => Ok(DELIMITERS[*k]),
            (_, []) => Err(
                "cannot detect the delimiter: the first line contains none of ';' ',' tab '|'; set delimiter in the profile"
                    .to_owned(),
            ),
            _ => {
                let candidates: &[usize] = if exact.len() > 1 { &exact } else { &top };
                let found: Vec<String> = candidates
                    .iter()
                    .map(|&k| format!("{} {}", self.counts[k], name(DELIMITERS[k])))
                    .collect();
                Err(format!(
                    "cannot detect the delimiter: the first line has {}; set delimiter in the profile",
                    found.join(" and ")
                ))
            }
        }
    }
}

/// A delimiter as messages show it.
pub(super) fn name(delimiter: u8) -> &'static str {
    match delimiter {
        b';' => "';'",
        b',' => "','",
        b'\t' => "tab",
        b'|' => "'|'",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(first_line: &str, columns: usize) -> Result<u8, String> {
        let mut sniff = FirstRecord::default();
        sniff.scan(first_line.as_bytes());
        sniff.choose(columns)
    }

    #[test]
    fn the_delimiter_giving_the_declared_column_count_wins() {
        assert_eq!(choose("a;b;c\n", 3), Ok(b';'));
        assert_eq!(choose("a,b,c\n", 3), Ok(b','));
        assert_eq!(choose("a\tb\tc\n", 3), Ok(b'\t'));
        assert_eq!(choose("a|b|c\n", 3), Ok(b'|'));
        // Two commas inside a name, two semicolons between three columns.
        assert_eq!(choose("a;\"b,c,d\";e\n", 3), Ok(b';'));
        assert_eq!(choose("a;b,c;d,e,f\n", 3), Ok(b';'));
    }

    #[test]
    fn otherwise_the_most_frequent_wins_and_ties_are_refused() {
        assert_eq!(choose("a;b;c;d\n", 3), Ok(b';'));
        let tie = choose("a;b,c;d,e\n", 4).unwrap_err();
        assert!(tie.contains("2 ';' and 2 ','"), "{tie}");
        let tie = choose("a;b,c\n", 4).unwrap_err();
        assert!(tie.contains("1 ';' and 1 ','"), "{tie}");
        assert!(choose("abc\n", 3).unwrap_err().contains("none of"));
    }

    #[test]
    fn a_single_column_needs_no_delimiter() {
        assert_eq!(choose("abc\n", 1), Ok(b','));
        assert_eq!(choose("a;b\n", 1), Ok(b';'));
    }

    #[test]
    fn blank_lines_before_the_first_record_are_counted() {
        let mut sniff = FirstRecord::default();
        assert!(sniff.scan(b"\r\n\n\"a\nb\";c\n"));
        assert_eq!(sniff.line(), 3);
        assert_eq!(sniff.choose(2), Ok(b';'));
    }
}
