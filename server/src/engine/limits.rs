//! Connection and session limits. Permits are RAII guards: a connection or
//! session that ends, however it ends, gives its slot back.
//!
//! Connections not yet logged in ("startups") are also counted, and new ones
//! dropped at random past `limits.max_startups` (OpenSSH's MaxStartups
//! `start:rate:full`), so that a flood of idle connections cannot keep
//! legitimate clients out: the flood is thinned before it fills the server.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use passerelle_config::{LimitsConfig, MaxStartups};

/// Why a connection was turned away.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    #[error("too many connections")]
    TooManyConnections,
    /// `limits.max_connections_per_ip` reached for this address.
    #[error("too many connections from this address")]
    TooManyFromAddress,
    /// Dropped by `limits.max_startups`.
    #[error("too many connections not yet logged in")]
    StartupDropped,
}

/// Counters shared by every front-end.
pub(super) struct Limits {
    max_connections: u32,
    max_per_ip: u32,
    max_per_user: u32,
    max_startups: MaxStartups,
    connections: Arc<Counter<IpAddr>>,
    sessions: Arc<Counter<String>>,
    startups: Arc<AtomicU32>,
}

/// Counts holders per key, plus a total.
struct Counter<K> {
    state: Mutex<(u32, HashMap<K, u32>)>,
}

impl<K: Eq + Hash + Clone> Counter<K> {
    fn new() -> Self {
        Self { state: Mutex::new((0, HashMap::new())) }
    }

    /// Takes a slot unless `total_max` or `key_max` would be exceeded.
    fn acquire(&self, key: &K, total_max: u32, key_max: u32) -> Result<(), bool> {
        let mut guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_key) = &mut *guard;
        if *total >= total_max {
            return Err(true);
        }
        let count = per_key.entry(key.clone()).or_insert(0);
        if *count >= key_max {
            return Err(false);
        }
        *count += 1;
        *total += 1;
        Ok(())
    }

    /// Slots held now, over every key.
    fn total(&self) -> u32 {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
    }

    fn release(&self, key: &K) {
        let mut guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_key) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(count) = per_key.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                per_key.remove(key);
            }
        }
    }
}

/// Held for the lifetime of one connection.
pub(crate) struct ConnectionPermit {
    counter: Arc<Counter<IpAddr>>,
    ip: IpAddr,
    startup: Option<Startup>,
}

impl ConnectionPermit {
    /// The client logged in: the connection no longer counts as a startup.
    pub(crate) fn logged_in(&mut self) {
        self.startup = None;
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counter.release(&self.ip);
    }
}

/// One connection not yet logged in.
struct Startup(Arc<AtomicU32>);

impl Drop for Startup {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held for the lifetime of one authenticated session.
pub(super) struct SessionPermit {
    counter: Arc<Counter<String>>,
    login: String,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        self.counter.release(&self.login);
    }
}

impl Limits {
    pub(super) fn new(config: &LimitsConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_sessions_per_user,
            max_startups: config.max_startups,
            connections: Arc::new(Counter::new()),
            sessions: Arc::new(Counter::new()),
            startups: Arc::default(),
        }
    }

    pub(super) fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let startups = self.startups.fetch_add(1, Ordering::AcqRel);
        let startup = Startup(Arc::clone(&self.startups));
        if drops(self.max_startups, startups) {
            return Err(Refusal::StartupDropped);
        }
        match self.connections.acquire(&ip, self.max_connections, self.max_per_ip) {
            Ok(()) => Ok(ConnectionPermit { counter: Arc::clone(&self.connections), ip, startup: Some(startup) }),
            Err(true) => Err(Refusal::TooManyConnections),
            Err(false) => Err(Refusal::TooManyFromAddress),
        }
    }

    /// Open connections and logged-in sessions now.
    pub(super) fn in_use(&self) -> (u32, u32) {
        (self.connections.total(), self.sessions.total())
    }

    pub(super) fn open_session(&self, login: &str) -> Result<SessionPermit, ()> {
        let login = login.to_owned();
        self.sessions.acquire(&login, u32::MAX, self.max_per_user).map_err(|_| ())?;
        Ok(SessionPermit { counter: Arc::clone(&self.sessions), login })
    }
}

/// Whether a new connection is dropped when `startups` others are not yet
/// logged in: never below `start`, with probability `rate` % at `start`,
/// rising linearly to certainty at `full`.
fn drops(limit: MaxStartups, startups: u32) -> bool {
    if startups < limit.start {
        return false;
    }
    if startups >= limit.full {
        return true;
    }
    // rate + (100 - rate) * (n - start) / (full - start), in percent, as a
    // fraction over 100 * (full - start).
    let span = limit.full - limit.start;
    let numerator = limit.rate * span + (100 - limit.rate) * (startups - limit.start);
    rand::random_ratio(numerator, 100 * span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startups_are_dropped_at_random_then_all() {
        let limit = MaxStartups { start: 10, rate: 30, full: 100 };
        assert!((0..1000).all(|_| !drops(limit, 9)));
        assert!((0..1000).all(|_| drops(limit, 100)));
        let dropped = (0..10_000).filter(|_| drops(limit, 10)).count();
        assert!((2_500..3_500).contains(&dropped), "about 30 % dropped at start, got {dropped}");
    }
}
