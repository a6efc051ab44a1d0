//! Downloads: an open regular file read at client-chosen offsets.

use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use super::error::FsError;
use super::stat::FileStat;
use super::{SMALL_FILE, blocking, check_offset};

/// Largest read served at once, whatever the client asked for (SFTP read
/// lengths are a raw u32; OpenSSH asks for up to 255 KiB).
pub(crate) const MAX_READ: u32 = 256 * 1024;

/// A regular file open for reading. Reads are positional, so one reader can
/// serve concurrent pipelined requests through `&self`.
///
/// A small file (up to 32 KiB) is read whole when it is opened: a client
/// fetching many small files then gets every read at once, including the
/// last one that only finds the end of the file. Its reads see the file as
/// it was when opened. Reads of larger files run on the blocking pool.
#[derive(Debug)]
pub(crate) struct FileReader {
    file: Arc<std::fs::File>,
    whole: Option<Arc<[u8]>>,
}

impl FileReader {
    /// Opens `file` for reading (reading it whole if it is small).
    pub(super) fn new(file: std::fs::File, size: u64) -> Result<Self, FsError> {
        let whole = if size <= SMALL_FILE as u64 {
            // One byte more than a small file holds: a file that grew since
            // its size was read is not small any more.
            let content = read_fully(&file, 0, SMALL_FILE + 1)?;
            (content.len() <= SMALL_FILE).then(|| Arc::from(content))
        } else {
            None
        };
        Ok(Self { file: Arc::new(file), whole })
    }

    /// Up to `len` bytes (capped at [`MAX_READ`]) from `offset`: fewer near
    /// the end of the file, none at or after it.
    pub(crate) async fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
        let len = len.min(MAX_READ) as usize;
        if len == 0 || check_offset(offset, 0).is_err() {
            return Ok(Vec::new());
        }
        if let Some(whole) = &self.whole {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(whole.len());
            return Ok(whole[start..whole.len().min(start + len)].to_vec());
        }
        let file = Arc::clone(&self.file);
        blocking(move || read_fully(&file, offset, len)).await
    }

    /// Attributes of the open file (`fstat`).
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> {
        Ok(FileStat::from_std(&self.file.metadata()?))
    }
}

/// Up to `len` bytes from `offset`, fewer only at the end of the file.
fn read_fully(file: &std::fs::File, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}
