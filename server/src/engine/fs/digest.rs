//! SHA-256 of an upload, computed while it streams in.
//!
//! Clients pipeline writes (OpenSSH keeps 64 in flight) and the SFTP front-end
//! serves them concurrently, so pieces reach the hasher slightly out of order.
//! A small bounded map holds early pieces until the gap before them closes.
//! Anything unusual — a rewrite of bytes already hashed, overlapping pieces,
//! a hole never filled, too much held back — makes the hasher give up, and
//! the upload re-reads the finished file instead: the digest is always that
//! of the bytes on disk, streaming is only the fast path.
//!
//! What is held back is bounded twice: per upload ([`MAX_PENDING_BYTES`]) and
//! per session ([`BufferBudget`], `limits.max_buffered_bytes_per_session`),
//! so that many parallel uploads cannot pin memory. Past either bound the
//! hasher gives up rather than refuse: the re-read costs time bounded by
//! `uploads.max_file_size`, never memory. What the hasher cannot absorb is a
//! hole: [`StreamHasher::frontier`] tells the upload how far ahead a write may
//! start ([`WINDOW`]), and a write beyond is refused, so that a file is never
//! made mostly of holes that its digest would have to read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;
use passerelle_import::{Discard, Profile, Validator};

/// Most pieces held back waiting for a gap to close.
const MAX_PENDING_PIECES: usize = 64;
/// Most bytes held back waiting for a gap to close.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// How far beyond [`StreamHasher::frontier`] a write may start: as far as
/// the hasher could hold back.
pub(super) const WINDOW: u64 = MAX_PENDING_BYTES as u64;

/// Bytes that one session's uploads may hold back together; shared by them.
#[derive(Debug)]
pub(crate) struct BufferBudget {
    limit: u64,
    held: AtomicU64,
}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { limit, held: AtomicU64::new(0) })
    }

    /// Takes `len` bytes if they fit.
    fn take(&self, len: usize) -> bool {
        let len = len as u64;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(len).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `len` bytes taken before.
    fn give(&self, len: usize) {
        self.held.fetch_sub(len as u64, Ordering::AcqRel);
    }

    /// Bytes held now (tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

/// The import pipeline's validation of an upload, fed the same in-order
/// bytes as the digest (the verdict at the door).
pub(super) type DoorValidator = Validator<Arc<Profile>, Discard>;

/// Incremental SHA-256 over positional writes; optionally, the same bytes in
/// the same order to a [`DoorValidator`].
pub(super) struct StreamHasher {
    /// `None` once streaming was given up.
    context: Option<Context>,
    /// Offset of the first byte not hashed yet.
    next: u64,
    /// Pieces beyond `next`, by offset.
    pending: BTreeMap<u64, Bytes>,
    /// Total length of `pending`, taken from `budget`.
    pending_bytes: usize,
    /// End of the furthest piece written.
    written_end: u64,
    /// The session's budget for pending bytes.
    budget: Arc<BufferBudget>,
    /// Validates the bytes as they are hashed; gone when streaming was
    /// given up (the upload then validates the file on disk).
    validator: Option<Box<DoorValidator>>,
}

impl StreamHasher {
    /// A hasher for an empty file, holding back pieces within `budget`.
    pub(super) fn new(budget: Arc<BufferBudget>) -> Self {
        Self {
            context: Some(Context::new(&SHA256)),
            next: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            written_end: 0,
            budget,
            validator: None,
        }
    }

    /// Validates the upload's bytes too, as they are hashed; called before
    /// the first write.
    pub(super) fn validate_with(&mut self, profile: Arc<Profile>) {
        if self.context.is_some() && self.next == 0 {
            self.validator = Some(Box::new(Validator::new(profile, Discard)));
        }
    }

    /// The validator that saw every byte of the file, in order, once
    /// [`StreamHasher::finish`] returned a digest; `None` otherwise.
    pub(super) fn take_validator(&mut self) -> Option<Box<DoorValidator>> {
        self.validator.take()
    }

    /// Where the bytes the hasher can vouch for end: while streaming, the
    /// first byte not hashed yet; once given up, the end of the furthest
    /// piece. A write may start at most [`WINDOW`] beyond.
    pub(super) fn frontier(&self) -> u64 {
        if self.context.is_some() { self.next } else { self.written_end }
    }

    /// Takes a piece that was just written at `offset`.
    pub(super) fn feed(&mut self, offset: u64, data: Bytes) {
        self.written_end = self.written_end.max(offset + data.len() as u64);
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
            || !self.budget.take(data.len())
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
            self.validator = None;
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
        if let Some(validator) = &mut self.validator
            && !validator.is_decided()
            && validator.push(&data).is_err()
        {
            // Pushing reads nothing and Discard never fails; should that
            // change, the file on disk is validated at close instead.
            self.validator = None;
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
            self.budget.give(data.len());
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
        self.validator = None;
        self.pending = BTreeMap::new();
        self.budget.give(std::mem::take(&mut self.pending_bytes));
    }
}

impl Drop for StreamHasher {
    fn drop(&mut self) {
        self.budget.give(self.pending_bytes);
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

    fn hasher() -> StreamHasher {
        StreamHasher::new(BufferBudget::new(u64::MAX))
    }

    fn sample() -> Vec<u8> {
        (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[test]
    fn in_order_pieces() {
        let data = sample();
        let mut hasher = hasher();
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
        let mut hasher = hasher();
        for (offset, piece) in list {
            hasher.feed(offset, piece);
        }
        assert!(hasher.is_streaming());
        assert_eq!(hasher.finish(data.len() as u64), Some(sha256_of(&data)));
    }

    #[test]
    fn empty_file() {
        assert_eq!(hasher().finish(0), Some(sha256_of(b"")));
    }

    #[test]
    fn rewrite_overlap_hole_or_too_much_pending_gives_up() {
        let mut rewrite = hasher();
        rewrite.feed(0, vec![1; 10].into());
        rewrite.feed(5, vec![2; 10].into());
        assert!(!rewrite.is_streaming());
        assert_eq!(rewrite.finish(15), None);

        let mut overlap = hasher();
        overlap.feed(10, vec![1; 10].into());
        overlap.feed(15, vec![1; 10].into());
        overlap.feed(0, vec![1; 10].into());
        assert_eq!(overlap.finish(25), None);

        let mut hole = hasher();
        hole.feed(0, vec![1; 10].into());
        hole.feed(20, vec![1; 10].into());
        assert!(hole.is_streaming());
        assert_eq!(hole.finish(30), None);

        let mut flood = hasher();
        for i in 1..=(MAX_PENDING_PIECES as u64 + 1) {
            flood.feed(i * 10, vec![0; 10].into());
        }
        assert!(!flood.is_streaming());

        let mut big = hasher();
        big.feed(1, vec![0; MAX_PENDING_BYTES + 1].into());
        assert!(!big.is_streaming());
    }

    #[test]
    fn the_frontier_is_the_hashed_prefix_then_the_furthest_write() {
        let mut hasher = hasher();
        hasher.feed(0, vec![1; 10].into());
        hasher.feed(30, vec![1; 10].into());
        assert_eq!(hasher.frontier(), 10, "a held-back piece does not move it");
        hasher.feed(10, vec![1; 20].into());
        assert_eq!(hasher.frontier(), 40);
        hasher.feed(5, vec![2; 5].into());
        assert!(!hasher.is_streaming());
        assert_eq!(hasher.frontier(), 40, "a rewrite leaves it at the furthest write");
        hasher.feed(100, vec![1; 10].into());
        assert_eq!(hasher.frontier(), 110);
    }

    #[test]
    fn the_session_budget_bounds_what_all_uploads_hold_back() {
        let budget = BufferBudget::new(25);
        let mut first = StreamHasher::new(Arc::clone(&budget));
        let mut second = StreamHasher::new(Arc::clone(&budget));
        first.feed(10, vec![1; 20].into());
        assert_eq!(budget.held(), 20);
        second.feed(10, vec![1; 10].into());
        assert!(!second.is_streaming(), "over the budget: the second gives up");
        assert!(first.is_streaming());
        assert_eq!(budget.held(), 20);
        first.feed(0, vec![1; 10].into());
        assert_eq!(budget.held(), 0, "drained pieces go back to the budget");
        first.feed(40, vec![1; 5].into());
        drop(first);
        assert_eq!(budget.held(), 0, "a dropped hasher gives back what it held");
        drop(second);
    }
}
