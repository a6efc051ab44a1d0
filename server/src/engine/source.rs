//! Sources: what the defender and the per-source limits count. An IPv4
//! client is its address; an IPv6 client is the network of
//! `defender.ipv6_prefix` around its address, since one client usually holds
//! a whole /64 and can rotate through it at will.
//!
//! ```text
//!  2001:db8:1:2::1 ┐
//!  2001:db8:1:2::2 ┼─► Source 2001:db8:1:2::/64 ─► one score, one ban, one bucket
//!  2001:db8:1:2::… ┘
//!  ::ffff:192.0.2.1 ─► Source 192.0.2.1            (IPv4-mapped IPv6 is IPv4)
//! ```
//!
//! Also here: [`Capped`], the bound on every table keyed by source.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use passerelle_config::DefenderConfig;

/// One source, as [`Aggregation::source`] makes it: an IPv4 address or an
/// IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpNet);

impl Source {
    /// The network this source covers (a single address for IPv4).
    pub(super) fn network(self) -> IpNet {
        self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Network(self.0), f)
    }
}

/// A network as the catalog stores bans: a bare address for a single
/// address, CIDR notation otherwise.
pub(super) struct Network(pub(super) IpNet);

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Parses an address or a network (`2001:db8::/64`), as stored or typed by
/// an operator: IPv4-mapped IPv6 addresses are IPv4, host bits are cleared.
pub(crate) fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(IpNet::from(ip.to_canonical()));
    }
    let net = text.parse::<IpNet>().ok()?;
    Some(
        match net {
            IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::V4(Ipv4Net::new(v4, v6.prefix_len().saturating_sub(96)).ok()?),
                None => net,
            },
            IpNet::V4(_) => net,
        }
        .trunc(),
    )
}

/// What `ban add/remove` acts on: an address or a network, as typed.
pub(crate) struct BanTarget {
    network: IpNet,
    ipv6_prefix: u8,
}

impl BanTarget {
    /// `network` (a single address or not), with `defender.ipv6_prefix`.
    pub(crate) fn new(network: IpNet, ipv6_prefix: u8) -> Self {
        Self { network, ipv6_prefix }
    }

    /// The ban row of the network itself.
    pub(crate) fn exact(&self) -> String {
        Network(self.network).to_string()
    }

    /// The ban rows that may hold it, first the exact one: for a single
    /// IPv6 address, also its source network (what the defender bans).
    pub(crate) fn candidates(&self) -> Vec<String> {
        let mut candidates = vec![self.exact()];
        if self.network.prefix_len() == self.network.max_prefix_len() {
            let source = Aggregation::new(self.ipv6_prefix).source(self.network.addr()).to_string();
            if source != candidates[0] {
                candidates.push(source);
            }
        }
        candidates
    }
}

/// Makes the [`Source`] of an address (`defender.ipv6_prefix`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aggregation {
    ipv6_prefix: u8,
}

impl Aggregation {
    /// IPv6 sources are networks of `ipv6_prefix` bits (at most 128).
    pub(crate) fn new(ipv6_prefix: u8) -> Self {
        Self { ipv6_prefix: ipv6_prefix.min(128) }
    }

    /// The source `ip` belongs to.
    pub(crate) fn source(self, ip: IpAddr) -> Source {
        Source(match ip.to_canonical() {
            IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
            IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, self.ipv6_prefix).unwrap_or_else(|_| v6.into()).trunc()),
        })
    }
}

/// A table keyed by source, bounded as SFTPGo's defender bounds its own:
/// reaching the hard limit drops the oldest entries down to the soft limit,
/// so that a flood of sources costs one sort per `hard - soft` new ones.
#[derive(Clone, Copy, Debug)]
pub(super) struct Capped {
    soft: usize,
    hard: usize,
}

impl Capped {
    /// `defender.entries_soft_limit` and `defender.entries_hard_limit`.
    pub(super) fn new(config: &DefenderConfig) -> Self {
        let soft = usize::try_from(config.entries_soft_limit).unwrap_or(usize::MAX);
        let hard = usize::try_from(config.entries_hard_limit).unwrap_or(usize::MAX);
        Self { soft, hard: hard.max(soft.saturating_add(1)) }
    }

    /// Makes room for one more entry in `table`: when it is at the hard
    /// limit, keeps the `soft - 1` newest by `age` (larger is newer).
    pub(super) fn make_room<K, V, A>(self, table: &mut HashMap<K, V>, age: impl Fn(&V) -> A)
    where
        K: Eq + std::hash::Hash + Clone,
        A: Ord,
    {
        if table.len() < self.hard {
            return;
        }
        let mut ages: Vec<(A, K)> = table.iter().map(|(key, value)| (age(value), key.clone())).collect();
        let drop = ages.len() - self.soft.saturating_sub(1);
        ages.select_nth_unstable_by(drop - 1, |a, b| a.0.cmp(&b.0));
        for (_, key) in &ages[..drop] {
            table.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_sources_are_networks_and_ipv4_sources_addresses() {
        let by64 = Aggregation::new(64);
        assert_eq!(by64.source(ip("2001:db8:1:2::1")), by64.source(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(by64.source(ip("2001:db8:1:2::1")), by64.source(ip("2001:db8:1:3::1")));
        assert_eq!(by64.source(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
        assert_eq!(by64.source(ip("::ffff:192.0.2.1")).to_string(), "192.0.2.1");
        assert_ne!(by64.source(ip("192.0.2.1")), by64.source(ip("192.0.2.2")));
        assert_eq!(Aggregation::new(128).source(ip("2001:db8::1")).to_string(), "2001:db8::1");
    }

    #[test]
    fn networks_are_parsed_canonical() {
        assert_eq!(parse_network("2001:db8:1:2::7/64").unwrap().to_string(), "2001:db8:1:2::/64");
        assert_eq!(parse_network(" ::ffff:192.0.2.1 ").unwrap().to_string(), "192.0.2.1/32");
        assert_eq!(parse_network("::ffff:192.0.2.0/120").unwrap().to_string(), "192.0.2.0/24");
        assert!(parse_network("example.org").is_none());
        let address = BanTarget::new(parse_network("2001:db8:1:2::9").unwrap(), 64);
        assert_eq!(address.candidates(), ["2001:db8:1:2::9", "2001:db8:1:2::/64"]);
        let network = BanTarget::new(parse_network("2001:db8:1:2::/64").unwrap(), 64);
        assert_eq!(network.candidates(), ["2001:db8:1:2::/64"]);
        assert_eq!(BanTarget::new(parse_network("192.0.2.1").unwrap(), 64).candidates(), ["192.0.2.1"]);
    }

    #[test]
    fn a_full_table_keeps_its_newest_entries() {
        let capped = Capped { soft: 3, hard: 5 };
        let mut table: HashMap<u32, u32> = (0..5).map(|n| (n, n)).collect();
        capped.make_room(&mut table, |age| *age);
        let mut kept: Vec<u32> = table.into_keys().collect();
        kept.sort_unstable();
        assert_eq!(kept, [3, 4], "room for one more within the soft limit");
    }
}
