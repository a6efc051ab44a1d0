//! The manifest of a backup (`manifest.json` at the snapshot's root): every file with its size and
//! SHA-256, and every database with the row count of each of its tables, so that a restore can be
//! checked against what was taken.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read as _};
use std::path::Path;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::BackupError;

/// The manifest's file name, at the root of every snapshot.
pub(super) const FILE: &str = "manifest.json";

/// This layout's version; a restore refuses others.
pub(super) const FORMAT: u32 = 1;

/// What one backup holds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    /// [`FORMAT`].
    pub(super) format: u32,
    /// When the copy was taken, RFC 3339.
    pub(super) taken_at: String,
    /// Every file but the manifest, by path relative to the snapshot's root.
    pub(super) files: Vec<FileEntry>,
    /// Every database copy.
    pub(super) databases: Vec<DatabaseEntry>,
}

/// One file of the backup.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FileEntry {
    /// Relative to the snapshot's root, `/`-separated.
    pub(super) path: String,
    /// Size in bytes.
    pub(super) bytes: u64,
    /// SHA-256, lower-case hex.
    pub(super) sha256: String,
}

/// How a database was copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Engine {
    /// A SQLite file made by `VACUUM INTO`.
    Sqlite,
    /// A `pg_dump -Fc` archive.
    Postgres,
}

/// One database of the backup.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DatabaseEntry {
    /// The file holding it (one of [`Manifest::files`]).
    pub(super) file: String,
    /// How it was copied.
    pub(super) engine: Engine,
    /// The tenant it belongs to; `None` for the catalog.
    pub(super) tenant: Option<String>,
    /// PostgreSQL: the database's name, recreated under that name by a restore.
    pub(super) database: Option<String>,
    /// Rows of each table (`schema.table` on PostgreSQL) in the copy.
    pub(super) rows: BTreeMap<String, u64>,
}

impl Manifest {
    /// Total bytes of the files.
    pub(super) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Reads `dir/manifest.json`.
    pub(super) fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(FILE);
        let text = std::fs::read(&path).map_err(|e| BackupError::io(&path, e))?;
        let manifest: Self = serde_json::from_slice(&text)
            .map_err(|e| BackupError::Invalid(format!("{}: not a passerelle backup manifest: {e}", path.display())))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Invalid(format!(
                "{}: manifest format {} (this passerelle reads {FORMAT})",
                path.display(),
                manifest.format
            )));
        }
        Ok(manifest)
    }

    /// Writes `dir/manifest.json`.
    pub(super) fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(FILE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| BackupError::Invalid(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| BackupError::io(&path, e))
    }

    /// Checks every file under `dir` against its size and SHA-256; returns one failure per file that
    /// is missing or differs, naming it.
    pub(super) fn check_files(&self, dir: &Path) -> Vec<String> {
        let mut failures = Vec::new();
        for entry in &self.files {
            let path = dir.join(&entry.path);
            match FileEntry::of(&path, &entry.path) {
                Ok(found) if found.sha256 == entry.sha256 && found.bytes == entry.bytes => {}
                Ok(found) => failures.push(format!(
                    "{}: differs from the manifest ({} bytes, sha256 {}; expected {} bytes, sha256 {})",
                    entry.path, found.bytes, found.sha256, entry.bytes, entry.sha256
                )),
                Err(e) => failures.push(format!("{}: {e}", entry.path)),
            }
        }
        failures
    }
}

impl FileEntry {
    /// Measures the file at `path`, recorded as `name`.
    pub(super) fn of(path: &Path, name: &str) -> Result<Self, BackupError> {
        let file = File::open(path).map_err(|e| BackupError::io(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut context = digest::Context::new(&digest::SHA256);
        let mut buffer = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let read = reader.read(&mut buffer).map_err(|e| BackupError::io(path, e))?;
            if read == 0 {
                break;
            }
            context.update(&buffer[..read]);
            bytes += read as u64;
        }
        Ok(Self { path: name.to_owned(), bytes, sha256: hex::encode(context.finish().as_ref()) })
    }
}
