//! Text from outside (a login name sent before authentication, a file name,
//! a client's version string) made safe to show to a person: every table
//! cell and line of the CLI, and every field of plain-text logs, goes
//! through [`Escaped`]. What is stored (catalog, JSON) stays exact.
//!
//! Escaped: C0 controls, DEL and C1 controls (they drive terminals and
//! forge log lines), and the Unicode format characters that hide or reorder
//! text (bidi overrides and isolates, zero-width characters, tags), plus
//! the line and paragraph separators. Each becomes one visible, unambiguous
//! sequence: `\n`, `\r`, `\t`, `\x1b` below U+0080, `\u{202e}` above; a
//! backslash becomes `\\`, so an escape sequence cannot be faked.

use std::fmt::{self, Write as _};

/// Characters of Unicode's format category (Cf), and the separators
/// U+2028 and U+2029, as inclusive ranges.
const FORMAT: &[(char, char)] = &[
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

/// Whether `c` is shown as an escape sequence rather than as itself.
fn hidden(c: char) -> bool {
    c.is_control() || FORMAT.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// Text displayed with its control and format characters escaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(|c: char| c == '\\' || hidden(c)) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_ascii() => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// `text` with its control and format characters escaped; see [`Escaped`].
pub(crate) fn escape(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    // Writing to a String cannot fail.
    let _ = write!(shown, "{}", Escaped(text));
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_unchanged() {
        for text in ["alice", "/inbox/paie 2026.csv", "Zoë Ødegård", "日本語", "a=b \"c\""] {
            assert_eq!(escape(text), text);
        }
    }

    #[test]
    fn controls_become_visible_sequences() {
        assert_eq!(escape("a\x1b[31mb"), "a\\x1b[31mb");
        assert_eq!(escape("x\r\nFORGED\tz"), "x\\r\\nFORGED\\tz");
        assert_eq!(escape("\0\x7f"), "\\x00\\x7f");
        assert_eq!(escape("\u{85}\u{9b}"), "\\u{85}\\u{9b}");
    }

    #[test]
    fn format_characters_that_disguise_text_are_escaped() {
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escape("a\u{200b}\u{2066}\u{feff}\u{2028}"), "a\\u{200b}\\u{2066}\\u{feff}\\u{2028}");
        assert_eq!(escape("\u{e0041}"), "\\u{e0041}");
    }

    #[test]
    fn a_backslash_cannot_fake_an_escape() {
        assert_eq!(escape("\\x1b"), "\\\\x1b");
        assert_ne!(escape("\\x1b"), escape("\x1b"));
    }
}
