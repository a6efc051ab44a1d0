//! The passerelle import pipeline: every completed upload is checked and
//! loaded into **its tenant's own database**, with that tenant's own account.
//!
//! ```text
//!  upload completed ──► job (catalog) ──► validate ──► load (one transaction)
//!                                                         │
//!                                  tenant database ◄──────┘  (own DB, own role)
//! ```
//!
//! This crate starts with the tenant databases themselves: [`TenantDbProvisioner`]
//! creates and destroys one database and one account per tenant, on SQLite
//! (default) or PostgreSQL.
//!
//! Non-features: a file is data only; it is never executed, templated or
//! deserialised into anything but typed rows.

mod tenant_db;

pub use tenant_db::{TenantDbError, TenantDbProvisioner};
