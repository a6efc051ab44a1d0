//! The bounds of an upload, checked before each write with arithmetic only
//! (the write path is hot): its size (`uploads.max_file_size`) and how far
//! ahead of the bytes received in order a write may start (the streaming
//! digest's window). Together they bound every digest or validation pass
//! over an upload by `uploads.max_file_size`, and keep a few bytes from
//! making a huge sparse file.

use std::sync::Arc;

use passerelle_config::ByteSize;

use super::digest::{BufferBudget, WINDOW};
use super::error::WriteRefused;

/// What every upload of one session is held to.
#[derive(Clone, Debug)]
pub(crate) struct UploadBounds {
    /// `uploads.max_file_size`.
    pub(crate) max_file_size: ByteSize,
    /// The session's share of memory for held-back pieces
    /// (`limits.max_buffered_bytes_per_session`).
    pub(crate) buffered: Arc<BufferBudget>,
}

impl UploadBounds {
    /// Bounds of `max_file_size` per file and `max_buffered` held back in all.
    pub(crate) fn new(max_file_size: ByteSize, max_buffered: ByteSize) -> Self {
        Self { max_file_size, buffered: BufferBudget::new(max_buffered.bytes()) }
    }
}

/// A write ending at `end` must stay within `max`.
pub(super) fn check_size(end: u64, max: ByteSize) -> Result<(), WriteRefused> {
    if end > max.bytes() { Err(WriteRefused::TooLarge(max)) } else { Ok(()) }
}

/// A write may start at most [`WINDOW`] bytes beyond `frontier` (see
/// `StreamHasher::frontier`).
pub(super) fn check_gap(offset: u64, frontier: u64) -> Result<(), WriteRefused> {
    if offset.saturating_sub(frontier) > WINDOW {
        Err(WriteRefused::Gap { offset, window: ByteSize::new(WINDOW) })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_bound_includes_its_last_byte() {
        let max = ByteSize::new(100);
        assert_eq!(check_size(100, max), Ok(()));
        assert_eq!(check_size(101, max), Err(WriteRefused::TooLarge(max)));
    }

    #[test]
    fn writes_may_start_at_most_one_window_ahead() {
        assert_eq!(check_gap(WINDOW, 0), Ok(()));
        assert_eq!(check_gap(5 + WINDOW, 5), Ok(()));
        assert_eq!(check_gap(3, 10), Ok(()), "rewrites are no gap");
        assert!(matches!(check_gap(WINDOW + 1, 0), Err(WriteRefused::Gap { offset, .. }) if offset == WINDOW + 1));
    }

    #[test]
    fn refusals_name_the_limit() {
        assert_eq!(
            WriteRefused::TooLarge(ByteSize::new(4 << 30)).to_string(),
            "file too large: uploads are limited to 4 GiB (uploads.max_file_size)"
        );
        assert_eq!(
            check_gap(1 << 36, 0).unwrap_err().to_string(),
            "write at offset 68719476736 leaves a gap: writes must arrive in order (at most 16 MiB ahead)"
        );
    }
}
