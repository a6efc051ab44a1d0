//! Anonymized copies of a tenant's tables (`passerelle tenant copy-anonymized`).
//!
//! ```text
//!  source tenant DB ──stream rows──► replace personal columns ──batches──► target
//!  (tables of the profiles)          (HMAC-SHA256, key of this copy)       (test-zone tenant DB
//!                                                                           or a new SQLite file)
//! ```
//!
//! The profile says which columns are personal (`personal = "name" | "email"
//! | ...`, [`Personal`](crate::Personal)); their values are replaced by
//! values of the same type and shape, the others are copied as they are,
//! `_import_id` and `_line` included. Replacements are drawn from
//! HMAC-SHA256 under a random key made for the copy and held in memory only:
//! within one copy the same value always gets the same replacement (in
//! every table: joins and duplicates behave the same), a second copy gets
//! other ones, and nothing leads back from a replacement to its value.
//! `id` replacements are a keyed permutation: distinct identifiers stay
//! distinct, so key columns stay unique.
//!
//! Rows stream from the source (one query per table, read as the server
//! sends them) and are written in batches: `COPY` on PostgreSQL, multi-row
//! `INSERT`s on SQLite, all in one transaction of the target committed at
//! the end: a failed copy leaves the target as it was. Each copied table is
//! dropped and created again in the target from its profile (as the import
//! pipeline creates it). The ledger of imports is not copied.

mod copy;
mod key;
mod permute;
mod pseudonyms;
mod replace;
mod source;
mod target;

pub use copy::{CopyError, CopyObserver, CopyTarget, TableCopied, copy_anonymized, source_tables};
