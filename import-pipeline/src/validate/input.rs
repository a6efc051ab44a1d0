//! The raw byte stream: size limit, SHA-256, binary content and the UTF-8
//! byte-order mark, checked on each chunk before the CSV parser sees it.

use std::io::{self, Read};

use aws_lc_rs::digest;
use passerelle_config::ByteSize;

use super::Fault;

/// Bytes read from the file at a time.
const CHUNK_BYTES: usize = 64 << 10;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Formats that are certainly not CSV text, recognised by their first bytes
/// so the message can say what the file is.
const SIGNATURES: [(&[u8], &str); 9] = [
    (b"\x89PNG", "a PNG image"),
    (b"\xFF\xD8\xFF", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one: export the sheet as CSV)"),
    (b"\xD0\xCF\x11\xE0", "a legacy Office document such as .xls (export the sheet as CSV)"),
    (b"\x1F\x8B", "gzip-compressed data"),
    (b"\xFF\xFE", "UTF-16 text (save it as UTF-8 or Windows-1252 CSV)"),
    (b"\xFE\xFF", "UTF-16 text (save it as UTF-8 or Windows-1252 CSV)"),
];

/// Whether a byte is never found in CSV text: NUL, the C0 controls other
/// than tab, line feed and carriage return, and DEL. The same bytes in UTF-8
/// and Windows-1252, so this holds before the encoding is known.
const fn forbidden_bytes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = !matches!(b, 0x09 | 0x0A | 0x0D);
        b += 1;
    }
    table[0x7F] = true;
    table
}
const FORBIDDEN: [bool; 256] = forbidden_bytes();

/// What a finished chunk holds.
pub(super) enum Chunk<'a> {
    /// Checked bytes for the parser (the BOM already removed).
    Data {
        /// The bytes.
        bytes: &'a [u8],
        /// Whether the file started with a UTF-8 byte-order mark.
        bom: bool,
    },
    /// The end of the file.
    End,
}

/// The file's bytes, gathered into chunks of [`CHUNK_BYTES`] (only the last
/// one shorter, so the BOM and signatures are always seen whole) and
/// hashed and checked chunk by chunk, however they arrive: read by
/// [`super::validate`] straight into [`Input::spare`], or pushed piece by
/// piece ([`super::Validator::push`]).
pub(super) struct Input {
    buffer: Vec<u8>,
    /// Bytes of `buffer` that wait for their chunk to be full.
    filled: usize,
    max_bytes: u64,
    bytes: u64,
    lines: u64,
    line_ends: LineEnds,
    digest: Option<digest::Context>,
    sha256: Option<[u8; 32]>,
    bom: bool,
}

impl Input {
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            buffer: vec![0; CHUNK_BYTES],
            filled: 0,
            max_bytes,
            bytes: 0,
            lines: 0,
            line_ends: LineEnds::default(),
            digest: Some(digest::Context::new(&digest::SHA256)),
            sha256: None,
            bom: false,
        }
    }

    /// Bytes checked so far (the whole file once [`Chunk::End`] was returned).
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The SHA-256 of the whole file, once [`Chunk::End`] was returned.
    pub(super) fn sha256(&self) -> Option<[u8; 32]> {
        self.sha256
    }

    /// Whether the file started with a UTF-8 byte-order mark.
    pub(super) fn bom(&self) -> bool {
        self.bom
    }

    /// The size of the chunk being gathered: a full one, or what is left
    /// of `max_bytes + 1` (no pass reads more).
    fn chunk_len(&self) -> usize {
        let allowed = self.max_bytes.saturating_add(1) - self.bytes;
        usize::try_from(allowed).unwrap_or(usize::MAX).min(self.buffer.len())
    }

    /// Where the next bytes of the file go; [`Input::filled`] says how many came.
    pub(super) fn spare(&mut self) -> &mut [u8] {
        let end = self.chunk_len();
        &mut self.buffer[self.filled..end]
    }

    /// `n` more bytes were put into [`Input::spare`].
    pub(super) fn filled(&mut self, n: usize) {
        self.filled += n;
    }

    /// Copies as much of `bytes` as the current chunk takes; returns how
    /// many bytes it took.
    pub(super) fn gather(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.filled(n);
        n
    }

    /// Whether the current chunk is complete.
    pub(super) fn is_full(&self) -> bool {
        self.filled == self.chunk_len()
    }

    /// The gathered chunk, checked, or the fault that ends validation; with
    /// nothing gathered, the end of the file. Never takes in more than
    /// `max_bytes + 1` bytes in all.
    pub(super) fn take(&mut self) -> Result<Chunk<'_>, Fault> {
        let n = std::mem::take(&mut self.filled);
        if n == 0 {
            if let Some(context) = self.digest.take() {
                let mut sha = [0; 32];
                sha.copy_from_slice(context.finish().as_ref());
                self.sha256 = Some(sha);
            }
            return Ok(Chunk::End);
        }
        let first = self.bytes == 0;
        let offset = self.bytes;
        self.bytes += n as u64;
        if self.bytes > self.max_bytes {
            return Err(Fault::whole_file(format!(
                "the file is larger than max_bytes = {} ({} bytes); nothing beyond it was read",
                ByteSize::new(self.max_bytes),
                self.max_bytes
            )));
        }
        let chunk = &self.buffer[..n];
        if let Some(context) = &mut self.digest {
            context.update(chunk);
        }
        if first && let Some((_, what)) = SIGNATURES.iter().find(|(magic, _)| chunk.starts_with(magic)) {
            return Err(Fault::whole_file(format!("binary content: the file is {what}, not CSV text")));
        }
        if let Some(at) = chunk.iter().position(|&b| FORBIDDEN[usize::from(b)]) {
            let line = self.lines + self.line_ends.clone().count(&chunk[..at]) + 1;
            return Err(Fault::at_line(
                line,
                format!(
                    "binary content: byte 0x{:02X} at offset {}; a CSV file is text",
                    chunk[at],
                    offset + at as u64
                ),
            ));
        }
        self.lines += self.line_ends.count(chunk);
        let data = if first && chunk.starts_with(UTF8_BOM) {
            self.bom = true;
            &chunk[UTF8_BOM.len()..]
        } else {
            chunk
        };
        Ok(Chunk::Data { bytes: data, bom: self.bom })
    }
}

/// Fills `buffer` unless the file ends first, so a chunk is short only at
/// the end (the BOM and signatures are always seen whole).
pub(super) fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Counts line ends as the CSV parser ends records: LF, CR LF and a lone CR
/// (classic Mac files) each end one line. Fed a file's bytes in order, in
/// pieces of any size: a CR at the end of one piece and an LF at the start
/// of the next are one line end.
#[derive(Clone, Debug, Default)]
pub(super) struct LineEnds {
    after_cr: bool,
}

impl LineEnds {
    /// Line ends in `bytes`, the file's next bytes.
    pub(super) fn count(&mut self, bytes: &[u8]) -> u64 {
        let mut ends = 0;
        for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
            let after_cr = if at == 0 { self.after_cr } else { bytes[at - 1] == b'\r' };
            if bytes[at] == b'\r' || !after_cr {
                ends += 1;
            }
        }
        if let Some(&last) = bytes.last() {
            self.after_cr = last == b'\r';
        }
        ends
    }
}

#[cfg(test)]
mod line_end_tests {
    use super::LineEnds;

    #[test]
    fn lf_crlf_and_lone_cr_each_end_one_line_across_pieces() {
        let text = b"a\nb\r\nc\rd\r\r\ne\n\n";
        assert_eq!(LineEnds::default().count(text), 7);
        for split in 0..=text.len() {
            let mut counter = LineEnds::default();
            let (head, tail) = text.split_at(split);
            assert_eq!(counter.count(head) + counter.count(tail), 7, "split at {split}");
        }
    }
}
