//! The passerelle import pipeline: every completed upload is checked and
//! loaded into **its tenant's own database**, with that tenant's own account.
//!
//! ```text
//!  upload completed ──► job (catalog) ──► validate ──► load (one transaction)
//!                                                         │
//!                                  tenant database ◄──────┘  (own DB, own role)
//! ```
//!
//! What is here:
//!
//! - **Runner**: [`Pipeline::start`] turns every completed file of a tenant's
//!   `/inbox` into a job in the catalog and drives the job to its verdict:
//!   validation, load, a receipt in the tenant's `/outbox`, the original
//!   archived. An upload the server completed is taken at once by the
//!   [`Intake`] (linked into the spool, its name left in the inbox until its
//!   job ends); files seen by an inbox watcher, found by a scan or
//!   announced through an [`Announcer`] after a quiet period (moved out of
//!   the inbox). Receipts past their [`Retention`] are deleted. Every step is recorded first, so a job resumes after a crash;
//!   a job whose database is unreachable (or that failed for any reason
//!   that may pass) waits and is tried again, never at once; [`cancel`]
//!   ends a waiting job for an administrator. Files waiting to be taken
//!   queue per tenant, taken round robin. [`Layout`]
//!   says where inboxes, spool and archive are. The tenant tree and the
//!   receipt format are a client interface, documented in the README
//!   ("Layout", and "Receipt" under "Import pipeline").
//! - **Verdict at the door**: [`DoorProfiles`] tells the server, when an upload
//!   to an inbox starts, whether it is validated as it streams in (the same
//!   validation, pushed: [`Validator`]) or refused whatever it holds (no
//!   profile matches); [`refuse_at_door`] records an upload refused at its
//!   close as an ended job (catalog, audit, receipt, archive) and gives the
//!   client's sentence.
//! - **Tenant databases**: [`TenantDbProvisioner`] creates and destroys one
//!   database and one account per tenant, on SQLite (default) or PostgreSQL.
//! - **Profiles**: [`Profiles::parse`] reads a tenant's profile file (TOML,
//!   `[[import]]` tables, every key documented in the README, section
//!   "Import profiles") and refuses any mistake with one line naming the
//!   profile and the key; [`Profiles::matching`] picks the profile of an
//!   `/inbox` path (first match wins; [`is_temporary_name`]s never match).
//! - **Validation**: [`validate`] reads a file once, streaming (or
//!   [`Validator`] is pushed its bytes as they arrive), and checks in
//!   this order: size (`max_bytes`), binary content, encoding (UTF-8 with or
//!   without BOM, or Windows-1252 converted to UTF-8), delimiter detection,
//!   CSV structure, header against the declared columns, then every value
//!   against its column type, and duplicate keys. Valid rows go to a
//!   [`RowSink`] as typed [`Value`]s; every problem becomes an
//!   [`ImportError`] (line, column, message) in the [`ValidationReport`],
//!   ready for the receipt. A file with any error is rejected whole.
//! - **Load**: [`load`] validates a file and writes its rows into the
//!   profile's table in the tenant's own database, with the tenant's own
//!   account, in one transaction committed only when the file is accepted
//!   (PostgreSQL through `COPY`, SQLite through prepared `INSERT`s); the
//!   table is created from the profile when absent, with `_import_id` and
//!   `_line` columns; modes append, upsert by key, replace. An unreachable
//!   database is [`LoadError::Unavailable`]: wait and retry.
//! - **Anonymized copies**: [`copy_anonymized`] copies the tables of a
//!   tenant's profiles into a test zone's database or a new SQLite file,
//!   streaming, the values of columns the profile marks `personal`
//!   ([`Personal`]) replaced by values of the same type and shape drawn from
//!   HMAC-SHA256 under a key made for the copy and never kept.
//!
//! ```text
//!  profile file ──► Profiles ──► matching(path) ──► Profile
//!                                                     │
//!  file bytes ──► validate(reader, profile, sink) ────┴──► ValidationReport
//!                          │                               (rows, errors, sha256,
//!                          └──► RowSink: Row { line, values: [Value] }   encoding, ...)
//!
//!  load(tenant database, profile, file, import_id)
//!      = validate on a blocking thread ─► bounded channel ─► one transaction
//!        ─► LoadOutcome { report, rows, table_created } | LoadError
//! ```
//!
//! Bounds: memory is one 64 KiB chunk plus the longest record, and a record
//! longer than [`MAX_RECORD_BYTES`] or with more than [`MAX_FIELDS`] fields
//! ends validation; upsert keys cost 16 bytes a row; reports keep the first
//! [`MAX_REPORTED_ERRORS`] errors and count the rest.
//!
//! Non-features: a file is data only; it is never executed, templated or
//! deserialised into anything but typed rows. No spreadsheet formats (a
//! `.xlsx` is refused as binary with a hint), no UTF-16, no encodings other
//! than UTF-8 and Windows-1252 (bytes Windows-1252 leaves undefined are
//! refused), no CSV comments or custom quoting, no trimming of values
//! (`" 12"` is not an integer). Line ends may be LF, CRLF or a lone CR
//! (classic Mac), mixed: each counts as one line in receipts.

mod anonymize;
mod keyring;
mod load;
mod profile;
mod runner;
mod tenant_db;
mod validate;

pub use anonymize::{CopyError, CopyObserver, CopyTarget, TableCopied, copy_anonymized, source_tables};
pub use keyring::{Keyring, KeyringError, TenantKey};
pub use load::{
    CONNECT_TIMEOUT, DatabaseError, ImportRef, LoadError, LoadOutcome, Progress, committed_import, load,
    rows_with_import_id,
};
pub use profile::{
    Column, ColumnType, DEFAULT_MAX_BYTES, DELIMITERS, DateFormat, DelimiterSetting, EncodingSetting, MAX_COLUMNS,
    MAX_WINDOW_DAYS, Mode, Personal, Profile, ProfileError, Profiles, RESERVED_COLUMNS, is_temporary_name,
};
pub use runner::{
    Announcer, ArchiveCheck, ArchiveError, Arrival, Cancel, DoorPlan, DoorProfiles, DoorRejection, Intake, Layout,
    NoObserver, Observer, Pipeline, RECEIPT_SUFFIX, Refused, Retention, RunnerError, Settings, cancel, decrypt_archive,
    verify_archives,
};
pub use tenant_db::{TenantDbError, TenantDbProvisioner};
pub use validate::{
    DetectedEncoding, Discard, ImportError, MAX_FIELDS, MAX_RECORD_BYTES, MAX_REPORTED_ERRORS, Row, RowSink,
    ValidateError, ValidationReport, Validator, Value, validate,
};
