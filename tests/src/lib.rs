//! Shared fixtures for passerelle's end-to-end tests.
//!
//! A [`Passerelle`] is one isolated installation (its own data directory
//! and, for PostgreSQL, its own databases), whose commands run the real
//! binary; the CLI tests use it alone. Tests that talk to a running server
//! build a [`Setup`] (tenants, users, configuration) and serve it: the
//! [`Fixture`] gives the [`Server`] and clients of each user, over SFTP
//! ([`SftpUser`]) and FTPS ([`FtpsUser`]). Where things are on disk is
//! [`DataLayout`]'s to say.
//!
//! PostgreSQL is reached at `TEST_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the test fails: PostgreSQL tests are never skipped.

mod audit;
mod cluster;
mod conformance;
mod fixture;
mod ftps;
mod imports;
mod installation;
mod layout;
mod nodes;
mod postgres;
mod server;
mod sftp;
mod sftp_conformance;
mod small_disk;
mod tools;
mod util;

pub use audit::{AuditRow, audit_rows, wait_for_audit};
pub use cluster::{Cluster, HAPROXY_ADDRESS, Load, Ports, packaged_haproxy_config};
pub use conformance::{
    CONFORMANCE_CSV, CONFORMANCE_LOGIN, CONFORMANCE_PASSWORD, CONFORMANCE_TENANT, ClientScript, RECEIPT_POLL_MILLIS,
    RECEIPT_POLLS, conformance_setup,
};
pub use fixture::{Fixture, Setup};
pub use ftps::{FtpsPorts, FtpsUser};
pub use imports::{DEMO_PROFILE, IMPORT_VERDICT};
pub use installation::{Passerelle, binary};
pub use layout::DataLayout;
pub use nodes::Node;
pub use postgres::{pg_admin_url, pg_url_as, psql, psql_result, with_database};
pub use server::{Server, field};
pub use sftp::{ClientAuth, SftpUser, known_hosts_file, ssh_keygen, ssh_keygen_lf};
pub use sftp_conformance::{LOGIN_BOUND, SftpScenario};
pub use tools::{
    CLIENT_TIMEOUT_SECS, Outcome, bounded, login_burst, on_path, python, run_command, sha256sum, sqlite3, venv_tool,
};
pub use util::{entry_names, free_port, json_time_ms, mode, random_file, tree, wait_for};
