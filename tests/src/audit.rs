//! The audit trail of a SQLite installation, read straight from its catalog.

use std::time::Duration;

use crate::installation::Passerelle;
use crate::tools::sqlite3;
use crate::util::wait_for;

/// How long the asynchronous audit writer may take to record an event.
const AUDIT_DELAY: Duration = Duration::from_secs(10);

/// One row of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// `sftp`, `ftps`, `cli`, ...
    pub protocol: String,
    /// `login`, `upload`, `download`, `rename`, ...
    pub action: String,
    /// `ok`, `failed`, `aborted`, ...
    pub outcome: String,
    /// The client path, empty when none.
    pub path: String,
    /// Bytes transferred, when recorded.
    pub bytes: Option<u64>,
    /// The free-text detail, empty when none.
    pub detail: String,
}

/// The audit trail of a SQLite installation, oldest first.
pub fn audit_rows(p: &Passerelle) -> Vec<AuditRow> {
    let out = sqlite3(
        &p.layout().catalog_db(),
        "SELECT json_object('protocol', protocol, 'action', action, 'outcome', outcome, 'path', coalesce(path, ''), \
         'bytes', bytes, 'detail', coalesce(detail, '')) FROM audit_events ORDER BY id",
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("audit row as JSON");
            AuditRow {
                protocol: v["protocol"].as_str().unwrap_or_default().to_owned(),
                action: v["action"].as_str().unwrap_or_default().to_owned(),
                outcome: v["outcome"].as_str().unwrap_or_default().to_owned(),
                path: v["path"].as_str().unwrap_or_default().to_owned(),
                bytes: v["bytes"].as_u64(),
                detail: v["detail"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// Waits (up to 10 s: the audit writer is asynchronous) for an audit row
/// matching `wanted`, and returns it; panics with the whole trail otherwise.
pub fn wait_for_audit(p: &Passerelle, what: &str, wanted: impl Fn(&AuditRow) -> bool) -> AuditRow {
    wait_for(AUDIT_DELAY, || audit_rows(p).into_iter().find(|r| wanted(r)))
        .unwrap_or_else(|| panic!("no audit row for {what}; audit trail:\n{:#?}", audit_rows(p)))
}
