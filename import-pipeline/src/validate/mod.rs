//! Streaming validation of one file against its profile.
//!
//! ```text
//!  Read ─► input: size limit, SHA-256, binary bytes, BOM   (64 KiB chunks)
//!            ─► delimiter detection (first record, `auto`)
//!            ─► csv-core: records, ≤ 16 MiB and ≤ 10 000 fields each
//!            ─► decode: UTF-8 check or Windows-1252 → UTF-8 (per record)
//!            ─► header ↔ columns, field count, typed values, duplicate keys
//!            ─► RowSink (typed rows, only while the file has no error)
//! ```
//!
//! The file is read once and never held whole: memory is one chunk, the
//! longest record (bounded), and 16 bytes per row for upsert keys.
//!
//! Problems with the content are not Rust errors: they are
//! [`ImportError`]s in the [`ValidationReport`], which a receipt shows. The
//! first fatal one (too large, binary, encoding, header, a record too long)
//! ends reading; the others (one value, one row) are collected — the first
//! [`MAX_REPORTED_ERRORS`], all counted — and reading goes on. A
//! [`ValidateError`] means the file could not be read or the sink failed:
//! the job should be retried, not rejected.

mod decode;
mod header;
mod input;
mod keys;
mod sniff;
mod value;

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read};

use csv_core::{ReadRecordResult, ReaderBuilder};
use serde::Serialize;
use thiserror::Error;

use crate::profile::{DelimiterSetting, Profile};
use decode::Decoder;
use input::{Chunk, Input, LineEnds};
use keys::Keys;
use sniff::FirstRecord;

pub use value::Value;

/// Longest record accepted, in bytes (after removing quotes); a longer one
/// ends validation instead of growing memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Most fields a record may have.
pub const MAX_FIELDS: usize = 10_000;
/// Errors kept in the report (all are counted).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Receives the valid rows of a file, in file order.
///
/// Rows are delivered only while the file has no error: after the first
/// error none are, but the file may still be rejected after some were (an
/// error on a later line). The receiver must therefore keep them
/// provisional — one transaction — and commit only when
/// [`ValidationReport::is_accepted`].
pub trait RowSink {
    /// Why the sink could not take a row (the database went away, ...).
    type Error;

    /// Takes one valid row.
    fn accept(&mut self, row: Row) -> Result<(), Self::Error>;
}

/// A borrowed sink: [`validate`] takes its sink this way.
impl<S: RowSink + ?Sized> RowSink for &mut S {
    type Error = S::Error;

    fn accept(&mut self, row: Row) -> Result<(), S::Error> {
        (**self).accept(row)
    }
}

/// Collects rows in memory; for tests and small files.
impl RowSink for Vec<Row> {
    type Error = Infallible;

    fn accept(&mut self, row: Row) -> Result<(), Infallible> {
        self.push(row);
        Ok(())
    }
}

/// Drops every row: validation only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl RowSink for Discard {
    type Error = Infallible;

    fn accept(&mut self, _row: Row) -> Result<(), Infallible> {
        Ok(())
    }
}

/// One valid row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line of the file the record starts on (the header is line 1).
    pub line: u64,
    /// One value per declared column, in the profile's column order
    /// (whatever the order in the file).
    pub values: Vec<Value>,
}

/// One problem with a file, as a receipt lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportError {
    /// The line the record starts on (the header is line 1); `None` for the
    /// whole file (empty, too large).
    pub line: Option<u64>,
    /// The column concerned, as declared in the profile.
    pub column: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(column) = &self.column {
            write!(f, "{column}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The encoding a file was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DetectedEncoding {
    /// UTF-8 (including plain ASCII).
    #[serde(rename = "utf-8")]
    Utf8,
    /// Windows-1252, converted to UTF-8.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl fmt::Display for DetectedEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Utf8 => "utf-8",
            Self::Windows1252 => "windows-1252",
        })
    }
}

/// What validation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationReport {
    /// Data records read (valid or not; the header is not one).
    pub rows: u64,
    /// Rows handed to the sink.
    pub delivered: u64,
    /// The first [`MAX_REPORTED_ERRORS`] problems, in the order found.
    pub errors: Vec<ImportError>,
    /// All problems found; more than `errors.len()` when some were left out.
    pub error_count: u64,
    /// The encoding the file was read in.
    pub encoding: DetectedEncoding,
    /// Whether the file started with a UTF-8 byte-order mark (removed).
    pub bom: bool,
    /// The delimiter used, `None` if reading stopped before it was known.
    pub delimiter: Option<u8>,
    /// Bytes read: the file's size when the whole file was read.
    pub bytes: u64,
    /// SHA-256 of the file's bytes, when the whole file was read (`None`
    /// when a fatal error stopped reading).
    pub sha256: Option<[u8; 32]>,
}

impl ValidationReport {
    /// Whether the file may be committed: no error at all.
    pub fn is_accepted(&self) -> bool {
        self.error_count == 0
    }

    /// The SHA-256 in lower-case hex.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// Validation could not run to a verdict; the job should be retried.
#[derive(Debug, Error)]
pub enum ValidateError<E> {
    /// The file could not be read.
    #[error("reading the file: {0}")]
    Read(#[source] io::Error),
    /// The sink refused a row.
    #[error("delivering a row: {0}")]
    Sink(#[source] E),
}

/// A problem that ends validation.
#[derive(Debug)]
pub(crate) struct Fault {
    line: Option<u64>,
    message: String,
}

impl Fault {
    fn whole_file(message: String) -> Self {
        Self { line: None, message }
    }

    fn at_line(line: u64, message: String) -> Self {
        Self { line: Some(line), message }
    }
}

/// Validates `reader` against `profile`, reading it once, and hands valid
/// rows to `sink` while the file has no error.
///
/// Checks, in order: size (`max_bytes`; nothing beyond it is read), binary
/// content, the UTF-8 BOM, the delimiter (`auto`: from the first record), CSV
/// structure (RFC 4180 quoting; CRLF, LF and mixed line ends; blank lines
/// skipped), each record's encoding, the header (names trimmed and matched
/// case-insensitively, in any order), each row's field count, each value
/// against its column, and duplicate keys (upsert). Problems with the file
/// are in the report; `Err` only when reading or the sink failed.
pub fn validate<R: Read, S: RowSink>(
    mut reader: R,
    profile: &Profile,
    sink: &mut S,
) -> Result<ValidationReport, ValidateError<S::Error>> {
    let mut validator = Validator::new(profile, sink);
    // Read straight into the validator's chunk: no copy on this path.
    while !validator.is_decided() {
        let spare = validator.input.spare();
        let want = spare.len();
        let n = input::read_full(&mut reader, spare).map_err(ValidateError::Read)?;
        validator.input.filled(n);
        if n < want {
            break;
        }
        validator.chunk()?;
    }
    validator.finish()
}

/// The same validation as [`validate`], fed the file's bytes in order, in
/// pieces of any size, as they arrive (an upload being received), instead
/// of reading them: [`Validator::push`] each piece, then
/// [`Validator::finish`] gives the report. Memory is the same as
/// [`validate`]'s: one 64 KiB chunk (pieces are gathered into it), the
/// longest record, upsert keys.
///
/// `P` is the profile, borrowed or owned (`&Profile`, `Arc<Profile>`); `S`
/// the sink, owned or borrowed (`&mut S` is a sink too).
pub struct Validator<P: Borrow<Profile>, S: RowSink> {
    input: Input,
    parser: Parser<P, S>,
    /// A fault or the end of the file was reached: the verdict is known.
    decided: bool,
}

impl<P: Borrow<Profile>, S: RowSink> Validator<P, S> {
    /// A validator for a file of `profile` that hands valid rows to `sink`.
    pub fn new(profile: P, sink: S) -> Self {
        let max_bytes = profile.borrow().max_bytes();
        Self { input: Input::new(max_bytes), parser: Parser::new(profile, sink), decided: false }
    }

    /// Takes the file's next bytes. Once a fault ended validation (the file
    /// is too large, binary, its header wrong...), later bytes are ignored:
    /// [`Validator::is_decided`] tells the feeder it may stop.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), ValidateError<S::Error>> {
        while !bytes.is_empty() && !self.decided {
            let taken = self.input.gather(bytes);
            bytes = &bytes[taken..];
            if self.input.is_full() {
                self.chunk()?;
            }
        }
        Ok(())
    }

    /// Whether the report can no longer change with more bytes: a fault
    /// stopped validation.
    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// Bytes taken in so far (checked, in whole chunks).
    pub fn bytes(&self) -> u64 {
        self.input.bytes()
    }

    /// The end of the file: validates what is left and gives the report.
    pub fn finish(mut self) -> Result<ValidationReport, ValidateError<S::Error>> {
        if !self.decided {
            // The last, short chunk, then the end.
            self.chunk()?;
            if !self.decided {
                self.chunk()?;
            }
        }
        Ok(self.parser.report(&self.input))
    }

    /// Checks and parses the gathered chunk (the end of the file when none is).
    fn chunk(&mut self) -> Result<(), ValidateError<S::Error>> {
        let bom = self.input.bom();
        let flow = match self.input.take() {
            Ok(Chunk::Data { bytes, bom }) => self.parser.feed(bytes, bom)?,
            Ok(Chunk::End) => self.parser.finish(bom)?,
            Err(fault) => {
                self.parser.fault(fault);
                Flow::Stop
            }
        };
        if let Flow::Stop = flow {
            self.decided = true;
        }
        Ok(())
    }
}

/// Whether to go on reading.
enum Flow {
    Continue,
    Stop,
}

enum Phase {
    /// `delimiter = "auto"`: the first record is being buffered.
    Sniffing(FirstRecord, Vec<u8>),
    /// Before the header line.
    Header,
    /// Data rows; the field index → column index map.
    Rows(Vec<usize>),
    /// A fault ended validation.
    Stopped,
}

struct Parser<P: Borrow<Profile>, S: RowSink> {
    profile: P,
    sink: S,
    phase: Phase,
    csv: Option<csv_core::Reader>,
    delimiter: Option<u8>,
    decoder: Option<Decoder>,
    keys: Option<Keys>,
    /// Field data of the current record, and where each field ends.
    record: Vec<u8>,
    record_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// The line the parser is on; the line the current record started on.
    line: u64,
    /// Counts the line ends `line` has passed.
    line_ends: LineEnds,
    record_line: u64,
    in_record: bool,
    /// Whether any byte other than line ends was seen.
    any_content: bool,
    rows: u64,
    delivered: u64,
    errors: Vec<ImportError>,
    error_count: u64,
}

impl<P: Borrow<Profile>, S: RowSink> Parser<P, S> {
    fn new(profile: P, sink: S) -> Self {
        let checked = profile.borrow();
        let delimiter = checked.delimiter();
        let phase = match delimiter {
            DelimiterSetting::Auto => Phase::Sniffing(FirstRecord::default(), Vec::new()),
            DelimiterSetting::Fixed(_) => first_phase(checked),
        };
        let keys = Keys::new(checked);
        let fields = checked.columns().len() + 1;
        let mut parser = Self {
            profile,
            sink,
            phase,
            csv: None,
            delimiter: None,
            decoder: None,
            keys,
            record: vec![0; 4096],
            record_len: 0,
            ends: vec![0; fields],
            ends_len: 0,
            line: 1,
            line_ends: LineEnds::default(),
            record_line: 1,
            in_record: false,
            any_content: false,
            rows: 0,
            delivered: 0,
            errors: Vec::new(),
            error_count: 0,
        };
        if let DelimiterSetting::Fixed(delimiter) = delimiter {
            parser.set_delimiter(delimiter);
        }
        parser
    }

    fn set_delimiter(&mut self, delimiter: u8) {
        self.delimiter = Some(delimiter);
        self.csv = Some(ReaderBuilder::new().delimiter(delimiter).build());
    }

    /// Counts an error; keeps it if fewer than [`MAX_REPORTED_ERRORS`] are
    /// kept. `column` is the declared column's index.
    fn error(&mut self, line: Option<u64>, column: Option<usize>, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            let column = column.map(|index| self.profile.borrow().columns()[index].name().to_owned());
            self.errors.push(ImportError { line, column, message });
        }
    }

    fn fault(&mut self, fault: Fault) {
        self.error(fault.line, None, fault.message);
        self.phase = Phase::Stopped;
    }

    /// Checks the decoder exists (it needs the BOM, known with the first chunk).
    fn decoder(&mut self, bom: bool) -> Result<(), Fault> {
        if self.decoder.is_none() {
            self.decoder = Some(Decoder::new(self.profile.borrow().encoding(), bom)?);
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8], bom: bool) -> Result<Flow, ValidateError<S::Error>> {
        if let Err(fault) = self.decoder(bom) {
            self.fault(fault);
            return Ok(Flow::Stop);
        }
        if let Phase::Sniffing(sniff, pending) = &mut self.phase {
            pending.extend_from_slice(bytes);
            if !sniff.scan(bytes) {
                if pending.len() > MAX_RECORD_BYTES {
                    let line = sniff.line();
                    self.fault(too_long(line));
                    return Ok(Flow::Stop);
                }
                return Ok(Flow::Continue);
            }
            return self.end_sniffing(false);
        }
        self.parse(bytes, false)
    }

    /// Chooses the delimiter and parses what was buffered to choose it.
    fn end_sniffing(&mut self, at_end: bool) -> Result<Flow, ValidateError<S::Error>> {
        let next = first_phase(self.profile.borrow());
        let Phase::Sniffing(sniff, pending) = std::mem::replace(&mut self.phase, next) else {
            return Ok(Flow::Continue);
        };
        if !pending.iter().any(|&b| b != b'\n' && b != b'\r') {
            // Nothing but line ends: finish() reports the empty file.
            self.line += self.line_ends.count(&pending);
            return Ok(Flow::Continue);
        }
        match sniff.choose(self.profile.borrow().columns().len()) {
            Ok(delimiter) => self.set_delimiter(delimiter),
            Err(message) => {
                self.fault(Fault::at_line(sniff.line(), message));
                return Ok(Flow::Stop);
            }
        }
        self.parse(&pending, at_end)
    }

    fn finish(&mut self, bom: bool) -> Result<Flow, ValidateError<S::Error>> {
        if let Err(fault) = self.decoder(bom) {
            self.fault(fault);
            return Ok(Flow::Stop);
        }
        if let Phase::Sniffing(..) = self.phase
            && let Flow::Stop = self.end_sniffing(true)?
        {
            return Ok(Flow::Stop);
        }
        if let Flow::Stop = self.parse(&[], true)? {
            return Ok(Flow::Stop);
        }
        if !self.any_content {
            self.fault(Fault::whole_file(if bom {
                "file is empty (nothing after the byte-order mark)".to_owned()
            } else if self.line > 1 {
                "file is empty (only blank lines)".to_owned()
            } else {
                "file is empty".to_owned()
            }));
        } else if self.rows == 0 {
            self.fault(Fault::whole_file("no data rows: the file has only a header line".to_owned()));
        }
        Ok(Flow::Stop)
    }

    /// Runs the CSV parser over `bytes`; with `at_end`, also flushes the
    /// last record (the file may not end with a line end).
    fn parse(&mut self, bytes: &[u8], at_end: bool) -> Result<Flow, ValidateError<S::Error>> {
        let mut pos = 0;
        loop {
            if let Phase::Stopped = self.phase {
                return Ok(Flow::Stop);
            }
            if !self.in_record {
                // Blank lines between records are skipped here, so each
                // record's first line is known exactly.
                while let Some(&b) = bytes.get(pos) {
                    if b != b'\n' && b != b'\r' {
                        break;
                    }
                    self.line += self.line_ends.count(&bytes[pos..=pos]);
                    pos += 1;
                }
                if pos == bytes.len() && !at_end {
                    return Ok(Flow::Continue);
                }
                if pos < bytes.len() {
                    self.in_record = true;
                    self.any_content = true;
                    self.record_line = self.line;
                }
            }
            let Some(csv) = self.csv.as_mut() else {
                return Ok(Flow::Continue);
            };
            let input = &bytes[pos..];
            let (result, read, written, fields) =
                csv.read_record(input, &mut self.record[self.record_len..], &mut self.ends[self.ends_len..]);
            self.line += self.line_ends.count(&input[..read]);
            pos += read;
            self.record_len += written;
            self.ends_len += fields;
            match result {
                ReadRecordResult::InputEmpty => return Ok(Flow::Continue),
                ReadRecordResult::End => return Ok(Flow::Continue),
                ReadRecordResult::OutputFull => {
                    if self.record.len() >= MAX_RECORD_BYTES {
                        self.fault(too_long(self.record_line));
                        return Ok(Flow::Stop);
                    }
                    let grown = (self.record.len() * 2).min(MAX_RECORD_BYTES);
                    self.record.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        self.fault(Fault::at_line(
                            self.record_line,
                            format!("more than {MAX_FIELDS} fields in one record"),
                        ));
                        return Ok(Flow::Stop);
                    }
                    let grown = (self.ends.len() * 2).min(MAX_FIELDS);
                    self.ends.resize(grown, 0);
                }
                ReadRecordResult::Record => {
                    self.in_record = false;
                    let flow = self.record()?;
                    self.record_len = 0;
                    self.ends_len = 0;
                    if let Flow::Stop = flow {
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
    }

    /// Handles the record in `self.record[..record_len]`.
    fn record(&mut self) -> Result<Flow, ValidateError<S::Error>> {
        let line = self.record_line;
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(Flow::Continue);
        };
        let decoded = decoder.decode(&self.record[..self.record_len], &self.ends[..self.ends_len], line);
        let (text, ends) = match decoded {
            Ok(decoded) => decoded,
            Err(fault) => {
                self.fault(fault);
                return Ok(Flow::Stop);
            }
        };
        let fields: Vec<&str> = split(text, ends);
        match &self.phase {
            Phase::Header => {
                match header::map(self.profile.borrow(), &fields) {
                    Ok(mapping) => self.phase = Phase::Rows(mapping),
                    Err(message) => {
                        self.error(Some(line), None, message);
                        self.phase = Phase::Stopped;
                        return Ok(Flow::Stop);
                    }
                }
                Ok(Flow::Continue)
            }
            Phase::Rows(mapping) => {
                let row = check_row(self.profile.borrow(), mapping, &fields);
                self.row(row, line)
            }
            Phase::Sniffing(..) | Phase::Stopped => Ok(Flow::Stop),
        }
    }

    fn row(&mut self, checked: CheckedRow, line: u64) -> Result<Flow, ValidateError<S::Error>> {
        self.rows += 1;
        let values = match checked {
            CheckedRow::WrongFieldCount(message) => {
                self.error(Some(line), None, message);
                return Ok(Flow::Continue);
            }
            CheckedRow::Values(values, problems) => {
                let clean = problems.is_empty();
                for (column, message) in problems {
                    self.error(Some(line), Some(column), message);
                }
                if let Some(keys) = &mut self.keys
                    && let Err(message) = keys.check(&values, line)
                {
                    let column = keys.column();
                    self.error(Some(line), Some(column), message);
                    return Ok(Flow::Continue);
                }
                if !clean {
                    return Ok(Flow::Continue);
                }
                values
            }
        };
        if self.error_count == 0 {
            self.sink.accept(Row { line, values }).map_err(ValidateError::Sink)?;
            self.delivered += 1;
        }
        Ok(Flow::Continue)
    }

    fn report(self, input: &Input) -> ValidationReport {
        let encoding = self.decoder.as_ref().map_or(DetectedEncoding::Utf8, Decoder::detected);
        ValidationReport {
            rows: self.rows,
            delivered: self.delivered,
            errors: self.errors,
            error_count: self.error_count,
            encoding,
            bom: input.bom(),
            delimiter: self.delimiter,
            bytes: input.bytes(),
            sha256: input.sha256(),
        }
    }
}

/// Where records start: the header, or rows in declared order without one.
fn first_phase(profile: &Profile) -> Phase {
    if profile.header() { Phase::Header } else { Phase::Rows((0..profile.columns().len()).collect()) }
}

fn too_long(line: u64) -> Fault {
    Fault::at_line(
        line,
        format!("record longer than {} MiB; the file is not CSV or a quote is not closed", MAX_RECORD_BYTES >> 20),
    )
}

/// The fields of a decoded record.
fn split<'a>(text: &'a str, ends: &[usize]) -> Vec<&'a str> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let field = text.get(start..end).unwrap_or_default();
            start = end;
            field
        })
        .collect()
}

enum CheckedRow {
    WrongFieldCount(String),
    /// The values (Null where a value was refused) and each refusal, by
    /// column index.
    Values(Vec<Value>, Vec<(usize, String)>),
}

fn check_row(profile: &Profile, mapping: &[usize], fields: &[&str]) -> CheckedRow {
    if fields.len() != mapping.len() {
        return CheckedRow::WrongFieldCount(format!("expected {} fields, found {}", mapping.len(), fields.len()));
    }
    let columns = profile.columns();
    let mut values = vec![Value::Null; columns.len()];
    let mut problems = Vec::new();
    for (&index, field) in mapping.iter().zip(fields) {
        let column = &columns[index];
        match value::parse(column, field) {
            Ok(value) => values[index] = value,
            Err(message) => problems.push((index, message)),
        }
    }
    CheckedRow::Values(values, problems)
}
