//! `limits.connection_rate`: a token bucket per source, checked at accept
//! before any key exchange or TLS work (DHEat-style floods of handshakes).
//!
//! ```text
//!  accept ─► bucket of the source: refilled at `rate`/s up to `burst`
//!              ├─ a token left ─► take it, go on
//!              └─ empty ────────► close at once, score a refused connection
//! ```
//!
//! A bucket that would have refilled is the same as no bucket, so the table
//! only holds sources seen lately; it is bounded like the defender's tables.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::source::{Capped, Source};

/// The buckets of every source.
pub(super) struct ConnectionRate {
    /// Tokens added per second.
    rate: u32,
    /// Most tokens a bucket holds.
    burst: u32,
    capped: Capped,
    buckets: Mutex<HashMap<Source, Bucket>>,
}

/// One source's bucket, as of its last connection.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ConnectionRate {
    /// `rate` new connections per second per source, `burst` at once.
    pub(super) fn new(rate: u32, burst: u32, capped: Capped) -> Self {
        Self { rate, burst, capped, buckets: Mutex::default() }
    }

    /// `limits.connection_rate` and `limits.connection_burst`.
    pub(super) fn limits(&self) -> (u32, u32) {
        (self.rate, self.burst)
    }

    /// Takes a token for one new connection of `source`; `false` when its
    /// bucket is empty.
    pub(super) fn take(&self, source: Source) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&source) {
            // The sources that connected longest ago (full buckets, most
            // likely) make room first.
            self.capped.make_room(&mut buckets, |bucket| bucket.at);
        }
        let burst = f64::from(self.burst);
        let bucket = buckets.entry(source).or_insert(Bucket { tokens: burst, at: now });
        let refill = now.duration_since(bucket.at).as_secs_f64() * f64::from(self.rate);
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::source::Aggregation;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let config = passerelle_config::Config::load(Default::default()).unwrap();
        let rate = ConnectionRate::new(20, 5, Capped::new(&config.defender));
        let by64 = Aggregation::new(64);
        let (one, rotating) = (by64.source("192.0.2.1".parse().unwrap()), by64.source("2001:db8::1".parse().unwrap()));
        assert_eq!((0..10).filter(|_| rate.take(one)).count(), 5, "the burst, then nothing");
        assert!(rate.take(by64.source("192.0.2.2".parse().unwrap())), "another source has its own bucket");
        assert_eq!((0..10).filter(|_| rate.take(rotating)).count(), 5);
        assert!(!rate.take(by64.source("2001:db8::2".parse().unwrap())), "one /64, one bucket");
        std::thread::sleep(Duration::from_millis(120));
        assert!(rate.take(one), "refilled at 20 per second");
    }
}
