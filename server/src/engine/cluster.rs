//! This node among those sharing the catalog: its heartbeat, its state
//! (running, draining, stopped) and what the other live nodes' sessions
//! count against `limits.max_sessions_per_user`.
//!
//! ```text
//!  every lease_timeout / 3:  nodes row (state, sessions) ─┐
//!                            node_sessions (per login)    ├─► catalog
//!                            duties held: renewed         ┘
//!                            ◄── other live nodes' sessions per login ── cached here
//! ```
//!
//! A login is checked against the cache (never a catalog query per login):
//! the count across nodes is as fresh as the last heartbeat. A node whose
//! heartbeat is older than `cluster.lease_timeout`, or which stopped, counts
//! for nothing. One node alone finds no other sessions: the limit is its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use passerelle_catalog::{Catalog, CatalogError, Heartbeat, NodeState, now_ms};
use passerelle_config::Config;
use tracing::{info, warn};

use super::Inner;

/// The version written in the node's row.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This node's state and its view of the others.
pub(super) struct Cluster {
    id: String,
    started_at: i64,
    addresses: String,
    /// A [`NodeState`] as `u8` (see [`encode`]).
    state: AtomicU8,
    /// Live sessions per login on the other live nodes, at the last heartbeat.
    elsewhere: Mutex<HashMap<String, u32>>,
    /// Sessions per login last written, so that unchanged counts are not rewritten.
    written: Mutex<Option<Vec<(String, i64)>>>,
}

fn encode(state: NodeState) -> u8 {
    match state {
        NodeState::Running => 0,
        NodeState::Draining => 1,
        NodeState::Stopped => 2,
    }
}

fn decode(state: u8) -> NodeState {
    match state {
        0 => NodeState::Running,
        1 => NodeState::Draining,
        _ => NodeState::Stopped,
    }
}

impl Cluster {
    /// This node as `config` names it, running.
    pub(super) fn new(config: &Config) -> Self {
        Self {
            id: config.node.id.clone(),
            started_at: now_ms(),
            addresses: addresses(config),
            state: AtomicU8::new(encode(NodeState::Running)),
            elsewhere: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// `node.id`.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// What the node is doing.
    pub(super) fn state(&self) -> NodeState {
        decode(self.state.load(Ordering::Acquire))
    }

    pub(super) fn set_state(&self, state: NodeState) {
        self.state.store(encode(state), Ordering::Release);
    }

    /// Live sessions of `login` on the other live nodes, as of the last heartbeat.
    pub(super) fn sessions_elsewhere(&self, login: &str) -> u32 {
        self.elsewhere.lock().unwrap_or_else(PoisonError::into_inner).get(login).copied().unwrap_or(0)
    }
}

/// The listen addresses, for people reading `node list`.
fn addresses(config: &Config) -> String {
    let lists = [
        ("sftp", config.sftp.listen.as_slice()),
        ("ftps", config.ftps.explicit_listen.as_slice()),
        ("ftps-implicit", config.ftps.implicit_listen.as_slice()),
        ("admin", std::slice::from_ref(&config.admin.listen)),
    ];
    let named = lists.iter().flat_map(|(name, list)| list.iter().map(move |a| format!("{name} {a}")));
    named.collect::<Vec<_>>().join(", ")
}

/// Writes one heartbeat: the node's row, its sessions per login when they
/// changed, the renewal of its duties; then reads the other nodes' sessions.
pub(super) async fn beat(inner: &Inner) -> Result<(), CatalogError> {
    let cluster = &inner.cluster;
    let catalog = &inner.catalog;
    let lease = inner.config.cluster.lease_timeout;
    let now = now_ms();
    let (_, sessions) = inner.limits.in_use();
    let beat = Heartbeat {
        id: &cluster.id,
        version: VERSION,
        started_at: cluster.started_at,
        at: now,
        state: cluster.state(),
        sessions: i64::from(sessions),
        addresses: &cluster.addresses,
    };
    catalog.node_heartbeat(&beat).await?;
    let mut per_login: Vec<(String, i64)> =
        inner.limits.sessions_per_login().into_iter().map(|(login, n)| (login, i64::from(n))).collect();
    per_login.sort_unstable();
    let changed = cluster.written.lock().unwrap_or_else(PoisonError::into_inner).as_ref() != Some(&per_login);
    if changed {
        catalog.replace_node_sessions(&cluster.id, &per_login).await?;
        *cluster.written.lock().unwrap_or_else(PoisonError::into_inner) = Some(per_login);
    }
    catalog.renew_duties(&cluster.id, now.saturating_add(millis(lease))).await?;
    let elsewhere = catalog.sessions_elsewhere(&cluster.id, now.saturating_sub(millis(lease))).await?;
    let elsewhere = elsewhere.into_iter().map(|(login, n)| (login, u32::try_from(n).unwrap_or(u32::MAX))).collect();
    *cluster.elsewhere.lock().unwrap_or_else(PoisonError::into_inner) = elsewhere;
    Ok(())
}

/// Beats every `cluster.lease_timeout / 3` until the node stopped or the
/// engine is gone. A failed beat is logged and retried at the next tick.
pub(super) async fn heartbeat(engine: Weak<Inner>, every: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = engine.upgrade() else { return };
        if inner.cluster.state() == NodeState::Stopped {
            return;
        }
        match beat(&inner).await {
            Ok(()) if failing => {
                failing = false;
                info!("cluster: heartbeat written again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "cluster: heartbeat not written (other nodes will see this node as gone after cluster.lease_timeout)");
            }
            Err(_) => {}
        }
    }
}

/// Records the node `stopped`, with no sessions, and gives its duties back.
pub(super) async fn leave(inner: &Inner) -> Result<(), CatalogError> {
    inner.cluster.set_state(NodeState::Stopped);
    beat(inner).await?;
    inner.catalog.replace_node_sessions(&inner.cluster.id, &[]).await?;
    inner.catalog.release_duties(&inner.cluster.id).await
}

/// Whether this node holds periodic duty `name` now (claiming it when it
/// is free or its holder is gone). A catalog error means no: the round is
/// skipped rather than run twice.
pub(super) async fn holds_duty(catalog: &Catalog, config: &Config, name: &str) -> bool {
    let now = now_ms();
    let until = now.saturating_add(millis(config.cluster.lease_timeout));
    match catalog.claim_duty(name, &config.node.id, until, now).await {
        Ok(mine) => mine,
        Err(e) => {
            warn!(duty = name, error = %e, "cluster: cannot claim the duty; this round is skipped");
            false
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
