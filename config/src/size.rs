//! Sizes written as `"256 MiB"`, `"500MB"`, `"4096"` (bytes).

use std::fmt;

/// Binary and decimal units, matched whole and case-insensitively.
const UNITS: [(&str, u64); 9] = [
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("b", 1),
];

/// A number of bytes read from the configuration; shown in the largest
/// binary unit that holds it exactly, so `config show` reads it back as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{} {unit}", self.0 / factor);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Parses `"256 MiB"`, `"500MB"`, `"10kib"`, `"4096"`: a whole number, then an
/// optional unit (KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of
/// 1000, B bytes). Zero is a size too: callers say what it means.
pub(crate) fn parse(text: &str) -> Result<ByteSize, String> {
    let bad = || format!("expected a size such as \"256 MiB\", \"500MB\" or a number of bytes (got \"{text}\")");
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let factor = if unit.is_empty() {
        1
    } else {
        UNITS.iter().find(|(suffix, _)| *suffix == unit).map(|(_, factor)| *factor).ok_or_else(bad)?
    };
    number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("size \"{text}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_plain_sizes() {
        assert_eq!(parse("256 MiB"), Ok(ByteSize(256 << 20)));
        assert_eq!(parse("500MB"), Ok(ByteSize(500_000_000)));
        assert_eq!(parse("10 kib"), Ok(ByteSize(10 << 10)));
        assert_eq!(parse("4096"), Ok(ByteSize(4096)));
        assert_eq!(parse("0"), Ok(ByteSize(0)));
        assert_eq!(parse("12B"), Ok(ByteSize(12)));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "MiB", "1.5GiB", "-1", "1 MiBs", "1XB", "99999999999TiB"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes_show_in_exact_units_and_read_back() {
        for (bytes, text) in [(256 << 20, "256 MiB"), (1536, "1536"), (0, "0"), (3 << 30, "3 GiB")] {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(parse(text), Ok(ByteSize(bytes)));
        }
    }
}
