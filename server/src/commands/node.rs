//! `node list`: the nodes sharing the catalog, as their heartbeats say, with
//! `gone` for a node silent for longer than `cluster.lease_timeout` (it died,
//! or lost the catalog) and `stopped` for one that exited cleanly.

use passerelle_catalog::{Node, NodeState, now_ms};
use serde::Serialize;

use crate::admin::Admin;
use crate::cli::NodeCommand;
use crate::error::CliError;
use crate::output;

/// A node with what its heartbeat's age makes of it.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    node: Node,
    /// `running`, `draining`, `stopped`, or `gone` (no heartbeat within the lease timeout).
    status: &'static str,
    /// Milliseconds since its last heartbeat.
    heartbeat_age_ms: i64,
}

pub(super) async fn run(admin: &Admin, command: NodeCommand) -> Result<(), CliError> {
    let NodeCommand::List(flag) = command;
    let lease = i64::try_from(admin.config.cluster.lease_timeout.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let nodes: Vec<Shown> = admin
        .catalog
        .nodes()
        .await?
        .into_iter()
        .map(|node| {
            let age = now.saturating_sub(node.heartbeat_at).max(0);
            Shown { status: status(&node.state, age > lease), heartbeat_age_ms: age, node }
        })
        .collect();
    if flag.json {
        return output::json(&nodes);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|shown| {
            let node = &shown.node;
            vec![
                node.id.clone(),
                node.version.clone(),
                shown.status.to_owned(),
                format!("{} s ago", shown.heartbeat_age_ms / 1000),
                node.sessions.to_string(),
                node.running_jobs.to_string(),
                node.addresses.clone(),
            ]
        })
        .collect();
    output::table(&["NODE", "VERSION", "STATE", "HEARTBEAT", "SESSIONS", "JOBS", "ADDRESSES"], &rows);
    Ok(())
}

/// What `node list` calls a node whose row says `state`, `silent` when its
/// heartbeat is older than the lease timeout.
fn status(state: &str, silent: bool) -> &'static str {
    let stored =
        [NodeState::Running, NodeState::Draining, NodeState::Stopped].into_iter().find(|s| s.as_str() == state);
    match stored {
        Some(NodeState::Stopped) => NodeState::Stopped.as_str(),
        _ if silent => "gone",
        Some(known) => known.as_str(),
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::status;

    #[test]
    fn a_silent_node_is_gone_unless_it_stopped() {
        assert_eq!(status("running", false), "running");
        assert_eq!(status("draining", false), "draining");
        assert_eq!(status("running", true), "gone");
        assert_eq!(status("draining", true), "gone");
        assert_eq!(status("stopped", true), "stopped");
    }
}
