//! SHA-256 of an upload, computed while it streams in.
//!
//! Clients pipeline writes (OpenSSH keeps 64 in flight) and the SFTP front-end
//! serves them concurrently, so pieces reach the hasher slightly out of order.
//! A small bounded map holds early pieces until the gap before them closes.
//! Anything unusual — a rewrite of bytes already hashed, overlapping pieces,
//! a hole never filled, too much held back — makes the hasher give up, and
//! the upload re-reads the finished file instead: the digest is always that
//! of the bytes on disk, streaming is only the fast path.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;

/// Most pieces held back waiting for a gap to close.
const MAX_PENDING_PIECES: usize = 64;
/// Most bytes held back waiting for a gap to close.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// Incremental SHA-256 over positional writes.
pub(super) struct StreamHasher {
    /// `None` once streaming was given up.
    context: Option<Context>,
    /// Offset of the first byte not hashed yet.
    next: u64,
    /// Pieces beyond `next`, by offset.
    pending: BTreeMap<u64, Bytes>,
    /// Total length of `pending`.
    pending_bytes: usize,
}

impl StreamHasher {
    /// A hasher for an empty file.
    pub(super) fn new() -> Self {
        Self { context: Some(Context::new(&SHA256)), next: 0, pending: BTreeMap::new(), pending_bytes: 0 }
    }

    /// Takes a piece that was just written at `offset`.
    pub(super) fn feed(&mut self, offset: u64, data: Bytes) {
        if data.is_empty() || self.context.is_none() {
            return;
        }
        if offset < self.next {
            // Bytes already hashed were rewritten.
            self.give_up();
        } else if offset == self.next {
            self.hash(data);
            self.drain();
        } else if self.pending.len() >= MAX_PENDING_PIECES
            || self.pending_bytes + data.len() > MAX_PENDING_BYTES
            || self.pending.contains_key(&offset)
        {
            self.give_up();
        } else {
            self.pending_bytes += data.len();
            // A copy of its own: the piece may be a slice of a larger receive
            // buffer, which would otherwise stay allocated as long as it waits.
            self.pending.insert(offset, Bytes::copy_from_slice(&data));
        }
    }

    /// The digest, if every byte of a file of `size` bytes went through the
    /// hasher exactly once and in order; `None` means: re-read the file.
    pub(super) fn finish(&mut self, size: u64) -> Option<[u8; 32]> {
        let context = self.context.take()?;
        if !self.pending.is_empty() || self.next != size {
            return None;
        }
        context.finish().as_ref().try_into().ok()
    }

    /// Whether streaming still works.
    #[cfg(test)]
    pub(super) fn is_streaming(&self) -> bool {
        self.context.is_some()
    }

    fn hash(&mut self, data: Bytes) {
        if let Some(context) = &mut self.context {
            context.update(&data);
            self.next += data.len() as u64;
        }
    }

    /// Hashes held-back pieces that are now contiguous.
    fn drain(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            let offset = *entry.key();
            if offset > self.next {
                return;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            if offset < self.next {
                // Overlaps bytes already hashed.
                self.give_up();
                return;
            }
            self.hash(data);
        }
    }

    fn give_up(&mut self) {
        self.context = None;
        self.pending = BTreeMap::new();
        self.pending_bytes = 0;
    }
}

/// SHA-256 of a whole byte string, to check the streaming result in tests.
#[cfg(test)]
pub(super) fn sha256_of(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], size: usize) -> Vec<(u64, Bytes)> {
        data.chunks(size).enumerate().map(|(i, c)| ((i * size) as u64, Bytes::copy_from_slice(c))).collect()
    }

    fn sample() -> Vec<u8> {
        (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn in_order_pieces() {
        let data = sample();
        let mut hasher = StreamHasher::new();
        for (offset, piece) in pieces(&data, 1000) {
            hasher.feed(offset, piece);
        }
        assert_eq!(hasher.finish(data.len() as u64), Some(sha256_of(&data)));
    }

    #[test]
    fn reordered_pieces_are_held_back_then_hashed() {
        let data = sample();
        let mut list = pieces(&data, 1000);
        // Reverse each run of eight, as a concurrent server may deliver them.
        for run in list.chunks_mut(8) {
            run.reverse();
        }
        let mut hasher = StreamHasher::new();
        for (offset, piece) in list {
            hasher.feed(offset, piece);
        }
        assert!(hasher.is_streaming());
        assert_eq!(hasher.finish(data.len() as u64), Some(sha256_of(&data)));
    }

    #[test]
    fn empty_file() {
        assert_eq!(StreamHasher::new().finish(0), Some(sha256_of(b"")));
    }

    #[test]
    fn rewrite_overlap_hole_or_too_much_pending_gives_up() {
        let mut rewrite = StreamHasher::new();
        rewrite.feed(0, vec![1; 10].into());
        rewrite.feed(5, vec![2; 10].into());
        assert!(!rewrite.is_streaming());
        assert_eq!(rewrite.finish(15), None);

        let mut overlap = StreamHasher::new();
        overlap.feed(10, vec![1; 10].into());
        overlap.feed(15, vec![1; 10].into());
        overlap.feed(0, vec![1; 10].into());
        assert_eq!(overlap.finish(25), None);

        let mut hole = StreamHasher::new();
        hole.feed(0, vec![1; 10].into());
        hole.feed(20, vec![1; 10].into());
        assert!(hole.is_streaming());
        assert_eq!(hole.finish(30), None);

        let mut flood = StreamHasher::new();
        for i in 1..=(MAX_PENDING_PIECES as u64 + 1) {
            flood.feed(i * 10, vec![0; 10].into());
        }
        assert!(!flood.is_streaming());

        let mut big = StreamHasher::new();
        big.feed(1, vec![0; MAX_PENDING_BYTES + 1].into());
        assert!(!big.is_streaming());
    }
}
