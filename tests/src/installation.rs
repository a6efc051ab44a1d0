//! One isolated passerelle installation, and the real binary run against it.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::ftps::FtpsPorts;
use crate::layout::DataLayout;
use crate::postgres::PgNamespace;
use crate::server::Server;
use crate::small_disk::SmallDisk;
use crate::tools::Outcome;
use crate::util::free_port;

/// The `passerelle` binary of this workspace, built once per test process.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "passerelle-server", "--bin", "passerelle"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo build");
        assert!(status.success(), "cargo build of passerelle failed");
        // Test executables live in target/<profile>/deps/.
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        profile_dir.join("passerelle")
    })
}

/// One isolated passerelle installation: its own data directory and, for
/// PostgreSQL, its own catalog database and tenant-database name prefix, so
/// that tests run in parallel without seeing each other.
pub struct Passerelle {
    /// A filesystem of its own for the data directory, if any: declared
    /// first, so it is unmounted before `dir` is removed.
    disk: Option<SmallDisk>,
    dir: tempfile::TempDir,
    sftp_port: u16,
    admin_port: u16,
    env: Vec<(String, String)>,
    /// Set for PostgreSQL installations; its databases go with it.
    postgres: Option<PgNamespace>,
    /// The data directory of the installation this one is another node of
    /// (see [`Passerelle::another_node`]), instead of its own.
    shared_data_dir: Option<PathBuf>,
}

impl Passerelle {
    /// An installation on the embedded default: SQLite catalog and tenant
    /// databases, its data directory made (0700), empty, so that the
    /// administration commands, which create no data directory, can run
    /// before the first `serve`.
    pub fn new() -> Self {
        let installation = Self::without_data_dir();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(installation.data_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", installation.data_dir().display()));
        installation
    }

    /// An installation whose data directory does not exist yet, as before
    /// `passerelle init` or the first `serve`.
    pub fn without_data_dir() -> Self {
        let dir = tempfile::Builder::new().prefix("passerelle-test-").tempdir().expect("tempdir");
        let sftp_port = free_port();
        let admin_port = free_port();
        let env = vec![
            ("PASSERELLE_SFTP_LISTEN".into(), format!("127.0.0.1:{sftp_port}")),
            // FTPS listeners stay off unless a test turns them on, so
            // parallel tests never compete for their fixed default ports.
            ("PASSERELLE_FTPS_EXPLICIT_LISTEN".into(), String::new()),
            ("PASSERELLE_FTPS_IMPLICIT_LISTEN".into(), String::new()),
            // Tests stop servers with clients still connected: they wait
            // the few seconds an ended transfer needs, not the shipped
            // drain (tests of the drain set their own).
            ("PASSERELLE_SHUTDOWN_DRAIN_TIMEOUT".into(), "5s".into()),
        ];
        Self { disk: None, dir, sftp_port, admin_port, env, postgres: None, shared_data_dir: None }
    }

    /// Another node of this installation: the same data directory and
    /// configuration (catalog and tenant databases included), its own ports
    /// and scratch directory. This installation owns what they share, so it
    /// must outlive the node.
    pub fn another_node(&self) -> Self {
        let mut node = Self::without_data_dir();
        node.env = self.env.clone();
        let own_listener = format!("127.0.0.1:{}", node.sftp_port);
        node.set_env("PASSERELLE_SFTP_LISTEN", &own_listener);
        node.shared_data_dir = Some(self.data_dir());
        node
    }

    /// An installation on the embedded default whose data directory is a
    /// tmpfs of `size_mib` MiB of its own, catalog included, for tests that
    /// fill it (root only: they fail otherwise). It is unmounted when the
    /// installation is dropped, after the server stopped.
    pub fn on_small_disk(size_mib: u32) -> Self {
        let mut installation = Self::new();
        installation.disk = Some(SmallDisk::mount(&installation.data_dir(), size_mib));
        installation
    }

    /// An installation whose catalog and tenant databases live in PostgreSQL.
    pub fn with_postgres() -> Self {
        let mut installation = Self::new();
        let namespace = PgNamespace::create();
        installation.env.extend(namespace.env());
        installation.postgres = Some(namespace);
        installation
    }

    /// The catalog database URL of a [`Passerelle::with_postgres`] installation; `None` on SQLite.
    pub fn pg_catalog_url(&self) -> Option<String> {
        self.postgres.as_ref().map(PgNamespace::catalog_url)
    }

    /// The tenant database name prefix of a [`Passerelle::with_postgres`]
    /// installation (tenant `t`'s database and role are `<prefix>t`).
    pub fn pg_prefix(&self) -> Option<String> {
        self.postgres.as_ref().map(|namespace| namespace.prefix().to_owned())
    }

    /// The loopback port the SFTP listener uses.
    pub fn sftp_port(&self) -> u16 {
        self.sftp_port
    }

    /// The loopback port of the admin HTTP endpoint (`/healthz`, `/metrics`)
    /// of [`Passerelle::serve`]: a free one of its own, unless the test set
    /// `PASSERELLE_ADMIN_LISTEN`. (Only `serve` gets it, so that the other
    /// commands see `admin.listen` as configured.)
    pub fn admin_port(&self) -> u16 {
        self.env
            .iter()
            .rev()
            .find(|(name, _)| name == "PASSERELLE_ADMIN_LISTEN")
            .and_then(|(_, address)| address.rsplit_once(':')?.1.parse().ok())
            .unwrap_or(self.admin_port)
    }

    /// Turns both FTPS listeners on, on free loopback ports, with a passive
    /// range of 16 ports of its own below the kernel's ephemeral range (a
    /// port another test holds is skipped by the server, so ranges that
    /// happen to overlap only cost a retry).
    pub fn enable_ftps(&mut self) -> FtpsPorts {
        let ports = FtpsPorts { explicit: free_port(), implicit: free_port() };
        let base = 20_000 + (rand::random::<u16>() % 750) * 16;
        self.set_env("PASSERELLE_FTPS_EXPLICIT_LISTEN", &format!("127.0.0.1:{}", ports.explicit));
        self.set_env("PASSERELLE_FTPS_IMPLICIT_LISTEN", &format!("127.0.0.1:{}", ports.implicit));
        self.set_env("PASSERELLE_FTPS_PASSIVE_PORTS", &format!("{base}-{}", base + 15));
        ports
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.shared_data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// Where things are in the data directory.
    pub fn layout(&self) -> DataLayout {
        DataLayout::new(self.data_dir())
    }

    /// A scratch directory for the test's own files (keys, configs).
    pub fn scratch(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        std::fs::create_dir_all(&path).expect("scratch dir");
        path
    }

    /// Adds an environment variable for every later command.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.into(), value.into()));
    }

    /// A `passerelle --data-dir <data> <args>` command with this installation's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PASSERELLE_") {
                command.env_remove(name);
            }
        }
        command.env_remove("RUST_LOG");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.arg("--data-dir").arg(self.data_dir()).args(args);
        command
    }

    /// Runs a command to completion with empty standard input.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, "")
    }

    /// Runs a command to completion with `stdin` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn passerelle");
        // A command refused before it reads its input closes it: fine.
        match child.stdin.take().expect("stdin").write_all(stdin.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
            _ => {}
        }
        Outcome::from(child.wait_with_output().expect("wait passerelle"))
    }

    /// Runs a command that must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
        out.stdout
    }

    /// The original of import job `id` of `tenant`, as `passerelle archive decrypt` gets it back from
    /// the encrypted archive.
    pub fn archived_original(&self, tenant: &str, id: &str) -> Vec<u8> {
        let archived = self.layout().archive(tenant).join(id);
        let out = self.scratch().join(format!("original-{:08x}", rand::random::<u32>()));
        self.ok(&["archive", "decrypt", &archived.to_string_lossy(), "-o", &out.to_string_lossy()]);
        std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
    }

    /// Creates a tenant and a user with `password`.
    pub fn tenant_with_user(&self, tenant: &str, login: &str, password: &str) {
        self.ok(&["tenant", "add", tenant]);
        let out = self.run_with_stdin(&["user", "add", tenant, login, "--password-stdin"], &format!("{password}\n"));
        assert!(out.success(), "user add failed: {}", out.stderr);
    }

    /// Gives `tenant` the import profiles of `profile` (a TOML file's text).
    pub fn set_profile(&self, tenant: &str, profile: &str) {
        let out = self.run_with_stdin(&["profile", "set", tenant, "-"], profile);
        assert!(out.success(), "profile set {tenant}: {}", out.stderr);
    }

    /// Starts `passerelle serve <args>` and waits until it reports ready.
    pub fn serve(&self, args: &[&str]) -> Server {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut command = self.command(&full);
        command.env("PASSERELLE_ADMIN_LISTEN", format!("127.0.0.1:{}", self.admin_port()));
        Server::start(&mut command)
    }
}

impl Default for Passerelle {
    fn default() -> Self {
        Self::new()
    }
}
