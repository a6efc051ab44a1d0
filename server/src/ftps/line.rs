//! Control-connection input: bounded command lines.
//!
//! A line ends with LF (CR before it is dropped). A line longer than
//! [`MAX_LINE`] is never buffered whole: the reader reports it as too long
//! and skips the rest of it, so memory per connection stays bounded whatever
//! a client sends.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Longest command line accepted, CRLF included (RFC 959 has no limit;
/// paths are at most 4096 bytes, so a longer line is never a real command).
pub(crate) const MAX_LINE: usize = 4096 + 16;

/// Bytes read from the network at once.
const READ_CHUNK: usize = 4096;

/// What one read of the control connection produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A command line without its line ending.
    Command(Vec<u8>),
    /// A line longer than [`MAX_LINE`]; its bytes were discarded.
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// Reads command lines from `S`, buffering at most [`MAX_LINE`] bytes.
#[derive(Debug)]
pub(crate) struct LineReader<S> {
    stream: S,
    buf: Vec<u8>,
    /// Inside an overlong line: drop bytes up to the next LF.
    skipping: bool,
}

impl<S: AsyncRead + Unpin> LineReader<S> {
    /// A reader over `stream`.
    pub(crate) fn new(stream: S) -> Self {
        Self { stream, buf: Vec::with_capacity(READ_CHUNK), skipping: false }
    }

    /// The next line. Cancel-safe: bytes read before a cancellation stay
    /// buffered for the next call.
    pub(crate) async fn next(&mut self) -> io::Result<Line> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            // Read into a local buffer: if this future is dropped while
            // waiting, `buf` holds only whole bytes received.
            let room = (MAX_LINE - self.buf.len()).min(READ_CHUNK);
            let mut chunk = [0u8; READ_CHUNK];
            let n = self.stream.read(&mut chunk[..room]).await?;
            self.buf.extend_from_slice(&chunk[..n]);
            if n == 0 {
                return Ok(Line::Closed);
            }
        }
    }

    /// A complete line from the buffer, if there is one; or `TooLong` once
    /// the buffer is full without a line ending.
    fn take_line(&mut self) -> Option<Line> {
        match memchr(&self.buf) {
            Some(end) => {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.skipping) {
                    // The tail of an overlong line, already reported.
                    return self.take_line();
                }
                Some(Line::Command(line))
            }
            None if self.buf.len() >= MAX_LINE => {
                self.buf.clear();
                if self.skipping {
                    return None;
                }
                self.skipping = true;
                Some(Line::TooLong)
            }
            None => None,
        }
    }

    /// Bytes received after the last line returned (a client that does not
    /// wait for the reply to `AUTH TLS` before its TLS hello).
    pub(crate) fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The stream itself.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives the stream back (for the TLS upgrade of explicit FTPS).
    pub(crate) fn into_inner(self) -> S {
        self.stream
    }
}

fn memchr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// A parsed command line: the verb in upper case and its argument bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Command {
    /// `RETR`, `USER`...: at most 4 ASCII letters, upper-cased.
    pub(crate) verb: String,
    /// Everything after the first space, as sent (paths are bytes).
    pub(crate) arg: Vec<u8>,
}

impl Command {
    /// Parses a line; `None` when it is not `VERB[ SP argument]`.
    pub(crate) fn parse(line: &[u8]) -> Option<Self> {
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &[][..]),
        };
        if verb.is_empty() || verb.len() > 4 || !verb.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        if arg.contains(&0) {
            return None;
        }
        Some(Self { verb: String::from_utf8_lossy(verb).to_ascii_uppercase(), arg: arg.to_vec() })
    }

    /// The argument as text (lossy), for verbs whose argument is a keyword.
    pub(crate) fn arg_text(&self) -> String {
        String::from_utf8_lossy(&self.arg).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn lines_are_split_on_lf_without_cr() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"USER a\r\nNOOP\n").await.unwrap();
        drop(client);
        let mut reader = LineReader::new(server);
        assert_eq!(reader.next().await.unwrap(), Line::Command(b"USER a".to_vec()));
        assert_eq!(reader.next().await.unwrap(), Line::Command(b"NOOP".to_vec()));
        assert_eq!(reader.next().await.unwrap(), Line::Closed);
    }

    #[tokio::test]
    async fn an_overlong_line_is_reported_once_and_skipped() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut long = vec![b'A'; 100_000];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        client.write_all(&long).await.unwrap();
        drop(client);
        let mut reader = LineReader::new(server);
        assert_eq!(reader.next().await.unwrap(), Line::TooLong);
        assert_eq!(reader.next().await.unwrap(), Line::Command(b"NOOP".to_vec()));
        assert!(reader.buf.capacity() <= MAX_LINE + READ_CHUNK);
    }

    #[test]
    fn commands_parse_verb_and_argument() {
        let c = Command::parse(b"stor /inbox/a b.csv").unwrap();
        assert_eq!(c.verb, "STOR");
        assert_eq!(c.arg, b"/inbox/a b.csv");
        assert!(Command::parse(b"").is_none());
        assert!(Command::parse(b"\x16\x03\x01").is_none());
        assert!(Command::parse(b"TOOLONG x").is_none());
    }
}
