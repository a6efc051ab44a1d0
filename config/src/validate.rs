//! Semantic checks: turns the raw, merely well-typed values into a [`Config`], refusing anything out of
//! range or unsafe with a message naming the key.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration;
use crate::error::ConfigError;
use crate::model::{
    AccountLockConfig, AdminConfig, ArchiveConfig, AuditConfig, BackupConfig, BackupTarget, CatalogConfig, Config,
    DefenderConfig, FtpsConfig, KeysConfig, LimitsConfig, LogConfig, LogFormat, MaxStartups, PipelineConfig,
    ProxyProtocolConfig, QuotasConfig, ReceiptsConfig, SandboxConfig, SftpConfig, TenantDbBackend, TenantDbConfig,
    TlsVersion, UploadsConfig, is_postgres_url, scheme,
};
use crate::raw::{
    Raw, RawAccountLock, RawArchive, RawAudit, RawBackup, RawCatalog, RawDefender, RawFtps, RawKeys, RawLimits, RawLog,
    RawPipeline, RawProxyProtocol, RawQuotas, RawTenantDb, RawUploads,
};
use crate::schema::{self, Default};
use crate::size::ByteSize;

/// Checks every key and resolves the defaults that depend on `data_dir`.
///
/// Sections are checked one after the other and the first refusal is returned, so the order below decides
/// which mistake a configuration with several is told about; that is part of the interface and is kept:
/// `limits.login_grace_time` comes before `[defender]`, the other limits after `[archive]`.
pub(crate) fn validate(raw: Raw) -> Result<Config, ConfigError> {
    let data_dir = data_dir(raw.data_dir)?;
    let catalog = catalog(raw.catalog, &data_dir)?;
    let tenant_db = tenant_db(raw.tenant_db)?;
    let log = log(raw.log)?;
    let login_grace_time = login_grace_time(&raw.limits)?;
    let defender = defender(raw.defender)?;
    let account_lock = account_lock(raw.account_lock)?;
    let proxy_protocol = proxy_protocol(raw.proxy_protocol)?;
    let ftps = ftps(raw.ftps, &data_dir)?;
    let archive = archive(raw.archive)?;
    let receipts =
        ReceiptsConfig { retention_days: in_range("receipts.retention_days", raw.receipts.retention_days, 1..=3650)? };
    let pipeline = pipeline(raw.pipeline)?;
    let audit = audit(raw.audit)?;
    let limits = limits(raw.limits, login_grace_time)?;
    let quotas = quotas(raw.quotas)?;
    let uploads = uploads(raw.uploads)?;
    let backup = backup(raw.backup)?;
    let keys = keys(raw.keys, &data_dir)?;
    let (node, cluster, shutdown) = (
        crate::cluster::node(raw.node)?,
        crate::cluster::cluster(raw.cluster)?,
        crate::cluster::shutdown(raw.shutdown)?,
    );
    Ok(Config {
        sftp: SftpConfig { listen: raw.sftp.listen, libssh2_compat: raw.sftp.libssh2_compat },
        ftps,
        catalog,
        tenant_db,
        admin: AdminConfig { listen: raw.admin.listen },
        archive,
        receipts,
        pipeline,
        audit,
        log,
        limits,
        uploads,
        quotas,
        defender,
        account_lock,
        proxy_protocol,
        sandbox: SandboxConfig { landlock: raw.sandbox.landlock },
        backup,
        keys,
        node,
        cluster,
        shutdown,
        data_dir,
    })
}

fn data_dir(data_dir: PathBuf) -> Result<PathBuf, ConfigError> {
    if data_dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid("data_dir", "must not be empty"));
    }
    Ok(data_dir)
}

/// `[catalog]`: `url` defaults to a SQLite file under `data_dir`.
fn catalog(catalog: RawCatalog, data_dir: &Path) -> Result<CatalogConfig, ConfigError> {
    let url = match catalog.url {
        Some(url) => url,
        None => schema::expand(template("catalog", "url"), &data_dir.to_string_lossy()),
    };
    match scheme(&url).as_deref() {
        Some("sqlite" | "postgres" | "postgresql") => Ok(CatalogConfig { url }),
        _ => Err(ConfigError::invalid(
            "catalog.url",
            format!(
                "must start with sqlite://, postgres:// or postgresql:// (got \"{}\")",
                crate::redact::redact_url(&url)
            ),
        )),
    }
}

/// `[tenant_db]`: `admin_url` is required by PostgreSQL and refused with SQLite.
fn tenant_db(tenant_db: RawTenantDb) -> Result<TenantDbConfig, ConfigError> {
    let backend = match tenant_db.backend.as_str() {
        "sqlite" => TenantDbBackend::Sqlite,
        "postgres" => TenantDbBackend::Postgres,
        other => {
            return Err(ConfigError::invalid(
                "tenant_db.backend",
                format!("must be \"sqlite\" or \"postgres\" (got \"{other}\")"),
            ));
        }
    };
    match (backend, &tenant_db.admin_url) {
        (TenantDbBackend::Postgres, None) => {
            return Err(ConfigError::invalid("tenant_db.admin_url", "required when tenant_db.backend = \"postgres\""));
        }
        (TenantDbBackend::Sqlite, Some(_)) => {
            return Err(ConfigError::invalid(
                "tenant_db.admin_url",
                "only used when tenant_db.backend = \"postgres\"; remove it or set the backend",
            ));
        }
        (TenantDbBackend::Postgres, Some(url)) if !is_postgres_url(url) => {
            return Err(ConfigError::invalid("tenant_db.admin_url", "must be a postgres:// or postgresql:// URL"));
        }
        _ => {}
    }
    check_name_prefix(&tenant_db.name_prefix)?;
    Ok(TenantDbConfig { backend, admin_url: tenant_db.admin_url, name_prefix: tenant_db.name_prefix })
}

/// `[log]`.
fn log(log: RawLog) -> Result<LogConfig, ConfigError> {
    let level = log.level.trim().to_owned();
    if level.is_empty() {
        return Err(ConfigError::invalid("log.level", "must not be empty (e.g. \"info\")"));
    }
    let format = match log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::invalid("log.format", format!("must be \"text\" or \"json\" (got \"{other}\")")));
        }
    };
    Ok(LogConfig { format, level })
}

/// `limits.login_grace_time`: at most ten minutes, so that a silent client cannot hold a connection long.
fn login_grace_time(limits: &RawLimits) -> Result<Duration, ConfigError> {
    let login_grace_time = parse_duration("limits.login_grace_time", &limits.login_grace_time)?;
    if login_grace_time > Duration::from_secs(600) {
        return Err(ConfigError::invalid(
            "limits.login_grace_time",
            format!("must be at most 10m (got \"{}\")", limits.login_grace_time),
        ));
    }
    Ok(login_grace_time)
}

/// `[limits]` but `login_grace_time`, which [`login_grace_time`] has checked.
fn limits(limits: RawLimits, login_grace_time: Duration) -> Result<LimitsConfig, ConfigError> {
    Ok(LimitsConfig {
        login_grace_time,
        max_auth_tries: in_range("limits.max_auth_tries", limits.max_auth_tries, 1..=20)?,
        idle_timeout: parse_duration("limits.idle_timeout", &limits.idle_timeout)?,
        max_sessions_per_user: at_least_one("limits.max_sessions_per_user", limits.max_sessions_per_user)?,
        max_connections_per_ip: at_least_one("limits.max_connections_per_ip", limits.max_connections_per_ip)?,
        max_connections: at_least_one("limits.max_connections", limits.max_connections)?,
        max_startups: parse_max_startups(&limits.max_startups)?,
        connection_rate: in_range("limits.connection_rate", limits.connection_rate, 1..=100_000)?,
        connection_burst: in_range("limits.connection_burst", limits.connection_burst, 1..=100_000)?,
        max_open_files_per_session: at_least_one(
            "limits.max_open_files_per_session",
            limits.max_open_files_per_session,
        )?,
        max_open_files_per_user: at_least_one("limits.max_open_files_per_user", limits.max_open_files_per_user)?,
        max_buffered_bytes_per_session: parse_size(
            "limits.max_buffered_bytes_per_session",
            &limits.max_buffered_bytes_per_session,
        )?,
        max_concurrent_password_checks: match limits.max_concurrent_password_checks {
            Some(bound) => in_range("limits.max_concurrent_password_checks", bound, 1..=1024)?,
            None => {
                std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1024).min(1024))
            }
        },
    })
}

/// `[uploads]`: `max_file_size` is over zero (an upload always has a bound) and a valid file offset.
fn uploads(uploads: RawUploads) -> Result<UploadsConfig, ConfigError> {
    let max_file_size = parse_size("uploads.max_file_size", &uploads.max_file_size)?;
    if max_file_size.bytes() == 0 || i64::try_from(max_file_size.bytes()).is_err() {
        return Err(ConfigError::invalid(
            "uploads.max_file_size",
            format!("must be over zero and below 8 EiB (got \"{}\")", uploads.max_file_size),
        ));
    }
    let min_free_space = parse_size("uploads.min_free_space", &uploads.min_free_space)?;
    Ok(UploadsConfig { fsync: uploads.fsync, max_file_size, min_free_space })
}

/// `[defender]`: `max_ban_time` is at least `ban_time`, `entries_hard_limit`
/// over `entries_soft_limit`.
fn defender(defender: RawDefender) -> Result<DefenderConfig, ConfigError> {
    let entries_soft_limit = at_least_one("defender.entries_soft_limit", defender.entries_soft_limit)?;
    if defender.entries_hard_limit <= entries_soft_limit {
        return Err(ConfigError::invalid(
            "defender.entries_hard_limit",
            format!(
                "must be more than defender.entries_soft_limit (got {} <= {entries_soft_limit})",
                defender.entries_hard_limit
            ),
        ));
    }
    let ban_time = parse_duration("defender.ban_time", &defender.ban_time)?;
    let max_ban_time = parse_duration("defender.max_ban_time", &defender.max_ban_time)?;
    if max_ban_time < ban_time {
        return Err(ConfigError::invalid(
            "defender.max_ban_time",
            format!(
                "must be at least defender.ban_time (got \"{}\" < \"{}\")",
                defender.max_ban_time, defender.ban_time
            ),
        ));
    }
    Ok(DefenderConfig {
        enabled: defender.enabled,
        threshold: at_least_one("defender.threshold", defender.threshold)?,
        score_invalid_user: in_range("defender.score_invalid_user", defender.score_invalid_user, 0..=1000)?,
        score_wrong_password: in_range("defender.score_wrong_password", defender.score_wrong_password, 0..=1000)?,
        score_limit_exceeded: in_range("defender.score_limit_exceeded", defender.score_limit_exceeded, 0..=1000)?,
        score_refused_connection: in_range(
            "defender.score_refused_connection",
            defender.score_refused_connection,
            0..=1000,
        )?,
        score_protocol_abuse: in_range("defender.score_protocol_abuse", defender.score_protocol_abuse, 0..=1000)?,
        observation_time: parse_duration("defender.observation_time", &defender.observation_time)?,
        ban_time,
        ban_time_increment: in_range("defender.ban_time_increment", defender.ban_time_increment, 0..=1000)?,
        max_ban_time,
        safe_list: parse_networks("defender.safe_list", &defender.safe_list)?,
        ipv6_prefix: u8::try_from(in_range("defender.ipv6_prefix", defender.ipv6_prefix, 32..=128)?).unwrap_or(128),
        entries_soft_limit,
        entries_hard_limit: defender.entries_hard_limit,
    })
}

/// `[account_lock]`.
fn account_lock(account_lock: RawAccountLock) -> Result<AccountLockConfig, ConfigError> {
    Ok(AccountLockConfig {
        max_failures: account_lock.max_failures,
        observation_time: parse_duration("account_lock.observation_time", &account_lock.observation_time)?,
        lock_time: parse_duration("account_lock.lock_time", &account_lock.lock_time)?,
    })
}

/// `[proxy_protocol]`.
fn proxy_protocol(proxy_protocol: RawProxyProtocol) -> Result<ProxyProtocolConfig, ConfigError> {
    Ok(ProxyProtocolConfig {
        trusted_proxies: parse_networks("proxy_protocol.trusted_proxies", &proxy_protocol.trusted_proxies)?,
    })
}

/// `[ftps]`: `cert` and `key` default to files under `data_dir`.
fn ftps(ftps: RawFtps, data_dir: &Path) -> Result<FtpsConfig, ConfigError> {
    Ok(FtpsConfig {
        explicit_listen: ftps.explicit_listen,
        implicit_listen: ftps.implicit_listen,
        passive_ports: parse_port_range(&ftps.passive_ports)?,
        cert: ftps.cert.unwrap_or_else(|| path_default("ftps", "cert", data_dir)),
        key: ftps.key.unwrap_or_else(|| path_default("ftps", "key", data_dir)),
        tls_versions: parse_tls_versions(&ftps.tls_versions)?,
        require_session_reuse: ftps.require_session_reuse,
        require_extended_master_secret: ftps.require_extended_master_secret,
        max_passive_ports_per_user: at_least_one("ftps.max_passive_ports_per_user", ftps.max_passive_ports_per_user)?,
        passive_idle_timeout: parse_duration("ftps.passive_idle_timeout", &ftps.passive_idle_timeout)?,
    })
}

/// `[keys]`: `master_key_file` defaults to `<data_dir>.master.key`, beside the data directory, and is
/// refused inside it: the master key must not travel with copies (backups) of the data it protects.
fn keys(keys: RawKeys, data_dir: &Path) -> Result<KeysConfig, ConfigError> {
    const KEY: &str = "keys.master_key_file";
    let master_key_file = match keys.master_key_file {
        Some(path) if path.as_os_str().is_empty() => return Err(ConfigError::invalid(KEY, "must not be empty")),
        Some(path) => path,
        None => beside(data_dir).ok_or_else(|| {
            ConfigError::invalid(
                KEY,
                format!("must be set: data_dir {} has no name to put the master key beside", data_dir.display()),
            )
        })?,
    };
    if lexically_absolute(&master_key_file).starts_with(lexically_absolute(data_dir)) {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "{} is inside data_dir {}; keep the master key outside it, so that copies of the data never \
                 carry their key",
                master_key_file.display(),
                data_dir.display()
            ),
        ));
    }
    Ok(KeysConfig { master_key_file })
}

/// `<data_dir>.master.key`, beside `data_dir` (trailing slashes and `.` components ignored); `None`
/// when `data_dir` has no last name (`/`, `..`).
fn beside(data_dir: &Path) -> Option<PathBuf> {
    let name = data_dir.file_name()?;
    let mut file = name.to_os_string();
    file.push(".master.key");
    Some(data_dir.with_file_name(file))
}

/// `path` made absolute against the working directory, with `.` and `..` resolved by name only (no
/// symlinks followed: the files need not exist yet).
fn lexically_absolute(path: &Path) -> PathBuf {
    let joined =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `[quotas]`: both optional; a size of at least one byte, at least one file.
fn quotas(quotas: RawQuotas) -> Result<QuotasConfig, ConfigError> {
    let bytes = quotas.bytes.map(|text| parse_size("quotas.bytes", &text)).transpose()?;
    if bytes.is_some_and(|size| size.bytes() == 0) {
        return Err(ConfigError::invalid("quotas.bytes", "must be at least 1 byte (leave it unset for no limit)"));
    }
    if quotas.files == Some(0) {
        return Err(ConfigError::invalid("quotas.files", "must be at least 1 (leave it unset for no limit)"));
    }
    Ok(QuotasConfig { bytes, files: quotas.files })
}

/// `[archive]`.
fn archive(archive: RawArchive) -> Result<ArchiveConfig, ConfigError> {
    Ok(ArchiveConfig { retention_days: in_range("archive.retention_days", archive.retention_days, 1..=3650)? })
}

/// `[pipeline]`: `workers` defaults to the number of CPU cores, within its bounds.
fn pipeline(pipeline: RawPipeline) -> Result<PipelineConfig, ConfigError> {
    const WORKERS: RangeInclusive<u32> = 1..=64;
    let workers = match pipeline.workers {
        Some(workers) => in_range("pipeline.workers", workers, WORKERS)?,
        None => std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(*WORKERS.end()).clamp(*WORKERS.start(), *WORKERS.end())),
    };
    Ok(PipelineConfig { workers })
}

/// `[backup]`: a repository needs an absolute password file, and a password file a repository.
fn backup(backup: RawBackup) -> Result<BackupConfig, ConfigError> {
    let target = match (backup.repository, backup.password_file) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::invalid("backup.password_file", "required when backup.repository is set"));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "backup.password_file",
                "only used with backup.repository; set the repository or remove the password file",
            ));
        }
        (Some(repository), Some(password_file)) => {
            if repository.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "backup.repository",
                    "must not be empty (leave it unset: no backups)",
                ));
            }
            if !password_file.is_absolute() {
                return Err(ConfigError::invalid(
                    "backup.password_file",
                    format!("must be an absolute path (got \"{}\")", password_file.display()),
                ));
            }
            Some(BackupTarget { repository, password_file })
        }
    };
    Ok(BackupConfig {
        target,
        interval: parse_duration("backup.interval", &backup.interval)?,
        retention_days: in_range("backup.retention_days", backup.retention_days, 1..=3650)?,
        verify_interval: parse_duration("backup.verify_interval", &backup.verify_interval)?,
    })
}

fn audit(audit: RawAudit) -> Result<AuditConfig, ConfigError> {
    Ok(AuditConfig { retention_days: in_range("audit.retention_days", audit.retention_days, 1..=36500)? })
}

/// The `<data_dir>` template of a key whose default depends on `data_dir`.
fn template(section: &str, name: &str) -> &'static str {
    match schema::find(section, name).map(|k| k.default) {
        Some(Default::FromDataDir { template }) => template,
        _ => unreachable!("{section}.{name} defaults from data_dir"),
    }
}

fn path_default(section: &str, name: &str, data_dir: &Path) -> PathBuf {
    schema::expand_path(template(section, name), data_dir)
}

fn in_range(key: &str, value: u32, range: RangeInclusive<u32>) -> Result<u32, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(key, format!("must be between {} and {} (got {value})", range.start(), range.end())))
    }
}

fn at_least_one(key: &str, value: u32) -> Result<u32, ConfigError> {
    if value >= 1 { Ok(value) } else { Err(ConfigError::invalid(key, "must be at least 1 (got 0)")) }
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let value = duration::parse(text).map_err(|message| ConfigError::invalid(key, message))?;
    if value.is_zero() {
        return Err(ConfigError::invalid(key, format!("must be more than zero (got \"{text}\")")));
    }
    Ok(value)
}

/// CIDR networks; a bare address is a network of one. Host bits are cleared.
/// A byte size, refused with a message naming `key`.
fn parse_size(key: &str, text: &str) -> Result<ByteSize, ConfigError> {
    ByteSize::parse(text).map_err(|message| ConfigError::invalid(key, message))
}

fn parse_networks(key: &str, items: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ConfigError::invalid(
                        key,
                        format!("expected a network such as \"203.0.113.0/24\" or \"2001:db8::/32\" (got \"{item}\")"),
                    )
                })
        })
        .collect()
}

/// `"start:rate:full"` or a single number `N` (`N:100:N`).
fn parse_max_startups(text: &str) -> Result<MaxStartups, ConfigError> {
    const KEY: &str = "limits.max_startups";
    let bad = |why: &str| ConfigError::invalid(KEY, format!("{why} (got \"{text}\")"));
    let numbers: Vec<u32> = text
        .split(':')
        .map(|part| part.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("expected \"start:rate:full\" such as \"10:30:100\", or one number"))?;
    let startups = match numbers[..] {
        [n] => MaxStartups { start: n, rate: 100, full: n },
        [start, rate, full] => MaxStartups { start, rate, full },
        _ => return Err(bad("expected \"start:rate:full\" such as \"10:30:100\", or one number")),
    };
    if startups.start == 0 {
        return Err(bad("start must be at least 1"));
    }
    if !(1..=100).contains(&startups.rate) {
        return Err(bad("rate is a percentage, 1 to 100"));
    }
    if startups.full < startups.start || startups.full > 1_000_000 {
        return Err(bad("full must be at least start and at most 1000000"));
    }
    Ok(startups)
}

fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, ConfigError> {
    const KEY: &str = "ftps.passive_ports";
    let bad = || ConfigError::invalid(KEY, format!("expected \"START-END\" such as \"50000-50100\" (got \"{text}\")"));
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u16 = start.trim().parse().map_err(|_| bad())?;
    let end: u16 = end.trim().parse().map_err(|_| bad())?;
    if start < 1024 {
        return Err(ConfigError::invalid(KEY, format!("ports below 1024 are refused (got \"{text}\")")));
    }
    if start > end {
        return Err(ConfigError::invalid(KEY, format!("start must not exceed end (got \"{text}\")")));
    }
    Ok(start..=end)
}

fn parse_tls_versions(items: &[String]) -> Result<Vec<TlsVersion>, ConfigError> {
    const KEY: &str = "ftps.tls_versions";
    const ADVICE: &str = "use \"1.2\" (and optionally \"1.3\")";
    if items.is_empty() {
        return Err(ConfigError::invalid(KEY, format!("must not be empty; {ADVICE}")));
    }
    let mut versions = Vec::new();
    for item in items {
        let normalized = item.trim().to_ascii_lowercase().replace(['v', ' ', '_'], "");
        let normalized = normalized.strip_prefix("tls").unwrap_or(&normalized);
        let version = match normalized {
            "1.2" => TlsVersion::Tls12,
            "1.3" => TlsVersion::Tls13,
            "1.0" | "1" | "1.1" => {
                let name = if normalized == "1.1" { "TLS 1.1" } else { "TLS 1.0" };
                return Err(ConfigError::invalid(KEY, format!("{name} is unsafe and refused; {ADVICE}")));
            }
            "ssl2" | "ssl3" | "ssl2.0" | "ssl3.0" => {
                return Err(ConfigError::invalid(KEY, format!("{} is unsafe and refused; {ADVICE}", item.trim())));
            }
            _ => {
                return Err(ConfigError::invalid(
                    KEY,
                    format!("unknown TLS version \"{item}\"; allowed: \"1.2\", \"1.3\""),
                ));
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

fn check_name_prefix(prefix: &str) -> Result<(), ConfigError> {
    let mut chars = prefix.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && prefix.len() <= 21
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "tenant_db.name_prefix",
            format!(
                "must start with a lower-case letter, then up to 20 lower-case letters, digits or '_' (got \"{prefix}\")"
            ),
        ))
    }
}
