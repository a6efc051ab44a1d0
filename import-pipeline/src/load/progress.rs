//! Live counters of one load, read by whoever watches it (the job that
//! records progress in the catalog about once a second) while the
//! validation thread moves them.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Rows and bytes a load has done so far; cheap to clone (every clone
/// shares the same counters).
#[derive(Clone, Debug, Default)]
pub struct Progress(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows validated and handed to the database so far.
    pub fn rows(&self) -> u64 {
        self.0.rows.load(Ordering::Relaxed)
    }

    /// Bytes of the file read (and validated) so far.
    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn add_rows(&self, rows: u64) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// `reader`, counting the bytes read from it.
    pub(super) fn counting<R: Read>(&self, reader: R) -> Counting<R> {
        Counting { reader, progress: self.clone() }
    }
}

/// A reader that adds what it reads to a [`Progress`].
pub(super) struct Counting<R> {
    reader: R,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.progress.0.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
