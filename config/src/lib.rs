//! # passerelle-config
//!
//! Typed configuration for passerelle. Every key is defined once, with its type, default and
//! documentation; the loader, the environment overrides, the example file
//! (`config/passerelle.example.toml`), the markdown reference (`config/REFERENCE.md`) and
//! `config show` are all generated from that one definition, and tests keep the committed files in
//! sync.
//!
//! ## Design
//!
//! ```text
//!  embedded defaults ─┐
//!  TOML file ─────────┤  merged into one TOML table,    serde, naming      semantic checks,
//!  PASSERELLE_* env ──┼─ later sources replacing  ───▶  the key on a  ───▶  defaults from   ───▶ Config
//!  --data-dir flag ───┘  earlier ones, key by key       type error          data_dir resolved
//! ```
//!
//! - Precedence, highest first: the `--data-dir` flag ([`Sources::data_dir`]), the environment
//!   (`PASSERELLE_<SECTION>_<KEY>`, `PASSERELLE_DATA_DIR`), the file, the defaults.
//! - A [`Config`] is fully resolved and checked: `ftps.cert`, `ftps.key` and `catalog.url` are filled in
//!   from `data_dir` when unset; ranges, ports, durations and TLS versions are typed.
//! - Every refusal is a [`ConfigError`] whose message is one line naming the key (or the file, line or
//!   variable), e.g. `config: archive.retention_days: must be between 1 and 3650 (got 0)`.
//! - Passwords inside database URLs never leave through [`Config::to_redacted_toml`] or `Debug`.
//!
//! ## Non-features
//!
//! - No silent acceptance: an unknown key, an unknown `PASSERELLE_` variable or a mistyped value is an
//!   error, never ignored.
//! - No unsafe TLS: SSL 3, TLS 1.0 and TLS 1.1 cannot be configured.
//! - No reloading: a [`Config`] never changes; `serve` may load a new one on SIGHUP and compare.
//! - No locating of the file: the caller resolves `--config` / `PASSERELLE_CONFIG` and passes the path.
//! - No canonicalisation: a relative `data_dir` stays relative to the working directory.

mod cluster;
mod duration;
mod env;
mod error;
mod load;
mod model;
mod raw;
mod redact;
mod render;
mod schema;
mod size;
mod validate;

pub use crate::cluster::{ClusterConfig, NodeConfig, ShutdownConfig};
pub use crate::error::ConfigError;
pub use crate::load::Sources;
pub use crate::model::{
    AccountLockConfig, AdminConfig, ArchiveConfig, AuditConfig, BackupConfig, BackupTarget, CatalogConfig, Config,
    DefenderConfig, FtpsConfig, LimitsConfig, LogConfig, LogFormat, MaxStartups, PipelineConfig, ProxyProtocolConfig,
    QuotasConfig, ReceiptsConfig, SandboxConfig, SftpConfig, TenantDbBackend, TenantDbConfig, TlsVersion,
    UploadsConfig,
};
pub use crate::render::{example_toml, reference_markdown};
pub use crate::size::ByteSize;
