//! The shape of the merged TOML, as serde reads it before semantic checks. Every key has a value by the
//! time this is read (defaults are merged in first), except those whose default depends on `data_dir`
//! or that are optional.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    pub(crate) data_dir: PathBuf,
    pub(crate) sftp: RawSftp,
    pub(crate) ftps: RawFtps,
    pub(crate) catalog: RawCatalog,
    pub(crate) tenant_db: RawTenantDb,
    pub(crate) admin: RawAdmin,
    pub(crate) archive: RawArchive,
    pub(crate) receipts: RawReceipts,
    pub(crate) pipeline: RawPipeline,
    pub(crate) audit: RawAudit,
    pub(crate) log: RawLog,
    pub(crate) limits: RawLimits,
    pub(crate) uploads: RawUploads,
    pub(crate) quotas: RawQuotas,
    pub(crate) defender: RawDefender,
    pub(crate) account_lock: RawAccountLock,
    pub(crate) proxy_protocol: RawProxyProtocol,
    pub(crate) sandbox: RawSandbox,
    pub(crate) backup: RawBackup,
    pub(crate) keys: RawKeys,
    pub(crate) node: crate::cluster::RawNode,
    pub(crate) cluster: crate::cluster::RawCluster,
    pub(crate) shutdown: crate::cluster::RawShutdown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackup {
    pub(crate) repository: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) interval: String,
    pub(crate) retention_days: u32,
    pub(crate) verify_interval: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeys {
    pub(crate) master_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    pub(crate) landlock: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefender {
    pub(crate) enabled: bool,
    pub(crate) threshold: u32,
    pub(crate) score_invalid_user: u32,
    pub(crate) score_wrong_password: u32,
    pub(crate) score_limit_exceeded: u32,
    pub(crate) score_refused_connection: u32,
    pub(crate) score_protocol_abuse: u32,
    pub(crate) observation_time: String,
    pub(crate) ban_time: String,
    pub(crate) ban_time_increment: u32,
    pub(crate) max_ban_time: String,
    pub(crate) safe_list: Vec<String>,
    pub(crate) ipv6_prefix: u32,
    pub(crate) entries_soft_limit: u32,
    pub(crate) entries_hard_limit: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccountLock {
    pub(crate) max_failures: u32,
    pub(crate) observation_time: String,
    pub(crate) lock_time: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxyProtocol {
    pub(crate) trusted_proxies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUploads {
    pub(crate) fsync: bool,
    pub(crate) max_file_size: String,
    pub(crate) min_free_space: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuotas {
    pub(crate) bytes: Option<String>,
    pub(crate) files: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSftp {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) libssh2_compat: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFtps {
    pub(crate) explicit_listen: Vec<SocketAddr>,
    pub(crate) implicit_listen: Vec<SocketAddr>,
    pub(crate) passive_ports: String,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) tls_versions: Vec<String>,
    pub(crate) require_session_reuse: bool,
    pub(crate) require_extended_master_secret: bool,
    pub(crate) max_passive_ports_per_user: u32,
    pub(crate) passive_idle_timeout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatalog {
    pub(crate) url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenantDb {
    pub(crate) backend: String,
    pub(crate) admin_url: Option<String>,
    pub(crate) name_prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArchive {
    pub(crate) retention_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReceipts {
    pub(crate) retention_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub(crate) workers: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) retention_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: String,
    pub(crate) level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) login_grace_time: String,
    pub(crate) max_auth_tries: u32,
    pub(crate) idle_timeout: String,
    pub(crate) max_sessions_per_user: u32,
    pub(crate) max_connections_per_ip: u32,
    pub(crate) max_connections: u32,
    pub(crate) max_startups: String,
    pub(crate) connection_rate: u32,
    pub(crate) connection_burst: u32,
    pub(crate) max_open_files_per_session: u32,
    pub(crate) max_open_files_per_user: u32,
    pub(crate) max_buffered_bytes_per_session: String,
    pub(crate) max_concurrent_password_checks: Option<u32>,
}
