//! The passerelle catalog: the one place that knows tenants, users, SSH
//! public keys, password hashes, locks, bans, import jobs and the audit trail,
//! and the change marker through which admin changes reach live sessions.
//!
//! ```text
//!  admin CLI ──┐                        ┌── SQLite  <data_dir>/catalog.db (WAL)
//!  server ─────┼──► Catalog (sqlx Any) ─┤
//!  pipeline ───┘                        └── PostgreSQL (catalog.url = postgres://…)
//! ```
//!
//! One set of queries serves both engines: parameters are always bound
//! (`$1`, `$2`…), times are Unix milliseconds, booleans are integers. Schema
//! changes are embedded migrations, one directory per dialect, applied by
//! [`Catalog::open`].
//!
//! Names that reach paths or SQL identifiers are [`TenantName`] and [`Login`],
//! which only strict validation can build.
//!
//! Non-features: no SQL text is ever assembled from input; password hashes
//! and tenant database credentials never leave through list/show types.

mod access;
mod audit;
mod audit_chain;
mod audit_check;
mod audit_mac;
mod bans;
mod duties;
mod error;
mod jobs;
mod keys;
mod leases;
mod lockout;
mod names;
mod nodes;
mod retention;
mod store;
mod tenants;
mod timestamp;
mod users;

pub use access::Access;
pub use audit::{AuditEvent, AuditFilter};
pub use audit_chain::{ChainPosition, ChainSummary, ChainVerdict};
pub use audit_check::ChainBreak;
pub use audit_mac::AuditKey;
pub use bans::Ban;
pub use error::{CatalogError, NameError};
pub use jobs::{ImportJob, JobFilter, JobProgress, JobStatus};
pub use keys::StoredDataKey;
pub use lockout::{FailureCount, LockPolicy};
pub use names::{Login, TenantName};
pub use nodes::{Heartbeat, Node, NodeState};
pub use store::{Backend, Catalog, now_ms};
pub use tenants::{Tenant, TenantDatabase, TenantQuota};
pub use timestamp::rfc3339_ms;
pub use users::{LockState, StoredKey, User};
