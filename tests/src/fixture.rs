//! The fixture of the tests that talk to a running server: [`Setup`] makes
//! the installation (configuration, tenants, users, profiles), then
//! [`Setup::serve`] starts the server and gives the [`Fixture`], which hands
//! out clients for the users it made.
//!
//! ```no_run
//! # use passerelle_tests::Setup;
//! let f = Setup::new().user("acme", "alice", "Quartz-Lantern-Velvet-93").ftps().serve();
//! let over_sftp = f.sftp("alice");
//! let over_ftps = f.ftps("alice");
//! ```

use std::path::PathBuf;

use rustix::process::Signal;

use crate::ftps::{FtpsPorts, FtpsUser};
use crate::installation::Passerelle;
use crate::server::Server;
use crate::sftp::{SftpUser, add_user_key};

/// A user a [`Setup`] made: it logs in with its password or with an
/// ed25519 key of its own.
#[derive(Clone, Debug)]
struct FixtureUser {
    tenant: String,
    login: String,
    password: String,
    key: PathBuf,
}

/// What a fixture's server serves.
#[derive(Debug, Default)]
struct Served {
    users: Vec<FixtureUser>,
    ftps: Option<FtpsPorts>,
}

impl Served {
    fn user(&self, login: &str) -> &FixtureUser {
        self.users.iter().find(|u| u.login == login).unwrap_or_else(|| panic!("the fixture made no user {login}"))
    }
}

/// An installation being set up for a test, logging JSON. Each step runs at
/// once (the CLI commands it needs included); [`Setup::serve`] starts the
/// server.
pub struct Setup {
    /// The installation, for steps of the test's own before serving.
    pub p: Passerelle,
    served: Served,
}

impl Setup {
    /// A new installation on the embedded default (SQLite).
    pub fn new() -> Self {
        Self::on(Passerelle::new())
    }

    /// Sets up `p` (e.g. [`Passerelle::with_postgres`]).
    pub fn on(mut p: Passerelle) -> Self {
        p.set_env("PASSERELLE_LOG_FORMAT", "json");
        Self { p, served: Served::default() }
    }

    /// Configures the installation: `PASSERELLE_*` environment variables, in order.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        for (name, value) in env {
            self.p.set_env(name, value);
        }
        self
    }

    /// Turns the FTPS listeners on (see [`Passerelle::enable_ftps`]).
    pub fn ftps(mut self) -> Self {
        self.served.ftps = Some(self.p.enable_ftps());
        self
    }

    /// Creates tenant `tenant` and its user `login`, who logs in with
    /// `password` or with an ed25519 key made for it.
    pub fn user(mut self, tenant: &str, login: &str, password: &str) -> Self {
        self.p.tenant_with_user(tenant, login, password);
        let key = add_user_key(&self.p, login);
        self.served.users.push(FixtureUser {
            tenant: tenant.into(),
            login: login.into(),
            password: password.into(),
            key,
        });
        self
    }

    /// Gives `tenant` the import profiles of `profile` (a TOML file's text).
    pub fn profile(self, tenant: &str, profile: &str) -> Self {
        self.p.set_profile(tenant, profile);
        self
    }

    /// Creates the directories `dirs` in `tenant`'s inbox.
    pub fn inbox_dirs(self, tenant: &str, dirs: &[&str]) -> Self {
        let inbox = self.p.layout().inbox(tenant);
        for dir in dirs {
            std::fs::create_dir_all(inbox.join(dir)).expect("inbox directory");
        }
        self
    }

    /// Starts serving and waits until the server is ready.
    pub fn serve(self) -> Fixture {
        let server = self.p.serve(&[]);
        Fixture { server, p: self.p, served: self.served }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

/// A running server and the installation it serves.
pub struct Fixture {
    // Declared first: the server stops before the data directory goes away.
    /// The running server.
    pub server: Server,
    /// The installation.
    pub p: Passerelle,
    served: Served,
}

impl Fixture {
    /// Stops the server with SIGTERM and starts it again.
    pub fn restart(&mut self) {
        self.server.stop_with(Signal::TERM);
        self.server = self.p.serve(&[]);
    }

    /// A scratch directory of its own for one part of a test.
    pub fn work(&self, name: &str) -> PathBuf {
        let dir = self.p.scratch().join(name);
        std::fs::create_dir_all(&dir).expect("work dir");
        dir
    }

    /// A tenant's tree on disk.
    pub fn tenant_root(&self, tenant: &str) -> PathBuf {
        self.p.layout().tenant_root(tenant)
    }

    /// A tenant's `/inbox` on disk.
    pub fn inbox(&self, tenant: &str) -> PathBuf {
        self.p.layout().inbox(tenant)
    }

    /// A tenant's `/outbox` on disk.
    pub fn outbox(&self, tenant: &str) -> PathBuf {
        self.p.layout().outbox(tenant)
    }

    /// The tenant of user `login`.
    pub(crate) fn tenant_of(&self, login: &str) -> &str {
        &self.served.user(login).tenant
    }

    /// The private key file of user `login`.
    pub fn key(&self, login: &str) -> PathBuf {
        self.served.user(login).key.clone()
    }

    /// User `login` over SFTP, logging in with its key.
    pub fn sftp(&self, login: &str) -> SftpUser {
        SftpUser::with_key(self.p.sftp_port(), login, &self.key(login), &self.work(login))
    }

    /// User `login` over SFTP, logging in with its password.
    pub fn sftp_with_password(&self, login: &str) -> SftpUser {
        let user = self.served.user(login);
        SftpUser::with_password(self.p.sftp_port(), login, &user.password, &self.work(login))
    }

    /// The FTPS ports; panics unless the [`Setup`] turned FTPS on.
    pub fn ftps_ports(&self) -> FtpsPorts {
        self.served.ftps.expect("FTPS is off: call Setup::ftps")
    }

    /// User `login` over FTPS, logging in with its password.
    pub fn ftps(&self, login: &str) -> FtpsUser {
        FtpsUser::new(&self.p, self.ftps_ports(), login, &self.served.user(login).password)
    }
}
