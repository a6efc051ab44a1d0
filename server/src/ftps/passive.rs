//! Passive data ports: one listener per PASV/EPSV, on a port of
//! `ftps.passive_ports`, on the address the client reached the control
//! connection at. The kernel is the allocator: a port in use by another
//! session does not bind, and the next one is tried.
//!
//! The pool is shared: so that a few sessions cannot hold all of it, each
//! port is held on a [`Lease`] of its user's, at most
//! `ftps.max_passive_ports_per_user` at once (a session holds one at a
//! time), and a session lets its port go when no transfer used it within
//! `ftps.passive_idle_timeout`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::time::Instant;

/// The passive ports each user holds, over all its sessions on this node.
#[derive(Debug, Default)]
pub(crate) struct PortLeases {
    held: Mutex<HashMap<String, u32>>,
}

impl PortLeases {
    /// A lease on one more port for `user`, or `None` when it holds `limit`.
    pub(crate) fn take(self: &Arc<Self>, user: &str, limit: u32) -> Option<Lease> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(user.to_owned()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Lease { leases: Arc::clone(self), user: user.to_owned() })
    }
}

/// One port of a user's; given back when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    leases: Arc<PortLeases>,
    user: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.leases.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// A listening data port, closed (and its lease given back) when dropped.
#[derive(Debug)]
pub(crate) struct PassivePort {
    listener: TcpListener,
    port: u16,
    opened: Instant,
    _lease: Lease,
}

impl PassivePort {
    /// Binds a free port of `range` on `ip`, starting at a random one so
    /// that ports are not predictable. Tries each port of the range at most
    /// once.
    pub(crate) async fn open(ip: IpAddr, range: &RangeInclusive<u16>, lease: Lease) -> io::Result<Self> {
        let (start, end) = (*range.start(), *range.end());
        let count = u32::from(end - start) + 1;
        let first = rand::random::<u32>() % count;
        for i in 0..count {
            let port = start + u16::try_from((first + i) % count).unwrap_or(0);
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(listener) => return Ok(Self { listener, port, opened: Instant::now(), _lease: lease }),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "every passive port is in use"))
    }

    /// The port clients are told to connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The listener.
    pub(crate) fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// When the port was opened.
    pub(crate) fn opened(&self) -> Instant {
        self.opened
    }
}

/// The `h1,h2,h3,h4,p1,p2` of a PASV reply; `None` for IPv6 (EPSV only).
pub(crate) fn pasv_address(ip: IpAddr, port: u16) -> Option<String> {
    let IpAddr::V4(v4) = ip else { return None };
    let [a, b, c, d] = v4.octets();
    Some(format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_ports_from_a_range_differ() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let base = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let range = base..=base.saturating_add(1);
        let leases = Arc::new(PortLeases::default());
        let lease = || leases.take("alice", 3).unwrap();
        let a = PassivePort::open(ip, &range, lease()).await.unwrap();
        let b = PassivePort::open(ip, &range, lease()).await.unwrap();
        assert_ne!(a.port(), b.port());
        assert!(PassivePort::open(ip, &range, lease()).await.is_err());
    }

    #[test]
    fn a_user_holds_at_most_its_limit_and_dropping_gives_back() {
        let leases = Arc::new(PortLeases::default());
        let held: Vec<Lease> = (0..2).map(|_| leases.take("alice", 2).unwrap()).collect();
        assert!(leases.take("alice", 2).is_none());
        assert!(leases.take("bob", 2).is_some(), "another user is not held up");
        drop(held);
        assert!(leases.take("alice", 2).is_some());
        assert!(leases.held.lock().unwrap().is_empty(), "no entry left for users holding nothing");
    }

    #[test]
    fn pasv_encoding() {
        assert_eq!(pasv_address("10.0.0.1".parse().unwrap(), 50001).as_deref(), Some("10,0,0,1,195,81"));
        assert_eq!(pasv_address("::1".parse().unwrap(), 1), None);
    }
}
