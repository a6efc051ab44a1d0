//! The typed, fully resolved configuration handed to the rest of passerelle.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::redact::redact_url;
use crate::size::ByteSize;

/// The effective configuration: defaults, file, environment and flags merged, checked and resolved.
///
/// Every value here has passed validation; paths and URLs that default from `data_dir` are filled in.
/// Build one with [`Config::load`](crate::Config::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory holding every piece of state (catalog, tenant trees, keys, archives). Kept as given:
    /// a relative path is relative to the working directory.
    pub data_dir: PathBuf,
    /// The SFTP front-end.
    pub sftp: SftpConfig,
    /// The FTPS front-end (explicit and implicit TLS).
    pub ftps: FtpsConfig,
    /// The catalog database (tenants, users, keys, imports, audit).
    pub catalog: CatalogConfig,
    /// Where each tenant's own database lives.
    pub tenant_db: TenantDbConfig,
    /// The admin HTTP endpoint (health and metrics).
    pub admin: AdminConfig,
    /// Retention of encrypted archives of imported files.
    pub archive: ArchiveConfig,
    /// Retention of import receipts in the tenants' outboxes.
    pub receipts: ReceiptsConfig,
    /// How the import pipeline shares its work.
    pub pipeline: PipelineConfig,
    /// Retention of the audit trail and of finished import jobs.
    pub audit: AuditConfig,
    /// Logging.
    pub log: LogConfig,
    /// Limits that protect the front-ends from abuse.
    pub limits: LimitsConfig,
    /// How completed uploads are stored.
    pub uploads: UploadsConfig,
    /// Default per-tenant quotas.
    pub quotas: QuotasConfig,
    /// Scores and bans of source addresses.
    pub defender: DefenderConfig,
    /// Temporary locks of logins after failed logins.
    pub account_lock: AccountLockConfig,
    /// PROXY protocol on the listeners.
    pub proxy_protocol: ProxyProtocolConfig,
    /// How `serve` confines itself.
    pub sandbox: SandboxConfig,
    /// Backups into a restic repository, and their daily verification.
    pub backup: BackupConfig,
    /// Where the master key lives.
    pub keys: KeysConfig,
    /// This node among those sharing the catalog.
    pub node: crate::NodeConfig,
    /// How nodes sharing the catalog see each other.
    pub cluster: crate::ClusterConfig,
    /// How `serve` stops on SIGTERM.
    pub shutdown: crate::ShutdownConfig,
}

/// `[keys]`: the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysConfig {
    /// The master key file (resolved; defaults to `<data_dir>.master.key`, beside the data directory),
    /// never inside `data_dir`.
    pub master_key_file: PathBuf,
}

/// `[sftp]`: the SFTP front-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpConfig {
    /// Addresses to listen on; empty disables SFTP.
    pub listen: Vec<SocketAddr>,
    /// Also offer AES-CTR with encrypt-and-MAC HMAC-SHA2 for clients built on
    /// libssh2 older than 1.11 (curl on Debian 12); off by default.
    pub libssh2_compat: bool,
}

/// `[ftps]`: the FTPS front-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpsConfig {
    /// Addresses for explicit FTPS (`AUTH TLS` on a plain control connection); empty disables it.
    pub explicit_listen: Vec<SocketAddr>,
    /// Addresses for implicit FTPS (TLS from the first byte); empty disables it.
    pub implicit_listen: Vec<SocketAddr>,
    /// Ports offered for passive data connections, both ends included, all at least 1024.
    pub passive_ports: RangeInclusive<u16>,
    /// PEM certificate chain (resolved; defaults to `<data_dir>/tls/cert.pem`).
    pub cert: PathBuf,
    /// PEM private key (resolved; defaults to `<data_dir>/tls/key.pem`).
    pub key: PathBuf,
    /// Allowed TLS versions: never empty, no duplicates, only safe versions.
    pub tls_versions: Vec<TlsVersion>,
    /// Whether data connections must resume the TLS session of their control connection.
    pub require_session_reuse: bool,
    /// Whether TLS 1.2 clients must send the extended master secret extension (RFC 7627).
    pub require_extended_master_secret: bool,
    /// Passive data ports one user may hold at once over all its sessions, at least 1.
    pub max_passive_ports_per_user: u32,
    /// How long a passive data port waits for the transfer that uses it before it is closed; over zero.
    pub passive_idle_timeout: Duration,
}

/// A TLS protocol version that passerelle is willing to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2, written `"1.2"`.
    Tls12,
    /// TLS 1.3, written `"1.3"`.
    Tls13,
}

impl TlsVersion {
    /// The spelling used in the configuration file: `"1.2"` or `"1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS {}", self.as_str())
    }
}

/// `[catalog]`: the catalog database.
#[derive(Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// Database URL (resolved; defaults to `sqlite://<data_dir>/catalog.db`). May hold a password: print
    /// it only through [`CatalogConfig::redacted_url`].
    pub url: String,
}

impl CatalogConfig {
    /// Whether the catalog lives in PostgreSQL (`postgres:` or `postgresql:` URL) rather than SQLite.
    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.url)
    }

    /// The URL with any password replaced by `***`, safe to print.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogConfig").field("url", &self.redacted_url()).finish()
    }
}

/// `[tenant_db]`: where tenant databases live.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantDbConfig {
    /// The database engine holding tenant databases.
    pub backend: TenantDbBackend,
    /// PostgreSQL URL of an account allowed to create databases and roles. Present exactly when
    /// `backend` is [`TenantDbBackend::Postgres`]. Holds a password: print it only through
    /// [`TenantDbConfig::redacted_admin_url`].
    pub admin_url: Option<String>,
    /// Prefix of every per-tenant PostgreSQL database and role name (matches `^[a-z][a-z0-9_]{0,20}$`).
    pub name_prefix: String,
}

impl TenantDbConfig {
    /// `admin_url` with any password replaced by `***`, safe to print.
    pub fn redacted_admin_url(&self) -> Option<String> {
        self.admin_url.as_deref().map(redact_url)
    }
}

impl fmt::Debug for TenantDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDbConfig")
            .field("backend", &self.backend)
            .field("admin_url", &self.redacted_admin_url())
            .field("name_prefix", &self.name_prefix)
            .finish()
    }
}

/// The engine holding tenant databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantDbBackend {
    /// One SQLite file per tenant under the data directory (written `"sqlite"`).
    Sqlite,
    /// One PostgreSQL database and role per tenant (written `"postgres"`).
    Postgres,
}

impl TenantDbBackend {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// `[admin]`: the admin HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address serving `GET /healthz` and `GET /metrics`.
    pub listen: SocketAddr,
}

/// `[archive]`: archives of imported files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Days an archived file is kept, 1 to 3650.
    pub retention_days: u32,
}

/// `[receipts]`: import receipts in the tenants' `/outbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptsConfig {
    /// Days a receipt is kept after it was last written, 1 to 3650.
    pub retention_days: u32,
}

/// `[pipeline]`: the import pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Tenants whose jobs run at once, 1 to 64 (default: the number of CPU cores).
    pub workers: u32,
}

/// `[audit]`: retention of the audit trail and of finished import jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Days audit events and finished import jobs are kept, 1 to 36500.
    pub retention_days: u32,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` `EnvFilter` directive such as `info` or `passerelle=debug,info` (never empty).
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines (written `"text"`).
    Text,
    /// One JSON object per line (written `"json"`).
    Json,
}

impl LogFormat {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// `[limits]`: limits applied by the SFTP and FTPS front-ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Time a client has to authenticate after connecting (over zero, at most 10 minutes).
    pub login_grace_time: Duration,
    /// Failed authentication attempts allowed on one connection (1 to 20).
    pub max_auth_tries: u32,
    /// A session idle for this long is closed (over zero).
    pub idle_timeout: Duration,
    /// Concurrent sessions of one user (at least 1).
    pub max_sessions_per_user: u32,
    /// Concurrent connections from one source (an IPv4 address or an IPv6
    /// network of `defender.ipv6_prefix`), logged in or not (at least 1).
    pub max_connections_per_ip: u32,
    /// Concurrent connections over all front-ends (at least 1).
    pub max_connections: u32,
    /// Random early drop of connections not yet logged in.
    pub max_startups: MaxStartups,
    /// New connections one source may open per second, on average (at least 1).
    pub connection_rate: u32,
    /// New connections one source may open at once before `connection_rate` applies (at least 1).
    pub connection_burst: u32,
    /// Files and directories one session may hold open at once, over all its channels (at least 1).
    pub max_open_files_per_session: u32,
    /// Files and directories one user may hold open at once, over all its sessions on this node (at least 1).
    pub max_open_files_per_user: u32,
    /// Bytes of out-of-order upload data one session may hold back for the streaming digest.
    pub max_buffered_bytes_per_session: ByteSize,
    /// Password verifications run at once before login (1 to 1024; unset: the number of cores).
    pub max_concurrent_password_checks: u32,
}

/// OpenSSH's MaxStartups `start:rate:full`: with `n` connections not yet
/// logged in, a new one is dropped with probability 0 below `start`, `rate`
/// percent at `start`, rising linearly to 100 % at `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    /// Where random drops begin (at least 1).
    pub start: u32,
    /// Drop probability at `start`, percent (1 to 100).
    pub rate: u32,
    /// Where every new connection is dropped (at least `start`).
    pub full: u32,
}

/// `[defender]`: scores and bans of source addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefenderConfig {
    /// Whether addresses are scored and banned (stored bans are enforced regardless).
    pub enabled: bool,
    /// Score at which an address is banned (at least 1).
    pub threshold: u32,
    /// Score of a login for a user that does not exist; every failed login
    /// scores the higher of this and `score_wrong_password`.
    pub score_invalid_user: u32,
    /// Score of a failed login of an existing user; every failed login
    /// scores the higher of this and `score_invalid_user`.
    pub score_wrong_password: u32,
    /// Score of a connection or session refused by a limit.
    pub score_limit_exceeded: u32,
    /// Score of a connection turned away at connect by `limits.max_startups`
    /// or `limits.max_connections`.
    pub score_refused_connection: u32,
    /// Score of a protocol violation before login.
    pub score_protocol_abuse: u32,
    /// Scores older than this are forgotten (over zero).
    pub observation_time: Duration,
    /// Length of a first ban (over zero).
    pub ban_time: Duration,
    /// Percent by which each further ban of an address is longer than the previous one (0 to 1000).
    pub ban_time_increment: u32,
    /// Longest ban (at least `ban_time`).
    pub max_ban_time: Duration,
    /// Networks never scored nor banned (truncated to their prefix).
    pub safe_list: Vec<ipnet::IpNet>,
    /// Length of the prefix that makes one IPv6 source: scores, bans and
    /// per-source limits apply to the whole network (32 to 128).
    pub ipv6_prefix: u8,
    /// Sources a table (scores, bans in memory, connection rates) is cut
    /// back to when it reaches `entries_hard_limit` (at least 1).
    pub entries_soft_limit: u32,
    /// Sources a table may hold; reaching it drops the oldest entries down
    /// to `entries_soft_limit` (over `entries_soft_limit`).
    pub entries_hard_limit: u32,
}

/// `[account_lock]`: temporary locks after failed logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLockConfig {
    /// Failed logins within `observation_time` that lock a login; 0: never.
    pub max_failures: u32,
    /// Window in which failures are counted (over zero).
    pub observation_time: Duration,
    /// Length of a lock (over zero).
    pub lock_time: Duration,
}

/// `[proxy_protocol]`: PROXY protocol v1/v2 on the listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocolConfig {
    /// Proxies that may (and must) send a PROXY header; empty: PROXY protocol off.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[sandbox]`: how `serve` confines itself once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Restrict the server's own filesystem access with Landlock (where the kernel has it) to the data
    /// directory and the few files it must still read.
    pub landlock: bool,
}

/// `[backup]`: backups into a restic repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Where backups go; `None` (no `backup.repository`): backups are off.
    pub target: Option<BackupTarget>,
    /// How often `serve` takes a backup (over zero).
    pub interval: Duration,
    /// Days snapshots are kept (`restic forget --keep-within`), 1 to 3650.
    pub retention_days: u32,
    /// How often `serve` restores and verifies the latest snapshot (over zero).
    pub verify_interval: Duration,
}

/// A restic repository and the file holding its password: both set, or backups are off.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupTarget {
    /// The restic repository (a local path, `sftp:`, `s3:`, `rest:`, `rclone:`...). May hold credentials:
    /// print it only through [`BackupTarget::redacted_repository`].
    pub repository: String,
    /// The file holding the repository's password (absolute; 0600 and outside `data_dir`, checked where
    /// it is used).
    pub password_file: PathBuf,
}

impl BackupTarget {
    /// The repository with any password replaced by `***`, safe to print.
    pub fn redacted_repository(&self) -> String {
        redact_url(&self.repository)
    }

    /// The repository's directory when it is a local path (no `scheme:` prefix), else `None`.
    pub fn local_path(&self) -> Option<PathBuf> {
        let local = self.repository.strip_prefix("local:").unwrap_or(&self.repository);
        (local.starts_with('/') || scheme(local).is_none()).then(|| PathBuf::from(local))
    }
}

impl fmt::Debug for BackupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupTarget")
            .field("repository", &self.redacted_repository())
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `[uploads]`: how completed uploads are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsConfig {
    /// Flush an upload's data and directory entry to disk before the client
    /// is told it completed, so even a power loss cannot lose an
    /// acknowledged file (off by default, as in OpenSSH).
    pub fsync: bool,
    /// Largest file an upload may make (over zero); a write beyond it is refused.
    pub max_file_size: ByteSize,
    /// Free space kept on the filesystem of `data_dir` for the catalog and
    /// the import pipeline's job states: uploads are refused once free
    /// space would fall below it. Zero turns the reserve off.
    pub min_free_space: ByteSize,
}

/// `[quotas]`: what a tenant may store when the catalog holds no override for it
/// (`passerelle tenant quota`). `None`: unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotasConfig {
    /// Bytes a tenant may store (its tree, spool and archive).
    pub bytes: Option<ByteSize>,
    /// Regular files a tenant may store (at least 1).
    pub files: Option<u64>,
}

/// Whether `url` uses the `postgres:` or `postgresql:` scheme.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    matches!(scheme(url).as_deref(), Some("postgres" | "postgresql"))
}

/// The lower-cased scheme of `url` (the text before the first `:`), if it looks like one.
pub(crate) fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}
