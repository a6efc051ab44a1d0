//! Passive data ports: one listener per PASV/EPSV, on a port of
//! `ftps.passive_ports`, on the address the client reached the control
//! connection at. The kernel is the allocator: a port in use by another
//! session does not bind, and the next one is tried.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use tokio::net::TcpListener;

/// A listening data port, closed when dropped.
#[derive(Debug)]
pub(crate) struct PassivePort {
    listener: TcpListener,
    port: u16,
}

impl PassivePort {
    /// Binds a free port of `range` on `ip`, starting at a random one so
    /// that ports are not predictable. Tries each port of the range at most
    /// once.
    pub(crate) async fn open(ip: IpAddr, range: &RangeInclusive<u16>) -> io::Result<Self> {
        let (start, end) = (*range.start(), *range.end());
        let count = u32::from(end - start) + 1;
        let first = rand::random::<u32>() % count;
        for i in 0..count {
            let port = start + u16::try_from((first + i) % count).unwrap_or(0);
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(listener) => return Ok(Self { listener, port }),
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
        let a = PassivePort::open(ip, &range).await.unwrap();
        let b = PassivePort::open(ip, &range).await.unwrap();
        assert_ne!(a.port(), b.port());
        assert!(PassivePort::open(ip, &range).await.is_err());
    }

    #[test]
    fn pasv_encoding() {
        assert_eq!(pasv_address("10.0.0.1".parse().unwrap(), 50001).as_deref(), Some("10,0,0,1,195,81"));
        assert_eq!(pasv_address("::1".parse().unwrap(), 1), None);
    }
}
