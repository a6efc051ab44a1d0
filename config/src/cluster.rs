//! `[node]`, `[cluster]` and `[shutdown]`: what one node of several sharing a catalog and a data
//! directory needs, checked and resolved (the node id defaults to the host name).

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;

use crate::duration;
use crate::error::ConfigError;

/// `[node]`: this node among those sharing one catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's name in the catalog (`passerelle node list`, import leases, periodic duties):
    /// 1 to 63 ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit. Defaults to
    /// the host name.
    pub id: String,
}

/// `[cluster]`: how nodes sharing one catalog see each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How long a node's heartbeat, import leases and periodic duties outlive its last renewal
    /// (3 s to 10 min); the heartbeat runs every third of it.
    pub lease_timeout: Duration,
}

impl ClusterConfig {
    /// How often a node writes its heartbeat and renews its leases: a third of the lease timeout,
    /// so that two missed beats still keep them.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_timeout / 3
    }
}

/// `[shutdown]`: how `serve` stops on SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long live connections may go on after the listeners closed (1 s to 1 h).
    pub drain_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) lease_timeout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShutdown {
    pub(crate) drain_timeout: String,
}

/// Bounds of `cluster.lease_timeout`: short enough leases would expire on a busy catalog, long ones
/// leave a dead node's jobs waiting.
const LEASE_TIMEOUT: RangeInclusive<Duration> = Duration::from_secs(3)..=Duration::from_secs(600);

/// Bounds of `shutdown.drain_timeout`.
const DRAIN_TIMEOUT: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(3600);

/// Longest node id (a DNS label's length).
const MAX_ID: usize = 63;

/// `[node]`: an id given, or the host name.
pub(crate) fn node(node: RawNode) -> Result<NodeConfig, ConfigError> {
    let given = node.id.is_some();
    let id = node.id.unwrap_or_else(host_name);
    check_id(&id).map_err(|message| {
        let message = if given { message } else { format!("the host name is no node id: {message}; set node.id") };
        ConfigError::invalid("node.id", message)
    })?;
    Ok(NodeConfig { id })
}

/// `[cluster]`.
pub(crate) fn cluster(cluster: RawCluster) -> Result<ClusterConfig, ConfigError> {
    Ok(ClusterConfig { lease_timeout: bounded("cluster.lease_timeout", &cluster.lease_timeout, LEASE_TIMEOUT)? })
}

/// `[shutdown]`.
pub(crate) fn shutdown(shutdown: RawShutdown) -> Result<ShutdownConfig, ConfigError> {
    Ok(ShutdownConfig { drain_timeout: bounded("shutdown.drain_timeout", &shutdown.drain_timeout, DRAIN_TIMEOUT)? })
}

fn bounded(key: &str, text: &str, range: RangeInclusive<Duration>) -> Result<Duration, ConfigError> {
    let value = duration::parse(text).map_err(|message| ConfigError::invalid(key, message))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            key,
            format!(
                "must be between {} and {} (got \"{text}\")",
                duration::format(*range.start()),
                duration::format(*range.end())
            ),
        ))
    }
}

/// A node id is shown in tables and logs and stored in the catalog: short, and nothing that needs quoting.
fn check_id(id: &str) -> Result<(), String> {
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if id.is_empty() || id.len() > MAX_ID || !first_ok || !rest_ok {
        return Err(format!(
            "must be 1 to {MAX_ID} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit (got \"{}\")",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// The kernel's host name (Linux); empty when unreadable, which the id check then refuses. Read
/// once per process: `serve` loads its configuration before it sandboxes itself, and checks it
/// again on SIGHUP from inside the sandbox, where `/proc/sys` may be out of reach.
fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_short_safe_names() {
        for good in ["a", "node-1", "eu.west_2", "N1"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lease_timeout_is_bounded() {
        assert!(cluster(RawCluster { lease_timeout: "2s".into() }).is_err());
        assert!(cluster(RawCluster { lease_timeout: "11m".into() }).is_err());
        let ok = cluster(RawCluster { lease_timeout: "15s".into() }).unwrap();
        assert_eq!(ok.heartbeat_interval(), Duration::from_secs(5));
    }
}
