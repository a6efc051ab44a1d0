//! Sizes written as `"10 GiB"`, `"500MB"`, `"10KiB"` or a plain number of bytes.

use std::fmt;

/// A number of bytes read from the configuration or the command line.
///
/// `Display` writes it exactly, in the largest binary unit that divides it (`"10 GiB"`, else in
/// bytes: `"1500 B"`), so that what `config show` prints reads back as the same size;
/// [`ByteSize::human`] rounds down for people. Zero is a size too: each key says what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

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

/// Binary units for display, largest first.
const BINARY: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// Parses `"10 GiB"`, `"500MB"`, `"10KiB"`, `"4096"`: a whole number, then an optional unit
    /// (case-insensitive; KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000, B bytes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let bad =
            || format!("expected a size such as \"10 GiB\", \"500 MiB\" or a number of bytes (got \"{trimmed}\")");
        let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit = unit.trim_start().to_ascii_lowercase();
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS.iter().find(|(suffix, _)| *suffix == unit).map(|(_, factor)| *factor).ok_or_else(bad)?
        };
        number.checked_mul(factor).map(Self).ok_or_else(|| format!("size \"{trimmed}\" is too large"))
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// `bytes` for people: `"9.8 GiB"`, rounded down to a tenth of the largest binary unit it reaches
    /// (so a limit is never shown as reached before it is), `"512 bytes"` below 1 KiB.
    pub fn human(bytes: u64) -> String {
        for (unit, factor) in BINARY {
            if bytes >= factor {
                let tenths = u128::from(bytes) * 10 / u128::from(factor);
                let (whole, tenth) = (tenths / 10, tenths % 10);
                return if tenth == 0 { format!("{whole} {unit}") } else { format!("{whole}.{tenth} {unit}") };
            }
        }
        if bytes == 1 { "1 byte".to_owned() } else { format!("{bytes} bytes") }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in BINARY {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{} {unit}", self.0 / factor);
            }
        }
        write!(f, "{} B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_plain_sizes() {
        let parse = |text| ByteSize::parse(text).map(ByteSize::bytes);
        assert_eq!(parse("10 GiB"), Ok(10 << 30));
        assert_eq!(parse("500 MiB"), Ok(500 << 20));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("500MB"), Ok(500_000_000));
        assert_eq!(parse("10 kib"), Ok(10 << 10));
        assert_eq!(parse("123"), Ok(123));
        assert_eq!(parse("12B"), Ok(12));
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "GiB", "1.5GiB", "-1", "1 GiBs", "1XB", "99999999999TiB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_is_exact_and_reads_back() {
        for bytes in [0, 1, 1023, 1024, 1536, 3 << 20, 10 << 30, (5 << 40) + 1] {
            let size = ByteSize::new(bytes);
            assert_eq!(ByteSize::parse(&size.to_string()), Ok(size), "{size}");
        }
        assert_eq!(ByteSize::new(10 << 30).to_string(), "10 GiB");
        assert_eq!(ByteSize::new(1536).to_string(), "1536 B");
        assert_eq!(ByteSize::new(0).to_string(), "0 B");
    }

    #[test]
    fn human_sizes_round_down() {
        assert_eq!(ByteSize::human(0), "0 bytes");
        assert_eq!(ByteSize::human(1), "1 byte");
        assert_eq!(ByteSize::human(512), "512 bytes");
        assert_eq!(ByteSize::human(1536), "1.5 KiB");
        assert_eq!(ByteSize::human(10 << 30), "10 GiB");
        assert_eq!(ByteSize::human((10 << 30) - 1), "9.9 GiB");
        assert_eq!(ByteSize::human(10_530_000_000), "9.8 GiB");
        assert_eq!(ByteSize::human(u64::MAX), "16777215.9 TiB");
    }
}
