//! `<data_dir>/backup/status.json`: when the last backup run and the last verification succeeded, so
//! that a restarted `serve` (or one that a `passerelle backup` by hand got ahead of) knows what is
//! due, and `/healthz` and `/metrics` say how old the last verified backup is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BackupError;
use super::restic::Snapshot;

const FILE: &str = "status.json";

/// The last successes, Unix seconds; `None`: never (or the file is missing or unreadable, which
/// makes everything due, the safe side).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Status {
    /// When the last run stored a snapshot.
    pub(crate) backed_up_at: Option<i64>,
    /// That snapshot's short id.
    pub(crate) backed_up_snapshot: Option<String>,
    /// When the last verification passed.
    pub(crate) verified_at: Option<i64>,
    /// The snapshot it verified.
    pub(crate) verified_snapshot: Option<String>,
    /// When that snapshot was taken: the age /healthz watches.
    pub(crate) verified_snapshot_time: Option<i64>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Status {
    /// Reads the status in `work`; missing or unreadable: nothing succeeded yet.
    pub(crate) fn read(work: &Path) -> Self {
        std::fs::read(work.join(FILE)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// Reads, changes and writes back (atomically) the status in `work`.
    pub(super) fn update(work: &Path, change: impl FnOnce(&mut Self)) -> Result<(), BackupError> {
        let mut status = Self::read(work);
        change(&mut status);
        let text = serde_json::to_vec_pretty(&status).map_err(|e| BackupError::Invalid(e.to_string()))?;
        let temporary = work.join(format!("{FILE}.tmp"));
        std::fs::write(&temporary, text).map_err(|e| BackupError::io(&temporary, e))?;
        let path = work.join(FILE);
        std::fs::rename(&temporary, &path).map_err(|e| BackupError::io(&path, e))
    }

    /// A run stored `snapshot` now.
    pub(super) fn backed_up(&mut self, snapshot: &str) {
        self.backed_up_at = Some(now());
        self.backed_up_snapshot = Some(snapshot.to_owned());
    }

    /// A verification of `snapshot` passed now.
    pub(super) fn verified(&mut self, snapshot: &Snapshot) {
        self.verified_at = Some(now());
        self.verified_snapshot = Some(snapshot.short_id.clone());
        self.verified_snapshot_time = snapshot.unix_time();
    }
}

impl Snapshot {
    /// When the snapshot was taken, Unix seconds.
    pub(crate) fn unix_time(&self) -> Option<i64> {
        time::OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(time::OffsetDateTime::unix_timestamp)
    }
}
