//! Character encodings: every record is checked as UTF-8 or converted from
//! Windows-1252 before any field is read.
//!
//! Delimiters, quotes and line ends are ASCII, which UTF-8 and Windows-1252
//! share and which never occurs inside a UTF-8 multi-byte sequence; so the
//! CSV parser can split raw bytes and each record is decoded afterwards.
//! Records are bounded, so decoding them one at a time is streaming.

use std::borrow::Cow;

use encoding_rs::WINDOWS_1252;

use super::{DetectedEncoding, Fault};
use crate::profile::EncodingSetting;

/// Bytes Windows-1252 leaves undefined.
const UNDEFINED_IN_WINDOWS_1252: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];

enum State {
    /// `encoding = "utf-8"`.
    Utf8,
    /// `encoding = "windows-1252"`, or `auto` after a record that was not UTF-8.
    Windows1252,
    /// `auto`, only ASCII so far.
    Undecided,
    /// `auto`, this line was UTF-8 and not ASCII.
    AutoUtf8(u64),
}

/// Decodes records; for `auto`, decides on the first record that is not
/// ASCII: valid UTF-8 makes the file UTF-8, anything else Windows-1252.
/// Every record before it was ASCII, which reads the same in both, so no
/// row already delivered ever needs to change. A file that has UTF-8
/// before a record that is not (mixed encodings) is refused.
pub(super) struct Decoder {
    state: State,
    text: String,
    ends: Vec<usize>,
}

impl Decoder {
    pub(super) fn new(setting: EncodingSetting, bom: bool) -> Result<Self, Fault> {
        let state = match (setting, bom) {
            (EncodingSetting::Windows1252, true) => {
                return Err(Fault::at_line(
                    1,
                    "the file starts with a UTF-8 byte-order mark but the profile says encoding = \"windows-1252\""
                        .to_owned(),
                ));
            }
            (EncodingSetting::Windows1252, false) => State::Windows1252,
            (EncodingSetting::Utf8, _) => State::Utf8,
            (EncodingSetting::Auto, true) => State::AutoUtf8(1),
            (EncodingSetting::Auto, false) => State::Undecided,
        };
        Ok(Self { state, text: String::new(), ends: Vec::new() })
    }

    /// The encoding the file was read in (an ASCII-only file is UTF-8).
    pub(super) fn detected(&self) -> DetectedEncoding {
        match self.state {
            State::Windows1252 => DetectedEncoding::Windows1252,
            _ => DetectedEncoding::Utf8,
        }
    }

    /// The record's text and the end of each field in it.
    pub(super) fn decode<'a>(
        &'a mut self,
        raw: &'a [u8],
        ends: &'a [usize],
        line: u64,
    ) -> Result<(&'a str, &'a [usize]), Fault> {
        if let State::Windows1252 = self.state {
            return self.windows_1252(raw, ends, line);
        }
        match std::str::from_utf8(raw) {
            Ok(text) => {
                if let State::Undecided = self.state
                    && !text.is_ascii()
                {
                    self.state = State::AutoUtf8(line);
                }
                Ok((text, ends))
            }
            Err(error) => {
                let byte = raw[error.valid_up_to()];
                match self.state {
                    State::Undecided => {
                        self.state = State::Windows1252;
                        self.windows_1252(raw, ends, line)
                    }
                    State::AutoUtf8(utf8_line) => Err(Fault::at_line(
                        line,
                        format!(
                            "invalid UTF-8 (byte 0x{byte:02X}) although line {utf8_line} was UTF-8: the file mixes encodings; save it in one"
                        ),
                    )),
                    _ => Err(Fault::at_line(
                        line,
                        format!(
                            "invalid UTF-8 (byte 0x{byte:02X}) but the profile says encoding = \"utf-8\"; save the file as UTF-8 or set encoding = \"auto\""
                        ),
                    )),
                }
            }
        }
    }

    fn windows_1252<'a>(
        &'a mut self,
        raw: &'a [u8],
        ends: &'a [usize],
        line: u64,
    ) -> Result<(&'a str, &'a [usize]), Fault> {
        if raw.is_ascii() {
            // ASCII is the same in Windows-1252 and valid UTF-8.
            return Ok((std::str::from_utf8(raw).unwrap_or_default(), ends));
        }
        // Five bytes have no character in Windows-1252 (decoders map them to
        // invisible C1 controls): a file holding one is in another encoding.
        if let Some(&byte) = raw.iter().find(|b| UNDEFINED_IN_WINDOWS_1252.contains(b)) {
            return Err(Fault::at_line(
                line,
                format!(
                    "byte 0x{byte:02X} is neither UTF-8 nor a Windows-1252 character: the file is in another encoding; save it as UTF-8"
                ),
            ));
        }
        self.text.clear();
        self.ends.clear();
        let mut start = 0;
        for &end in ends {
            let (field, _) = WINDOWS_1252.decode_without_bom_handling(&raw[start..end]);
            match field {
                Cow::Borrowed(text) => self.text.push_str(text),
                Cow::Owned(text) => self.text.push_str(&text),
            }
            self.ends.push(self.text.len());
            start = end;
        }
        Ok((&self.text, &self.ends))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_decides_on_the_first_non_ascii_record() {
        let mut d = Decoder::new(EncodingSetting::Auto, false).unwrap();
        assert_eq!(d.decode(b"abc", &[3], 1).unwrap().0, "abc");
        assert_eq!(d.detected(), DetectedEncoding::Utf8);
        assert_eq!(d.decode(b"caf\xE9x", &[4, 5], 2).unwrap(), ("caféx", &[5, 6][..]));
        assert_eq!(d.detected(), DetectedEncoding::Windows1252);
        // Later bytes that happen to be valid UTF-8 are still Windows-1252.
        assert_eq!(d.decode("é".as_bytes(), &[2], 3).unwrap().0, "Ã©");
    }

    #[test]
    fn auto_refuses_mixed_encodings() {
        let mut d = Decoder::new(EncodingSetting::Auto, false).unwrap();
        assert_eq!(d.decode("é".as_bytes(), &[2], 2).unwrap().0, "é");
        let fault = d.decode(b"caf\xE9", &[4], 7).unwrap_err();
        assert_eq!(fault.line, Some(7));
        assert!(fault.message.contains("line 2 was UTF-8"), "{}", fault.message);
    }

    #[test]
    fn explicit_utf8_refuses_other_bytes() {
        let mut d = Decoder::new(EncodingSetting::Utf8, false).unwrap();
        let fault = d.decode(b"caf\xE9", &[4], 3).unwrap_err();
        assert_eq!(fault.line, Some(3));
        assert!(fault.message.contains("byte 0xE9"), "{}", fault.message);
    }

    #[test]
    fn bytes_undefined_in_windows_1252_are_refused() {
        let mut d = Decoder::new(EncodingSetting::Auto, false).unwrap();
        let fault = d.decode(b"caf\xE9 \x81", &[6], 4).unwrap_err();
        assert_eq!(fault.line, Some(4));
        assert!(fault.message.contains("byte 0x81"), "{}", fault.message);
    }

    #[test]
    fn a_bom_contradicting_windows_1252_is_refused() {
        assert!(Decoder::new(EncodingSetting::Windows1252, true).is_err());
    }
}
