//! Replies on the control connection (RFC 959 §4.2): a three-digit code and
//! one line of text, or a multi-line reply whose inner lines start with a
//! space. Text never carries CR or LF: it is cleaned here, whatever the
//! caller passes.
//!
//! Filesystem errors map to replies here too ([`fs_reply`]), so that every
//! state and every transfer words them the same way.

use crate::engine::fs::FsError;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub(crate) fn new(code: u16, text: impl Into<String>) -> Self {
        Self { code, lines: vec![text.into()] }
    }

    /// A multi-line reply: `first`, then `inner` lines (sent with a leading
    /// space), then `last`.
    pub(crate) fn multi(code: u16, first: &str, inner: impl IntoIterator<Item = String>, last: &str) -> Self {
        let mut lines = vec![first.to_owned()];
        lines.extend(inner.into_iter().map(|l| format!(" {l}")));
        lines.push(last.to_owned());
        Self { code, lines }
    }

    /// The reply code.
    pub(crate) fn code(&self) -> u16 {
        self.code
    }

    /// The bytes sent to the client.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            let clean: String = line.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
            if i == last {
                out.extend_from_slice(format!("{} {clean}\r\n", self.code).as_bytes());
            } else if i == 0 {
                out.extend_from_slice(format!("{}-{clean}\r\n", self.code).as_bytes());
            } else {
                out.extend_from_slice(format!("{clean}\r\n").as_bytes());
            }
        }
        out
    }
}

/// A path inside double quotes, with quotes doubled (RFC 959 appendix II).
pub(crate) fn quoted(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// The reply for a filesystem error, with the engine's wording for it.
pub(crate) fn fs_reply(e: &FsError) -> Reply {
    let code = match e {
        FsError::InvalidPath(_) => 553,
        // RFC 959: "insufficient storage space in system".
        FsError::NoSpace | FsError::LowSpace(_) => 452,
        FsError::QuotaExceeded(_) => 552,
        FsError::WriteRefused(_) => 552,
        // "Requested action not taken": permanent, and neither about
        // storage (552) nor about the name (553): the content was refused.
        FsError::Rejected(_) => 550,
        // Transient: the client may try again once other transfers ended.
        FsError::TooManyOpen(_) => 450,
        FsError::Io(_) => 451,
        _ => 550,
    };
    Reply::new(code, e.client_text())
}

impl From<FsError> for Reply {
    fn from(e: FsError) -> Self {
        fs_reply(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(Reply::new(200, "ok\r\n550 evil").encode(), b"200 ok  550 evil\r\n");
        let feat = Reply::multi(211, "Features:", ["UTF8".to_owned()], "End");
        assert_eq!(feat.encode(), b"211-Features:\r\n UTF8\r\n211 End\r\n");
        assert_eq!(quoted("/in\"box"), "\"/in\"\"box\"");
    }
}
