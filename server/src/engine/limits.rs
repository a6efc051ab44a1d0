//! Connection, session and open-file limits. Permits are RAII guards: a
//! connection, session or open file that ends, however it ends, gives its
//! slot back.
//!
//! Open files (uploads, downloads, directory listings) are counted three
//! ways: per session (`limits.max_open_files_per_session`, over all its SFTP
//! channels), per user over its sessions on this node
//! (`limits.max_open_files_per_user`), and in all, against the process's
//! share of its open-file limit (`nofile.rs`), so that clients can never
//! take the descriptors the catalog and the listeners need.
//!
//! Connections not yet logged in ("startups") are also counted, and new ones
//! dropped at random past `limits.max_startups` (OpenSSH's MaxStartups
//! `start:rate:full`), so that a flood of idle connections cannot keep
//! legitimate clients out: the flood is thinned before it fills the server.
//!
//! Connections are counted per source (an IPv4 address or an IPv6 network,
//! see `source`), and each source's new connections go through its token
//! bucket first (`rate`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::fs::TooManyOpen;
use super::rate::ConnectionRate;
use super::source::{Capped, Source};

use passerelle_config::{LimitsConfig, MaxStartups};

/// Why a connection was turned away.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    #[error("too many connections")]
    TooManyConnections,
    /// `limits.max_connections_per_ip` reached for this source.
    #[error("too many connections from this address")]
    TooManyFromAddress,
    /// Dropped by `limits.max_startups`.
    #[error("too many connections not yet logged in")]
    StartupDropped,
    /// The source's bucket of `limits.connection_rate` is empty.
    #[error("new connections over limits.connection_rate ({rate} per second, limits.connection_burst {burst})")]
    RateExceeded {
        /// `limits.connection_rate`.
        rate: u32,
        /// `limits.connection_burst`.
        burst: u32,
    },
}

/// Counters shared by every front-end.
pub(super) struct Limits {
    max_connections: u32,
    max_per_ip: u32,
    max_per_user: u32,
    max_startups: MaxStartups,
    rate: ConnectionRate,
    connections: Arc<Counter<Source>>,
    sessions: Arc<Counter<String>>,
    startups: Arc<AtomicU32>,
    max_open_per_session: u32,
    max_open_per_user: u32,
    /// The process's share of its open-file limit for clients' files.
    max_open_total: u32,
    /// Open files, per login and in all.
    open_files: Arc<Counter<String>>,
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

    /// Slots held now, per key.
    fn per_key(&self) -> Vec<(K, u32)> {
        let guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.1.iter().map(|(key, count)| (key.clone(), *count)).collect()
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
    counter: Arc<Counter<Source>>,
    source: Source,
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
        self.counter.release(&self.source);
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

/// Held for as long as one file or directory is open for a client.
pub(crate) struct FilePermit {
    users: Arc<Counter<String>>,
    login: String,
    session: Arc<AtomicU32>,
}

impl Drop for FilePermit {
    fn drop(&mut self) {
        self.session.fetch_sub(1, Ordering::AcqRel);
        self.users.release(&self.login);
    }
}

impl Limits {
    /// The limits of `config`, with `max_open_total` files open for clients
    /// at most (see `nofile.rs`) and the table of connection rates bounded
    /// by `capped`.
    pub(super) fn new(config: &LimitsConfig, capped: Capped, max_open_total: u32) -> Self {
        Self {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_sessions_per_user,
            max_startups: config.max_startups,
            rate: ConnectionRate::new(config.connection_rate, config.connection_burst, capped),
            connections: Arc::new(Counter::new()),
            sessions: Arc::new(Counter::new()),
            startups: Arc::default(),
            max_open_per_session: config.max_open_files_per_session,
            max_open_per_user: config.max_open_files_per_user,
            max_open_total,
            open_files: Arc::new(Counter::new()),
        }
    }

    /// `limits.max_open_files_per_session`.
    pub(super) fn max_open_per_session(&self) -> u32 {
        self.max_open_per_session
    }

    /// A slot for one more open file of `login`, in the session whose open
    /// files `session` counts.
    pub(super) fn open_file(&self, login: &str, session: &Arc<AtomicU32>) -> Result<FilePermit, TooManyOpen> {
        let taken = session.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < self.max_open_per_session).then_some(open + 1)
        });
        if taken.is_err() {
            return Err(TooManyOpen::Session(self.max_open_per_session));
        }
        let login = login.to_owned();
        match self.open_files.acquire(&login, self.max_open_total, self.max_open_per_user) {
            Ok(()) => Ok(FilePermit { users: Arc::clone(&self.open_files), login, session: Arc::clone(session) }),
            Err(full) => {
                session.fetch_sub(1, Ordering::AcqRel);
                Err(if full {
                    TooManyOpen::Server(self.max_open_total)
                } else {
                    TooManyOpen::User { login, limit: self.max_open_per_user }
                })
            }
        }
    }

    /// Admits one new connection of `source`: within its connection rate,
    /// `limits.max_startups` and the connection limits.
    pub(super) fn admit(&self, source: Source) -> Result<ConnectionPermit, Refusal> {
        if !self.rate.take(source) {
            let (rate, burst) = self.rate.limits();
            return Err(Refusal::RateExceeded { rate, burst });
        }
        let startups = self.startups.fetch_add(1, Ordering::AcqRel);
        let startup = Startup(Arc::clone(&self.startups));
        if drops(self.max_startups, startups) {
            return Err(Refusal::StartupDropped);
        }
        match self.connections.acquire(&source, self.max_connections, self.max_per_ip) {
            Ok(()) => Ok(ConnectionPermit { counter: Arc::clone(&self.connections), source, startup: Some(startup) }),
            Err(true) => Err(Refusal::TooManyConnections),
            Err(false) => Err(Refusal::TooManyFromAddress),
        }
    }

    /// Logged-in sessions now, per login.
    pub(super) fn sessions_per_login(&self) -> Vec<(String, u32)> {
        self.sessions.per_key()
    }

    /// Open connections and logged-in sessions now.
    pub(super) fn in_use(&self) -> (u32, u32) {
        (self.connections.total(), self.sessions.total())
    }

    /// A slot for one more session of `login`, which has `elsewhere` live
    /// sessions on other nodes: refused when the two reach
    /// `limits.max_sessions_per_user`.
    pub(super) fn open_session(&self, login: &str, elsewhere: u32) -> Result<SessionPermit, ()> {
        let login = login.to_owned();
        let left = self.max_per_user.saturating_sub(elsewhere);
        self.sessions.acquire(&login, u32::MAX, left).map_err(|_| ())?;
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

    fn limits(per_session: u32, per_user: u32, total: u32) -> Limits {
        let config = LimitsConfig {
            login_grace_time: std::time::Duration::from_secs(30),
            max_auth_tries: 6,
            idle_timeout: std::time::Duration::from_secs(900),
            max_sessions_per_user: 10,
            max_connections_per_ip: 20,
            max_connections: 500,
            max_startups: MaxStartups { start: 10, rate: 30, full: 100 },
            connection_rate: 10,
            connection_burst: 20,
            max_open_files_per_session: per_session,
            max_open_files_per_user: per_user,
            max_buffered_bytes_per_session: passerelle_config::ByteSize::new(64 << 20),
            max_concurrent_password_checks: 2,
        };
        let defaults = passerelle_config::Config::load(Default::default()).unwrap();
        Limits::new(&config, Capped::new(&defaults.defender), total)
    }

    #[test]
    fn open_files_are_bounded_per_session_per_user_and_in_all() {
        let limits = limits(2, 3, 4);
        let (first, second) = (Arc::default(), Arc::default());
        let a = limits.open_file("ada", &first).unwrap();
        let _b = limits.open_file("ada", &first).unwrap();
        assert_eq!(limits.open_file("ada", &first).err(), Some(TooManyOpen::Session(2)));
        let _c = limits.open_file("ada", &second).unwrap();
        let refused = limits.open_file("ada", &second).err().unwrap();
        assert_eq!(refused.to_string(), "too many open files for user ada (limit 3)");
        assert_eq!(second.load(Ordering::Acquire), 1, "a refusal gives the session's slot back");
        let _d = limits.open_file("bob", &Arc::default()).unwrap();
        assert_eq!(limits.open_file("eve", &Arc::default()).err(), Some(TooManyOpen::Server(4)));
        drop(a);
        assert_eq!(first.load(Ordering::Acquire), 1);
        let _e = limits.open_file("ada", &first).unwrap();
    }
}
