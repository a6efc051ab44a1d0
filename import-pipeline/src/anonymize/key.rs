//! The key of one anonymized copy, and the deterministic draws made from it.
//!
//! The key is 32 random bytes from the operating system's generator (through
//! aws-lc, the crypto provider of the rest of passerelle), made when a copy
//! starts and held in memory only: never written, logged or shown. Every
//! replacement is drawn from HMAC-SHA256 under it, over the kind of data and
//! the value, so one copy maps the same value to the same replacement, and
//! without the key nothing leads from a replacement back to its value.

use aws_lc_rs::hmac;
use zeroize::Zeroize as _;

/// The secret of one copy.
pub(crate) struct CopyKey(hmac::Key);

impl CopyKey {
    /// A new random key; its bytes are wiped once the HMAC key holds them.
    pub(crate) fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
        bytes.zeroize();
        Ok(Self(key))
    }

    /// A key made of fixed bytes, for unit tests.
    #[cfg(test)]
    pub(crate) fn fixed(byte: u8) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32]))
    }

    /// HMAC over `parts`, each prefixed with its length so that no two
    /// different lists of parts give the same input.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// An endless, deterministic source of numbers for `(kind, value)`.
    pub(crate) fn draw<'k>(&'k self, kind: &'k str, value: &'k [u8]) -> Draw<'k> {
        Draw { key: self, kind, value, block: [0; 32], used: 32, counter: 0 }
    }
}

/// Numbers drawn from MACs of `(kind, value, counter)`, 32 bytes at a time.
pub(crate) struct Draw<'k> {
    key: &'k CopyKey,
    kind: &'k str,
    value: &'k [u8],
    block: [u8; 32],
    used: usize,
    counter: u64,
}

impl Draw<'_> {
    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        if self.used + 8 > self.block.len() {
            self.block = self.key.mac(&[self.kind.as_bytes(), self.value, &self.counter.to_be_bytes()]);
            self.counter += 1;
            self.used = 0;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.block[self.used..self.used + 8]);
        self.used += 8;
        u64::from_be_bytes(bytes)
    }

    /// A number in `0..n` (`n` > 0); the bias of the 128-bit product is below 2^-64 ⋅ n.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// One of `items` (not empty).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_key_kind_and_value_only() {
        let key = CopyKey::fixed(1);
        let a: Vec<u64> = (0..6).scan(key.draw("name", b"x"), |d, _| Some(d.next_u64())).collect();
        let b: Vec<u64> = (0..6).scan(key.draw("name", b"x"), |d, _| Some(d.next_u64())).collect();
        assert_eq!(a, b);
        let other_kind: Vec<u64> = (0..6).scan(key.draw("text", b"x"), |d, _| Some(d.next_u64())).collect();
        assert_ne!(a, other_kind);
        let other_key = CopyKey::fixed(2);
        let c: Vec<u64> = (0..6).scan(other_key.draw("name", b"x"), |d, _| Some(d.next_u64())).collect();
        assert_ne!(a, c);
        assert!((0..1000).all(|_| key.draw("n", b"v").below(7) < 7));
    }
}
