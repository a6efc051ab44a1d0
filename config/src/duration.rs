//! Durations written as `"<n>ms"`, `"<n>s"`, `"<n>m"` or `"<n>h"`.

use std::time::Duration;

/// Parses `"30s"`, `"15m"`, `"2h"`, `"500ms"`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad = || format!("expected a duration such as \"30s\", \"15m\", \"2h\" or \"500ms\" (got \"{text}\")");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| n.checked_mul(factor).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(bad()),
    }
}

/// Writes a duration in the largest unit that represents it exactly, so that `parse(format(d)) == d`.
pub(crate) fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_round_trips() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("2h", Duration::from_secs(7200)),
        ] {
            assert_eq!(parse(text), Ok(d));
            assert_eq!(format(d), text);
        }
        assert_eq!(format(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn refuses_garbage() {
        for text in ["", "s", "10", "10 d", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
