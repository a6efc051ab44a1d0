//! A keyed permutation of `0..n`: what keeps distinct identifiers distinct
//! (and keys unique) in an anonymized copy.
//!
//! A balanced Feistel network of four rounds over the smallest even number
//! of bits that holds `n - 1`, its round function HMAC-SHA256 under the
//! copy's key; a result outside `0..n` is permuted again ("cycle walking")
//! until it falls inside, which keeps the whole a permutation of `0..n`.
//! The bit width is at most twice `n`, so a value needs fewer than four
//! walks on average.

use super::key::CopyKey;

/// Rounds of the Feistel network (four make a strong pseudo-random permutation).
const ROUNDS: u8 = 4;

/// A permutation of `0..n` under a copy's key, for values of one shape
/// (`domain` names it, so each shape has its own permutation).
pub(crate) struct Permutation<'k> {
    key: &'k CopyKey,
    domain: &'k [u8],
    n: u64,
    half_bits: u32,
}

impl<'k> Permutation<'k> {
    /// The permutation of `0..n` (`n` ≥ 1) for `domain`.
    pub(crate) fn new(key: &'k CopyKey, domain: &'k [u8], n: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        Self { key, domain, n, half_bits: bits.div_ceil(2) }
    }

    /// The image of `x` (< n).
    pub(crate) fn apply(&self, x: u64) -> u64 {
        let mut y = self.feistel(x);
        // Cycle walking: `x` is in 0..n, so its cycle comes back into 0..n
        // within the cycle's length, at most 2^(2 * half_bits) steps.
        let bound = 1u128 << (2 * self.half_bits);
        let mut steps = 1u128;
        while y >= self.n && steps < bound {
            y = self.feistel(y);
            steps += 1;
        }
        y
    }

    /// One pass of the network over `2 * half_bits` bits.
    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for round in 0..ROUNDS {
            let f = self.round(round, right) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }

    fn round(&self, round: u8, half: u64) -> u64 {
        let mac = self.key.mac(&[b"permutation", self.domain, &self.n.to_be_bytes(), &[round], &half.to_be_bytes()]);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&mac[..8]);
        u64::from_be_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_one_image_within_the_domain() {
        let key = CopyKey::fixed(7);
        for n in [1u64, 2, 3, 10, 90, 1000, 4097] {
            let permutation = Permutation::new(&key, b"d", n);
            let mut images: Vec<u64> = (0..n).map(|x| permutation.apply(x)).collect();
            images.sort_unstable();
            assert_eq!(images, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
        let wide = Permutation::new(&key, b"d", u64::MAX);
        assert!(wide.apply(u64::MAX - 1) < u64::MAX);
    }
}
