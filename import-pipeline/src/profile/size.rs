//! Sizes written as `"1GiB"`, `"500MB"`, `"10KiB"` or a plain number of bytes.

/// Binary and decimal units, longest suffix first so `"KiB"` wins over `"B"`.
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

/// Parses `"1GiB"`, `"500MB"`, `"10 KiB"`, `"4096"`: a whole number, then an
/// optional unit (case-insensitive; KiB/MiB/GiB/TiB are powers of 1024,
/// KB/MB/GB/TB powers of 1000).
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let bad = || format!("expected a size such as \"1GiB\", \"500MB\", \"10KiB\" or a number of bytes, got {text:?}");
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
    let bytes = number.checked_mul(factor).ok_or_else(|| format!("size {text:?} is too large"))?;
    if bytes == 0 {
        return Err("must be at least 1 byte".to_owned());
    }
    Ok(bytes)
}

/// Writes a size in the largest binary unit that represents it exactly
/// (`1 GiB`, `500 KiB`), else in bytes; for messages.
pub(crate) fn format(bytes: u64) -> String {
    for (unit, factor) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{} {unit}", bytes / factor);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_plain_sizes() {
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("500MB"), Ok(500_000_000));
        assert_eq!(parse("10KiB"), Ok(10 << 10));
        assert_eq!(parse("10 kib"), Ok(10 << 10));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("12B"), Ok(12));
        assert_eq!(parse("2TB"), Ok(2_000_000_000_000));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "GiB", "1.5GiB", "-1", "1 GiBs", "1XB", "0", "99999999999TiB"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes_are_formatted_in_exact_units() {
        assert_eq!(format(1 << 30), "1 GiB");
        assert_eq!(format(1536), "1536 bytes");
        assert_eq!(format(3 << 20), "3 MiB");
        assert_eq!(format(10), "10 bytes");
    }
}
