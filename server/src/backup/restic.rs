//! restic as a child process. The repository and its password file reach it through its environment
//! only (`RESTIC_REPOSITORY`, `RESTIC_PASSWORD_FILE`), never its command line, so neither shows in
//! `ps` nor in a log line; `--json` output is read with serde.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use passerelle_config::BackupTarget;
use serde::Deserialize;
use tokio::process::Command;

use super::BackupError;

/// Tag of every snapshot passerelle makes: `forget` and `restore latest` only touch these.
pub(super) const TAG: &str = "passerelle";

/// Most bytes of restic's standard error kept for a message.
const STDERR_KEPT: usize = 4000;

/// One restic repository, reached with its password file.
pub(super) struct Restic {
    repository: String,
    password_file: PathBuf,
    /// restic's cache and temporary files, inside the data directory (the sandbox allows nothing else).
    cache_dir: PathBuf,
    tmp_dir: PathBuf,
}

/// A snapshot as `restic snapshots --json` lists it.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub(crate) struct Snapshot {
    /// Full snapshot id.
    pub(crate) id: String,
    /// Short id (8 hex digits), as restic prints it.
    pub(crate) short_id: String,
    /// When it was taken, RFC 3339.
    pub(crate) time: String,
    /// Its tags.
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// The host that took it.
    #[serde(default)]
    pub(crate) hostname: String,
}

/// The last line of `restic backup --json`.
#[derive(Debug, Deserialize)]
struct BackupSummary {
    message_type: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    data_added: u64,
}

/// What `restic backup` stored.
pub(super) struct Stored {
    /// The new snapshot's short id.
    pub(super) snapshot: String,
    /// Bytes added to the repository (after deduplication and compression).
    pub(super) added: u64,
}

/// The outcome of a restic command that may fail for reasons worth reporting (restore, check).
pub(super) struct Finished {
    /// Whether restic exited with status 0.
    pub(super) ok: bool,
    /// What it printed on standard output and standard error.
    pub(super) output: String,
}

impl Restic {
    /// The repository of `target`; restic keeps its cache and temporary files under `work_dir`.
    pub(super) fn new(target: &BackupTarget, work_dir: &Path) -> Self {
        Self {
            repository: target.repository.clone(),
            password_file: target.password_file.clone(),
            cache_dir: work_dir.join("cache"),
            tmp_dir: work_dir.join("tmp"),
        }
    }

    fn command(&self, args: &[&str]) -> Result<Command, BackupError> {
        let mut command = Command::new("restic");
        // The work directory lives in the data directory, which a command never creates: without
        // it (a restore onto a new machine, `backup list` before it), restic keeps no cache.
        if self.cache_dir.parent().and_then(Path::parent).is_some_and(Path::exists) {
            for dir in [&self.cache_dir, &self.tmp_dir] {
                super::private_dir(dir)?;
            }
            command.env("RESTIC_CACHE_DIR", &self.cache_dir).env("TMPDIR", &self.tmp_dir);
        } else {
            command.arg("--no-cache");
        }
        command
            .args(args)
            // Whatever the caller's environment says, this repository and this password file.
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_PASSWORD_COMMAND")
            .env("RESTIC_REPOSITORY", &self.repository)
            .env("RESTIC_PASSWORD_FILE", &self.password_file)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs restic with `args` in `dir` (or the current directory) to its end.
    async fn output(&self, args: &[&str], dir: Option<&Path>) -> Result<std::process::Output, BackupError> {
        let mut command = self.command(args)?;
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.output().await.map_err(|source| BackupError::Spawn { program: "restic", source })
    }

    /// Runs restic with `args`; returns what it printed and whether it succeeded.
    async fn finish(&self, args: &[&str]) -> Result<Finished, BackupError> {
        let output = self.output(args, None).await?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(Finished { ok: output.status.success(), output: text })
    }

    /// Runs restic with `args` in `dir`; its standard output, or an error with the end of its
    /// standard error.
    async fn run(&self, args: &[&str], dir: Option<&Path>) -> Result<String, BackupError> {
        let output = self.output(args, dir).await?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(BackupError::Tool { what: format!("restic {}", args[0]), message: tail(&output.stderr) })
    }

    /// Initialises the repository unless it exists already.
    pub(super) async fn init_if_needed(&self) -> Result<bool, BackupError> {
        if self.finish(&["cat", "config"]).await?.ok {
            return Ok(false);
        }
        self.run(&["init"], None).await?;
        Ok(true)
    }

    /// Stores the contents of `dir` as a new snapshot tagged [`TAG`] and `tag`.
    pub(super) async fn backup(&self, dir: &Path, tag: &str) -> Result<Stored, BackupError> {
        let tags = format!("{TAG},{tag}");
        let out = self.run(&["backup", "--json", "--tag", &tags, "."], Some(dir)).await?;
        let summary = out
            .lines()
            .filter_map(|line| serde_json::from_str::<BackupSummary>(line).ok())
            .find(|message| message.message_type == "summary")
            .ok_or_else(|| BackupError::Tool {
                what: "restic backup".into(),
                message: "no summary in its output".into(),
            })?;
        let snapshot = summary.snapshot_id.unwrap_or_default();
        Ok(Stored { snapshot: snapshot.chars().take(8).collect(), added: summary.data_added })
    }

    /// Forgets passerelle's snapshots older than `days` and prunes the data only they used.
    pub(super) async fn forget(&self, days: u32) -> Result<(), BackupError> {
        let within = format!("{days}d");
        self.run(&["forget", "--tag", TAG, "--keep-within", &within, "--prune"], None).await.map(drop)
    }

    /// passerelle's snapshots, oldest first.
    pub(super) async fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        let out = self.run(&["snapshots", "--json", "--tag", TAG], None).await?;
        serde_json::from_str(out.trim()).map_err(|e| BackupError::Tool {
            what: "restic snapshots".into(),
            message: format!("unreadable JSON: {e}"),
        })
    }

    /// Restores `snapshot` into `target`, reading every blob from the repository (no cache), so that
    /// damaged data is found rather than served from a local copy.
    pub(super) async fn restore(&self, snapshot: &str, target: &Path) -> Result<Finished, BackupError> {
        let target = target.to_string_lossy();
        self.finish(&["--no-cache", "restore", snapshot, "--target", &target]).await
    }

    /// `restic check`, reading the data of `subset` (`k/n`), or of every pack when `None`.
    pub(super) async fn check(&self, subset: Option<&str>) -> Result<Finished, BackupError> {
        let read = subset.map_or_else(|| "--read-data".to_owned(), |s| format!("--read-data-subset={s}"));
        self.finish(&["check", &read]).await
    }
}

/// The last [`STDERR_KEPT`] bytes of a tool's standard error, on one line.
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_KEPT);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[start..].split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// The pack files `restic check` found damaged (the 64-hex-digit ids on its lines about packs).
pub(super) fn damaged_packs(check_output: &str) -> Vec<String> {
    let mut packs: Vec<String> = check_output
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("pack"))
        .filter_map(|line| {
            line.split(|c: char| !c.is_ascii_hexdigit()).find(|word| word.len() == 64).map(str::to_owned)
        })
        .collect();
    packs.sort();
    packs.dedup();
    packs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_packs_are_named_from_check_output() {
        let want = "eec01df65cd83c91b9780a37fb2bb23c3578b76f04a560f288f36b97f3b94229";
        let output = format!("read all data\nPack ID does not match, want {want}, got {}\nFatal", "c".repeat(64));
        assert_eq!(damaged_packs(&output)[0], want);
        assert!(damaged_packs("no errors were found").is_empty());
    }

    #[test]
    fn tails_are_one_line() {
        assert_eq!(tail(b"a\n\n b \n"), "a; b");
    }
}
