//! A keyed permutation of `0..n`: what keeps distinct identifiers distinct
//! (and keys unique) in an anonymized copy.
//!
//! A balanced Feistel network of four rounds over the smallest even number
//! of bits that holds `n - 1`, its round function HMAC-SHA256 under the
//! copy's key; a result outside `0..n` is permuted again ("cycle walking")
//! until it falls inside, which keeps the whole a permutation of `0..n`.
//! The bit width is at most twice `n`, so a value needs fewer than four
//! walks on average.
//!
//! A round function of at most 16 input bits (domains up to 2^32 values:
//! identifiers of up to nine digits) is remembered once computed, so that a
//! large table pays the MACs of each round input once rather than per row.

use super::key::CopyKey;

/// Rounds of the Feistel network (four make a strong pseudo-random permutation).
const ROUNDS: u8 = 4;

/// Widest round input whose outputs are remembered.
const MEMO_BITS: u32 = 16;
/// A remembered round output not computed yet (outputs have at most 32 bits).
const UNSET: u64 = u64::MAX;

/// A permutation of `0..n` under a copy's key, for values of one shape
/// (`domain` names it, so each shape has its own permutation).
pub(crate) struct Permutation {
    domain: Vec<u8>,
    n: u64,
    half_bits: u32,
    /// Round outputs by round and input, when inputs have at most [`MEMO_BITS`] bits.
    memo: Vec<Vec<u64>>,
}

impl Permutation {
    /// The permutation of `0..n` (`n` ≥ 1) for `domain`.
    pub(crate) fn new(domain: &[u8], n: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let memo = if half_bits <= MEMO_BITS { vec![Vec::new(); usize::from(ROUNDS)] } else { Vec::new() };
        Self { domain: domain.to_owned(), n, half_bits, memo }
    }

    /// The image of `x` (< n) under `key`.
    pub(crate) fn apply(&mut self, key: &CopyKey, x: u64) -> u64 {
        let mut y = self.feistel(key, x);
        // Cycle walking: `x` is in 0..n, so its cycle comes back into 0..n
        // within the cycle's length, at most 2^(2 * half_bits) steps.
        let bound = 1u128 << (2 * self.half_bits);
        let mut steps = 1u128;
        while y >= self.n && steps < bound {
            y = self.feistel(key, y);
            steps += 1;
        }
        y
    }

    /// One pass of the network over `2 * half_bits` bits.
    fn feistel(&mut self, key: &CopyKey, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for round in 0..ROUNDS {
            let f = self.round(key, round, right) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }

    fn round(&mut self, key: &CopyKey, round: u8, half: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let compute = |domain: &[u8], n: u64| {
            let mac = key.mac(&[b"permutation", domain, &n.to_be_bytes(), &[round], &half.to_be_bytes()]);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&mac[..8]);
            u64::from_be_bytes(bytes) & mask
        };
        let Some(memo) = self.memo.get_mut(usize::from(round)) else { return compute(&self.domain, self.n) };
        if memo.is_empty() {
            *memo = vec![UNSET; 1 << self.half_bits];
        }
        let slot = &mut memo[usize::try_from(half).unwrap_or(0)];
        if *slot == UNSET {
            *slot = compute(&self.domain, self.n);
        }
        *slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_one_image_within_the_domain() {
        let key = CopyKey::fixed(7);
        for n in [1u64, 2, 3, 10, 90, 1000, 4097] {
            let mut permutation = Permutation::new(b"d", n);
            let mut images: Vec<u64> = (0..n).map(|x| permutation.apply(&key, x)).collect();
            images.sort_unstable();
            assert_eq!(images, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
        let mut wide = Permutation::new(b"d", u64::MAX);
        assert!(wide.apply(&key, u64::MAX - 1) < u64::MAX);
        // Remembered round outputs are the ones computed afresh.
        let (mut first, mut again) = (Permutation::new(b"d", 5000), Permutation::new(b"d", 5000));
        let images: Vec<u64> = (0..5000).map(|x| first.apply(&key, x)).collect();
        assert!((0..5000).rev().all(|x| again.apply(&key, x) == images[x as usize]));
    }
}
