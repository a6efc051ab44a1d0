//! The audit trail cannot be flooded and does not grow for ever: repeated
//! refused connections from one address make one row and one summary with
//! their count (and one warning in the log), and rows older than
//! `audit.retention_days` (audit events, finished import jobs) are pruned
//! by the server, the recent ones kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passerelle_tests::{Setup, audit_rows, bounded, python, run_command, sqlite3, wait_for};
use rustix::process::Signal;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Python: holds `held` connections open, then opens and closes `flood`
/// more (each refused by the per-address limit), waits for the server to
/// have turned them all away, and lets go.
const FLOOD: &str = r#"
import socket, sys, time
port, held, flood = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
kept = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(held)]
time.sleep(0.5)
for _ in range(flood):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
time.sleep(2)
"#;

#[test]
fn a_flood_of_refused_connections_makes_one_row_and_one_summary() {
    let mut f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .envs(&[
            ("PASSERELLE_LIMITS_MAX_CONNECTIONS_PER_IP", "2"),
            ("PASSERELLE_DEFENDER_THRESHOLD", "1000"),
            // Every connection of the flood reaches the per-address limit.
            ("PASSERELLE_LIMITS_CONNECTION_RATE", "100000"),
            ("PASSERELLE_LIMITS_CONNECTION_BURST", "100000"),
        ])
        .serve();
    let mut flood = bounded(python(), 60);
    flood.arg("-c").arg(FLOOD).args([f.p.sftp_port().to_string(), "2".into(), "200".into()]);
    let out = run_command(&mut flood, b"");
    assert!(out.success(), "flood script: {}", out.stderr);
    // A stop writes the summaries of the windows under way.
    f.server.stop_with(Signal::TERM);

    let refused: Vec<_> =
        audit_rows(&f.p).into_iter().filter(|r| r.action == "connect" && r.outcome == "refused").collect();
    assert!(refused.len() <= 3, "a flood makes a few rows, not one per connection: {refused:#?}");
    let reason = "too many connections from this address";
    let first = refused.iter().filter(|r| r.detail == reason).count();
    let suffix = " more connections from 127.0.0.1 refused in the last ";
    let counted: u64 = refused
        .iter()
        .filter(|r| r.detail.ends_with(&format!(" s: {reason}")))
        .filter_map(|r| r.detail.split_once(suffix))
        .map(|(count, _)| count.replace(',', "").parse::<u64>().expect("a count"))
        .sum();
    assert_eq!((first, first as u64 + counted), (1, 200), "{refused:#?}");
    let output = f.server.output();
    let warned = output.lines().filter(|l| l.contains("connection refused (repeats")).count();
    assert_eq!(warned, 1, "one warning per address and window:\n{output}");
}

fn unix_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(now.as_millis()).expect("ms fit")
}

/// The audit events are rows of a catalog from before the audit chain (an
/// upgrade): only then can a test write rows in the past. The chain declares
/// them older than itself when it starts, and stays verifiable as they go.
#[test]
fn the_server_prunes_audit_events_and_finished_jobs_past_their_retention() {
    let setup = Setup::new().user("acme", "alice", PASSWORD).envs(&[("PASSERELLE_AUDIT_RETENTION_DAYS", "30")]);
    let catalog = setup.p.layout().catalog_db();
    let (old, recent) = (unix_ms() - 31 * 24 * 3600 * 1000, unix_ms() - 29 * 24 * 3600 * 1000);
    sqlite3(
        &catalog,
        &format!(
            "DROP TABLE audit_chain; ALTER TABLE audit_events DROP COLUMN mac; \
             DELETE FROM _sqlx_migrations WHERE version = 20261222000001; \
             INSERT INTO audit_events (at, actor, protocol, action, outcome, detail) VALUES \
             ({old}, 'admin:test', 'cli', 'tenant_add', 'ok', 'old event'), \
             ({recent}, 'admin:test', 'cli', 'tenant_add', 'ok', 'recent event'); \
             INSERT INTO import_jobs (id, tenant, path, status, attempts, received_at, updated_at, finished_at) VALUES \
             ('old-job', 'acme', 'a.csv', 'imported', 0, {old}, {old}, {old}), \
             ('recent-job', 'acme', 'b.csv', 'rejected', 0, {recent}, {recent}, {recent});"
        ),
    );
    let f = setup.serve();
    let left = |sql: &str| sqlite3(&catalog, sql).trim().to_owned();
    let pruned = wait_for(Duration::from_secs(20), || {
        (left("SELECT count(*) FROM audit_events WHERE detail = 'old event'") == "0"
            && left("SELECT count(*) FROM import_jobs WHERE id = 'old-job'") == "0")
            .then_some(())
    });
    assert!(pruned.is_some(), "old rows still there:\n{}", f.p.ok(&["audit"]));
    assert_eq!(left("SELECT count(*) FROM audit_events WHERE detail = 'recent event'"), "1");
    assert_eq!(left("SELECT status FROM import_jobs WHERE id = 'recent-job'"), "rejected");
    let trail = f.p.ok(&["audit", "--since", "60d"]);
    assert!(trail.contains("recent event") && !trail.contains("old event"), "{trail}");
    assert!(f.p.ok(&["import", "show", "recent-job"]).contains("rejected"));
    let legacy = left("SELECT legacy_until FROM audit_chain");
    let verified = f.p.ok(&["audit", "verify"]);
    assert!(verified.contains(&format!("rows up to {legacy} predate the chain")), "{verified}");
}
