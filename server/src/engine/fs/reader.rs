//! Downloads: an open regular file read at client-chosen offsets.

use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use super::error::FsError;
use super::stat::FileStat;
use super::{blocking, check_offset};

/// Largest read served at once, whatever the client asked for (SFTP read
/// lengths are a raw u32; OpenSSH asks for up to 255 KiB).
pub(crate) const MAX_READ: u32 = 256 * 1024;

/// A regular file open for reading. Reads are positional, so one reader can
/// serve concurrent pipelined requests through `&self`.
#[derive(Debug)]
pub(crate) struct FileReader {
    file: Arc<std::fs::File>,
}

impl FileReader {
    pub(super) fn new(file: std::fs::File) -> Self {
        Self { file: Arc::new(file) }
    }

    /// Up to `len` bytes (capped at [`MAX_READ`]) from `offset`: fewer near
    /// the end of the file, none at or after it.
    pub(crate) async fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
        let len = len.min(MAX_READ) as usize;
        if len == 0 || check_offset(offset, 0).is_err() {
            return Ok(Vec::new());
        }
        let file = Arc::clone(&self.file);
        blocking(move || {
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
        })
        .await
    }

    /// Attributes of the open file (`fstat`).
    pub(crate) async fn stat(&self) -> Result<FileStat, FsError> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(FileStat::from_std(&file.metadata()?))).await
    }
}
