//! `serve` confines its own filesystem access with Landlock (`sandbox.landlock`), so that a bug in a
//! front-end or in the import pipeline cannot reach files outside the data directory.
//!
//! Landlock restricts the calling thread and the threads it creates later, never the threads that
//! exist already (before Linux 7.0). Hence [`enter`] runs on the main thread before the serving runtime
//! and its workers exist: every thread that serves clients or imports files is a descendant.
//!
//! Rules follow directories, not file names: a certificate renewed or a `resolv.conf` rewritten by
//! rename is a new inode, which a rule on the old file would not cover.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access as _, AccessFs, CompatLevel, Compatible as _, LandlockStatus, RestrictionStatus, Ruleset,
    RulesetAttr as _, RulesetCreatedAttr as _, RulesetStatus, path_beneath_rules,
};
use passerelle_config::Config;
use tracing::{info, warn};

use crate::error::{CliError, usage};

/// The newest ABI this build asks for; an older kernel enforces what it knows (best effort), and
/// the log line says which ABI is in force. Not newer on purpose: later ABIs add rights (such as
/// connecting to Unix sockets by path) that would cut the server off from the systemd notification
/// socket and a local PostgreSQL socket unless listed here first.
const ABI_WANTED: ABI = ABI::V7;

/// Read-only after start: name resolution (glibc reads `/etc`, follows `/etc/resolv.conf` into
/// systemd-resolved's directory, and may load NSS modules from the library directories), TLS roots,
/// time zones, user names (the audit actor), the CPU count and quota (the default of
/// `pipeline.workers`, on SIGHUP) and the process's own `/proc` entry. Secrets in `/etc` stay
/// protected by their owners and modes, as they are for the service user anyway. Paths that do
/// not exist on a machine are left out.
const SYSTEM_READ: &[&str] = &[
    "/etc",
    "/usr",
    "/lib",
    "/lib64",
    "/run/systemd/resolve",
    "/proc/self",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
    "/dev/null",
    "/dev/urandom",
];

/// Which directories the server keeps, and how.
#[derive(Debug)]
struct Policy {
    read_write: Vec<PathBuf>,
    read_only: Vec<PathBuf>,
}

impl Policy {
    /// The data directory and the directory of a SQLite catalog (its journal lives beside it) are
    /// writable; the configuration file's directory (SIGHUP re-reads it), those of the FTPS
    /// certificate and key (SIGHUP reloads them) and the master key file are readable, as written
    /// and as resolved.
    fn of(config: &Config, config_file: Option<&Path>) -> Self {
        let mut read_write = vec![config.data_dir.clone()];
        if let Some(catalog) = crate::state::sqlite_file(&config.catalog.url) {
            read_write.extend(parent(&catalog));
        }
        let mut read_only: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        // Backups: restic writes a local repository and reads the password file (its directory).
        if let Some(target) = &config.backup.target {
            read_write.extend(target.local_path());
            read_only.extend(parent(&target.password_file));
        }
        for file in config_file.into_iter().chain([config.ftps.cert.as_path(), config.ftps.key.as_path()]) {
            read_only.extend(parent(file));
            if let Ok(resolved) = std::fs::canonicalize(file) {
                read_only.extend(parent(&resolved));
            }
        }
        // The master key file itself, not its directory: beside the data directory by default, its
        // directory holds much else. It is replaced only by a rotation, which needs a restart.
        let master_key = &config.keys.master_key_file;
        read_only.push(master_key.clone());
        read_only.extend(std::fs::canonicalize(master_key));
        // A rule needs the path opened; those missing here are left out, and out of the log line.
        for paths in [&mut read_write, &mut read_only] {
            paths.retain(|path| path.exists());
            paths.sort();
            paths.dedup();
        }
        Self { read_write, read_only }
    }
}

/// Creates a local backup repository's directory (0700) when absent, so that the sandbox can allow
/// it before restic initialises it.
pub(crate) fn create_backup_repository(config: &Config) -> Result<(), CliError> {
    let Some(local) = config.backup.target.as_ref().and_then(passerelle_config::BackupTarget::local_path) else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&local)
        .map_err(|e| usage(format!("backup.repository {}: cannot create: {e}", local.display())))
}

/// The directory holding `file` (`.` for a bare name).
fn parent(file: &Path) -> Option<PathBuf> {
    match file.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Some(PathBuf::from(".")),
        other => other.map(Path::to_path_buf),
    }
}

/// Applies the Landlock ruleset of `config` to this thread and every thread it creates from now
/// on, and logs one line saying what is in force. A kernel without Landlock is logged, not refused;
/// a kernel that has it but refuses the ruleset stops the start.
pub(crate) fn enter(config: &Config, config_file: Option<&Path>) -> Result<(), CliError> {
    if !config.sandbox.landlock {
        warn!("sandbox: landlock off (sandbox.landlock = false); filesystem access is not restricted");
        return Ok(());
    }
    let policy = Policy::of(config, config_file);
    let status = restrict(&policy).map_err(|e| {
        usage(format!("sandbox: cannot apply the Landlock ruleset: {e} (set sandbox.landlock = false to run without)"))
    })?;
    let listed = |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",");
    match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, landlock) => warn!(
            kernel = describe(landlock),
            "sandbox: the kernel has no Landlock; filesystem access is not restricted"
        ),
        (ruleset, LandlockStatus::Available { effective_abi, .. }) => info!(
            abi = effective_abi as i32,
            enforced = if ruleset == RulesetStatus::FullyEnforced { "fully" } else { "partially" },
            read_write = %listed(&policy.read_write),
            read_only = %listed(&policy.read_only),
            "sandbox: landlock ruleset in force"
        ),
        (_, landlock) => warn!(kernel = describe(landlock), "sandbox: landlock status unclear"),
    }
    Ok(())
}

/// Why the kernel has no Landlock, in words.
fn describe(status: LandlockStatus) -> &'static str {
    match status {
        LandlockStatus::NotImplemented => "not built into this kernel",
        LandlockStatus::NotEnabled => "built in but not enabled (lsm= boot parameter)",
        LandlockStatus::Available { .. } => "available",
    }
}

fn restrict(policy: &Policy) -> Result<RestrictionStatus, landlock::RulesetError> {
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))?
        .create()?
        .add_rules(path_beneath_rules(&policy.read_write, AccessFs::from_all(ABI_WANTED)))?
        .add_rules(path_beneath_rules(&policy.read_only, AccessFs::from_read(ABI_WANTED)))?
        .restrict_self()
}

/// Debug builds only: `TEST_PASSERELLE_SANDBOX_PROBE=PATH[:PATH...]` makes the serving runtime try
/// to open each PATH from one of its worker threads and from a blocking thread, where a bug would
/// run, and log whether it could. The tests use it to show what Landlock refuses; release builds
/// have no such hook.
#[cfg(debug_assertions)]
pub(crate) async fn probe() {
    let Some(paths) = std::env::var_os("TEST_PASSERELLE_SANDBOX_PROBE") else {
        return;
    };
    fn open(path: &Path) -> String {
        match std::fs::File::open(path) {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("refused: {e}"),
        }
    }
    for path in std::env::split_paths(&paths) {
        let worker = open(&path);
        let in_blocking = path.clone();
        let blocking = tokio::task::spawn_blocking(move || open(&in_blocking)).await.unwrap_or_else(|e| e.to_string());
        info!(path = %path.display(), worker = %worker, blocking = %blocking, "sandbox probe");
    }
}
