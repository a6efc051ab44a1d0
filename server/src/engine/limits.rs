//! Connection and session limits. Permits are RAII guards: a connection or
//! session that ends, however it ends, gives its slot back.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use passerelle_config::LimitsConfig;

/// Why a connection was turned away.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    #[error("too many connections")]
    TooManyConnections,
    /// `limits.max_sessions_per_ip` reached for this address.
    #[error("too many connections from this address")]
    TooManyFromAddress,
}

/// Counters shared by every front-end.
pub(super) struct Limits {
    max_connections: u32,
    max_per_ip: u32,
    max_per_user: u32,
    connections: Arc<Counter<IpAddr>>,
    sessions: Arc<Counter<String>>,
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
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counter.release(&self.ip);
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
            max_per_ip: config.max_sessions_per_ip,
            max_per_user: config.max_sessions_per_user,
            connections: Arc::new(Counter::new()),
            sessions: Arc::new(Counter::new()),
        }
    }

    pub(super) fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        match self.connections.acquire(&ip, self.max_connections, self.max_per_ip) {
            Ok(()) => Ok(ConnectionPermit { counter: self.connections.clone(), ip }),
            Err(true) => Err(Refusal::TooManyConnections),
            Err(false) => Err(Refusal::TooManyFromAddress),
        }
    }

    pub(super) fn open_session(&self, login: &str) -> Result<SessionPermit, ()> {
        let login = login.to_owned();
        self.sessions.acquire(&login, u32::MAX, self.max_per_user).map_err(|_| ())?;
        Ok(SessionPermit { counter: self.sessions.clone(), login })
    }
}
