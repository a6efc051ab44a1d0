//! Shared fixtures for passerelle's end-to-end tests.
//!
//! A [`Passerelle`] is one isolated installation: its own data directory and,
//! for PostgreSQL, its own catalog database and tenant-database name prefix,
//! so tests run in parallel without seeing each other. Commands run the real
//! binary; [`Passerelle::serve`] starts the real server.
//!
//! PostgreSQL is reached at `TEST_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the test fails: PostgreSQL tests are never skipped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to report that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The PostgreSQL server the tests use, as an administrator URL.
pub fn pg_admin_url() -> String {
    std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs SQL with `psql` against `url`; panics with psql's message on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = psql_result(url, sql);
    assert!(out.success(), "psql {sql:?} failed: {}", out.stderr);
    out.stdout
}

/// Runs SQL with `psql` against `url` and returns what happened.
pub fn psql_result(url: &str, sql: &str) -> Outcome {
    let output = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql must be installed (scripts/test installs it)");
    Outcome::from(output)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("URL with a database");
    format!("{base}/{database}")
}

/// A loopback TCP port that was free a moment ago. The kernel hands out
/// ephemeral ports in sequence, so parallel tests do not collide in practice.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local_addr").port()
}

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl From<std::process::Output> for Outcome {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// One isolated passerelle installation.
pub struct Passerelle {
    dir: tempfile::TempDir,
    sftp_port: u16,
    env: Vec<(String, String)>,
    /// Set for PostgreSQL installations: `(prefix, catalog database)`, cleaned up on drop.
    postgres: Option<(String, String)>,
}

impl Passerelle {
    /// An installation on the embedded default: SQLite catalog and tenant databases.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("passerelle-test-").tempdir().expect("tempdir");
        let sftp_port = free_port();
        let env = vec![
            ("PASSERELLE_SFTP_LISTEN".into(), format!("127.0.0.1:{sftp_port}")),
            // FTPS listeners stay off unless a test turns them on, so
            // parallel tests never compete for their fixed default ports.
            ("PASSERELLE_FTPS_EXPLICIT_LISTEN".into(), String::new()),
            ("PASSERELLE_FTPS_IMPLICIT_LISTEN".into(), String::new()),
        ];
        Self { dir, sftp_port, env, postgres: None }
    }

    /// An installation whose catalog and tenant databases live in PostgreSQL.
    pub fn with_postgres() -> Self {
        let mut installation = Self::new();
        let admin = pg_admin_url();
        let prefix = format!("pt{:012x}_", rand::random::<u64>() & 0xffff_ffff_ffff);
        let catalog_db = format!("{prefix}catalog");
        let reach = psql_result(&admin, "SELECT 1");
        assert!(
            reach.success(),
            "PostgreSQL must be reachable at {admin} (set TEST_PG_ADMIN_URL): {}",
            reach.stderr
        );
        psql(&admin, &format!("CREATE DATABASE {catalog_db}"));
        installation.env.extend([
            ("PASSERELLE_CATALOG_URL".into(), with_database(&admin, &catalog_db)),
            ("PASSERELLE_TENANT_DB_BACKEND".into(), "postgres".into()),
            ("PASSERELLE_TENANT_DB_ADMIN_URL".into(), admin),
            ("PASSERELLE_TENANT_DB_NAME_PREFIX".into(), prefix.clone()),
        ]);
        installation.postgres = Some((prefix, catalog_db));
        installation
    }

    /// The loopback port the SFTP listener uses.
    pub fn sftp_port(&self) -> u16 {
        self.sftp_port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        Outcome::from(child.wait_with_output().expect("wait passerelle"))
    }

    /// Runs a command that must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
        out.stdout
    }

    /// Creates a tenant and a user with `password`.
    pub fn tenant_with_user(&self, tenant: &str, login: &str, password: &str) {
        self.ok(&["tenant", "add", tenant]);
        let out = self.run_with_stdin(&["user", "add", tenant, login, "--password-stdin"], &format!("{password}\n"));
        assert!(out.success(), "user add failed: {}", out.stderr);
    }

    /// Starts `passerelle serve <args>` and waits until it reports ready.
    pub fn serve(&self, args: &[&str]) -> Server {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut child = self
            .command(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn passerelle serve");
        let (sender, lines) = mpsc::channel();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [stdout, stderr] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Server { child, lines, seen: Vec::new() };
        server.wait_for_line("passerelle ready", READY_TIMEOUT);
        server
    }
}

impl Default for Passerelle {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Passerelle {
    fn drop(&mut self) {
        // Leave no databases or roles behind on the shared PostgreSQL server.
        let Some((prefix, catalog_db)) = &self.postgres else { return };
        let admin = pg_admin_url();
        let pattern = format!("{prefix}%");
        let names = psql_result(&admin, &format!("SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'"));
        for name in names.stdout.lines().filter(|n| !n.is_empty()) {
            let _ = psql_result(&admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
        let roles = psql_result(&admin, &format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{pattern}'"));
        for role in roles.stdout.lines().filter(|n| !n.is_empty()) {
            let _ = psql_result(&admin, &format!("DROP ROLE IF EXISTS \"{role}\""));
        }
        let _ = psql_result(&admin, &format!("DROP DATABASE IF EXISTS \"{catalog_db}\" WITH (FORCE)"));
    }
}

/// A running `passerelle serve`; killed when dropped.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Waits until a line of output contains `needle` and returns it; panics
    /// with everything seen so far after `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}; output:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Everything the server printed so far.
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub fn stop_with(mut self, signal: rustix::process::Signal) -> ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).expect("signal the server");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop within 20 s:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Passerelle {
    /// The catalog database URL of a [`Passerelle::with_postgres`] installation; `None` on SQLite.
    pub fn pg_catalog_url(&self) -> Option<String> {
        self.postgres
            .as_ref()
            .map(|(_, catalog_db)| with_database(&pg_admin_url(), catalog_db))
    }
}

/// `url` (a `postgres://` URL) with its user replaced by `user` (no password) and its database by `database`.
pub fn pg_url_as(url: &str, user: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host_and_path
        .split_once('/')
        .map_or(host_and_path, |(host, _)| host);
    format!("{scheme}://{user}@{host}/{database}")
}

/// Generates an OpenSSH key pair with `ssh-keygen -t KIND [-b BITS] -N '' -C COMMENT -f DIR/NAME`
/// and returns the public key file, `DIR/NAME.pub`.
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, bits: Option<u32>, comment: &str) -> PathBuf {
    let private = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(&private);
    if let Some(bits) = bits {
        command.args(["-b", &bits.to_string()]);
    }
    let out = Outcome::from(
        command
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keygen must be installed"),
    );
    assert!(out.success(), "ssh-keygen -t {kind} failed: {}", out.stderr);
    dir.join(format!("{name}.pub"))
}

/// What `ssh-keygen -lf FILE` prints (one line per key).
pub fn ssh_keygen_lf(file: &Path) -> String {
    let out = Outcome::from(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(file)
            .output()
            .expect("ssh-keygen"),
    );
    assert!(
        out.success(),
        "ssh-keygen -lf {} failed: {}",
        file.display(),
        out.stderr
    );
    out.stdout
}

/// The permission bits (`0o777` part) of a file or directory.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o777
}

/// Runs `sqlite3 -batch FILE SQL` and returns its output; panics on failure.
pub fn sqlite3(file: &Path, sql: &str) -> String {
    let out = Outcome::from(
        Command::new("sqlite3")
            .arg("-batch")
            .arg(file)
            .arg(sql)
            .output()
            .expect("sqlite3 must be installed"),
    );
    assert!(
        out.success(),
        "sqlite3 {} {sql:?} failed: {}",
        file.display(),
        out.stderr
    );
    out.stdout
}
