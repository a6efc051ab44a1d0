//! Backup runs and verifications as audit events (action `backup` or `backup_verify`, outcome `ok` or
//! `failed`): time, snapshot, files, bytes and every failure by name. The caller says who acted.

use passerelle_catalog::AuditEvent;

use super::{BackupError, Stored, Verified};

/// Most characters of failures kept in one event's detail (the command's output has them all).
const DETAIL_MAX: usize = 4000;

fn millis(duration: std::time::Duration) -> Option<i64> {
    Some(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn bounded(mut text: String) -> String {
    if text.len() > DETAIL_MAX {
        let cut = (0..=DETAIL_MAX).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str(" …");
    }
    text
}

/// The event of a backup run.
pub(crate) fn run_event(actor: &str, protocol: &str, result: &Result<Stored, BackupError>) -> AuditEvent {
    let (outcome, detail, bytes, duration_ms) = match result {
        Ok(stored) => (
            "ok",
            format!(
                "snapshot {}: {} files, {} bytes ({} added to the repository); copy {} ms",
                stored.snapshot,
                stored.files,
                stored.bytes,
                stored.added,
                stored.copy.as_millis()
            ),
            i64::try_from(stored.bytes).ok(),
            millis(stored.took),
        ),
        Err(e) => ("failed", e.to_string(), None, None),
    };
    AuditEvent {
        actor: actor.to_owned(),
        protocol: protocol.to_owned(),
        action: "backup".into(),
        outcome: outcome.into(),
        bytes,
        duration_ms,
        detail: Some(bounded(detail)),
        ..AuditEvent::default()
    }
}

/// The event of a verification.
pub(crate) fn verify_event(actor: &str, protocol: &str, result: &Result<Verified, BackupError>) -> AuditEvent {
    let (outcome, detail, bytes, duration_ms) = match result {
        Ok(verified) => {
            let snapshot = verified.snapshot.as_ref().map_or("-", |s| s.short_id.as_str());
            let summary = format!(
                "snapshot {snapshot}: {} files, {} databases, packs read {}",
                verified.files, verified.databases, verified.read
            );
            let (outcome, detail) = if verified.failures.is_empty() {
                ("ok", summary)
            } else {
                ("failed", format!("{summary}; failures: {}", verified.failures.join("; ")))
            };
            (outcome, detail, i64::try_from(verified.bytes).ok(), millis(verified.took))
        }
        Err(e) => ("failed", e.to_string(), None, None),
    };
    AuditEvent {
        actor: actor.to_owned(),
        protocol: protocol.to_owned(),
        action: "backup_verify".into(),
        outcome: outcome.into(),
        bytes,
        duration_ms,
        detail: Some(bounded(detail)),
        ..AuditEvent::default()
    }
}
