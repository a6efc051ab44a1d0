//! Byte sizes written as `"<n> <unit>"` with binary units: `"4 GiB"`, `"64 MiB"`, `"512 KiB"`, `"100 B"`
//! (the space is optional; a bare number is bytes).

use std::fmt;

/// A number of bytes, shown in the largest binary unit that represents it exactly (`4 GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Units from the largest down, with their factors.
const UNITS: &[(&str, u64)] = &[("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];

impl ByteSize {
    /// `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, factor) =
            UNITS.iter().find(|(_, factor)| self.0 != 0 && self.0.is_multiple_of(*factor)).copied().unwrap_or(("B", 1));
        write!(f, "{} {unit}", self.0 / factor)
    }
}

/// Parses `"4 GiB"`, `"64MiB"`, `"512 KiB"`, `"100 B"` or `"100"`.
pub(crate) fn parse(text: &str) -> Result<ByteSize, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad = || format!("expected a size such as \"4 GiB\", \"64 MiB\", \"512 KiB\" or \"100 B\" (got \"{text}\")");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start();
    let factor = if unit.is_empty() { 1 } else { UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?.1 };
    n.checked_mul(factor).map(ByteSize).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_round_trips() {
        for (text, bytes) in [
            ("100 B", 100),
            ("512 KiB", 512 << 10),
            ("64 MiB", 64 << 20),
            ("4 GiB", 4 << 30),
            ("2 TiB", 2 << 40),
            ("0 B", 0),
        ] {
            assert_eq!(parse(text), Ok(ByteSize(bytes)));
            assert_eq!(ByteSize(bytes).to_string(), text);
        }
        assert_eq!(parse("64MiB"), Ok(ByteSize(64 << 20)));
        assert_eq!(parse("1500"), Ok(ByteSize(1500)));
        assert_eq!(ByteSize(1536).to_string(), "1536 B");
    }

    #[test]
    fn refuses_garbage() {
        for text in ["", "GiB", "4 GB", "4 gib", "-1 B", "1.5 GiB", "99999999 TiB"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
