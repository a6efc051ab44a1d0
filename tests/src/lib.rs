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
    admin_port: u16,
    env: Vec<(String, String)>,
    /// Set for PostgreSQL installations: `(prefix, catalog database)`, cleaned up on drop.
    postgres: Option<(String, String)>,
}

impl Passerelle {
    /// An installation on the embedded default: SQLite catalog and tenant databases.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("passerelle-test-").tempdir().expect("tempdir");
        let sftp_port = free_port();
        let admin_port = free_port();
        let env = vec![
            ("PASSERELLE_SFTP_LISTEN".into(), format!("127.0.0.1:{sftp_port}")),
            // FTPS listeners stay off unless a test turns them on, so
            // parallel tests never compete for their fixed default ports.
            ("PASSERELLE_FTPS_EXPLICIT_LISTEN".into(), String::new()),
            ("PASSERELLE_FTPS_IMPLICIT_LISTEN".into(), String::new()),
        ];
        Self { dir, sftp_port, admin_port, env, postgres: None }
    }

    /// An installation whose catalog and tenant databases live in PostgreSQL.
    pub fn with_postgres() -> Self {
        let mut installation = Self::new();
        let admin = pg_admin_url();
        let prefix = format!("pt{:012x}_", rand::random::<u64>() & 0xffff_ffff_ffff);
        let catalog_db = format!("{prefix}catalog");
        let reach = psql_result(&admin, "SELECT 1");
        assert!(reach.success(), "PostgreSQL must be reachable at {admin} (set TEST_PG_ADMIN_URL): {}", reach.stderr);
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
            .env("PASSERELLE_ADMIN_LISTEN", format!("127.0.0.1:{}", self.admin_port()))
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
        self.postgres.as_ref().map(|(_, catalog_db)| with_database(&pg_admin_url(), catalog_db))
    }

    /// The tenant database name prefix of a [`Passerelle::with_postgres`]
    /// installation (tenant `t`'s database and role are `<prefix>t`).
    pub fn pg_prefix(&self) -> Option<String> {
        self.postgres.as_ref().map(|(prefix, _)| prefix.clone())
    }
}

/// `url` (a `postgres://` URL) with its user replaced by `user` (no password) and its database by `database`.
pub fn pg_url_as(url: &str, user: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host_and_path.split_once('/').map_or(host_and_path, |(host, _)| host);
    format!("{scheme}://{user}@{host}/{database}")
}

/// Generates an OpenSSH key pair with `ssh-keygen -t KIND [-b BITS] -N '' -C COMMENT -f DIR/NAME`
/// and returns the public key file, `DIR/NAME.pub`.
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, bits: Option<u32>, comment: &str) -> PathBuf {
    let private = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    command.args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"]).arg(&private);
    if let Some(bits) = bits {
        command.args(["-b", &bits.to_string()]);
    }
    let out = Outcome::from(command.stdin(Stdio::null()).output().expect("ssh-keygen must be installed"));
    assert!(out.success(), "ssh-keygen -t {kind} failed: {}", out.stderr);
    dir.join(format!("{name}.pub"))
}

/// What `ssh-keygen -lf FILE` prints (one line per key).
pub fn ssh_keygen_lf(file: &Path) -> String {
    let out = Outcome::from(Command::new("ssh-keygen").arg("-lf").arg(file).output().expect("ssh-keygen"));
    assert!(out.success(), "ssh-keygen -lf {} failed: {}", file.display(), out.stderr);
    out.stdout
}

/// The permission bits (`0o777` part) of a file or directory.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o777
}

/// Runs `sqlite3 -batch FILE SQL` and returns its output; panics on failure.
pub fn sqlite3(file: &Path, sql: &str) -> String {
    let out = Outcome::from(
        Command::new("sqlite3").arg("-batch").arg(file).arg(sql).output().expect("sqlite3 must be installed"),
    );
    assert!(out.success(), "sqlite3 {} {sql:?} failed: {}", file.display(), out.stderr);
    out.stdout
}

// ---------------------------------------------------------------------------
// SFTP end-to-end helpers: real clients (OpenSSH, curl, paramiko) against a
// running server, every invocation bounded in time.
// ---------------------------------------------------------------------------

/// How long any one client invocation may run before it is killed.
pub const CLIENT_TIMEOUT_SECS: u32 = 60;

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `target/test-venv/bin/NAME` when it exists, otherwise `fallback` from `PATH`.
pub fn venv_tool(name: &str, fallback: &str) -> PathBuf {
    let candidate = workspace_root().join("target/test-venv/bin").join(name);
    if candidate.exists() { candidate } else { PathBuf::from(fallback) }
}

/// The Python that has paramiko (the test venv's, else `python3`).
pub fn python() -> PathBuf {
    venv_tool("python", "python3")
}

/// Whether `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `timeout -k 5 <secs> PROGRAM`: the program and everything it starts are
/// killed after `secs` seconds (exit code 124 or 137 then).
pub fn bounded(program: impl AsRef<std::ffi::OsStr>, secs: u32) -> Command {
    let mut command = Command::new("timeout");
    command.args(["-k", "5", &secs.to_string()]).arg(program);
    command.env_remove("SSH_AUTH_SOCK");
    command
}

/// Runs `command` to completion with `stdin` as its standard input.
pub fn run_command(command: &mut Command, stdin: &[u8]) -> Outcome {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // A writer thread, so that a client that does not read its input cannot block us.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for client");
    let _ = writer.join();
    Outcome::from(output)
}

/// SHA-256 of a file as `sha256sum` prints it (lower-case hex).
pub fn sha256sum(path: &Path) -> String {
    let out = Outcome::from(Command::new("sha256sum").arg(path).output().expect("sha256sum"));
    assert!(out.success(), "sha256sum {}: {}", path.display(), out.stderr);
    out.stdout.split_whitespace().next().expect("sha256sum output").to_owned()
}

/// Writes `size` random bytes to `path`.
pub fn random_file(path: &Path, size: u64) {
    use std::io::Read as _;
    let mut source = std::fs::File::open("/dev/urandom").expect("/dev/urandom").take(size);
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let copied = std::io::copy(&mut source, &mut file).expect("copy random bytes");
    assert_eq!(copied, size);
}

/// Polls `check` every 100 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every entry under `root` (files, directories and symlinks, which are not
/// followed), as paths relative to `root`, sorted.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// One row of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// `login`, `upload`, `download`, `rename`, ...
    pub action: String,
    /// `ok`, `failed`, `aborted`, ...
    pub outcome: String,
    /// The client path, empty when none.
    pub path: String,
    /// Bytes transferred, when recorded.
    pub bytes: Option<u64>,
    /// The free-text detail, empty when none.
    pub detail: String,
}

/// The audit trail of a SQLite installation, oldest first.
pub fn audit_rows(p: &Passerelle) -> Vec<AuditRow> {
    let out = sqlite3(
        &p.data_dir().join("catalog.db"),
        "SELECT json_object('action', action, 'outcome', outcome, 'path', coalesce(path, ''), \
         'bytes', bytes, 'detail', coalesce(detail, '')) FROM audit_events ORDER BY id",
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("audit row as JSON");
            AuditRow {
                action: v["action"].as_str().unwrap_or_default().to_owned(),
                outcome: v["outcome"].as_str().unwrap_or_default().to_owned(),
                path: v["path"].as_str().unwrap_or_default().to_owned(),
                bytes: v["bytes"].as_u64(),
                detail: v["detail"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// Waits (up to 10 s: the audit writer is asynchronous) for an audit row
/// matching `wanted`, and returns it; panics with the whole trail otherwise.
pub fn wait_for_audit(p: &Passerelle, what: &str, wanted: impl Fn(&AuditRow) -> bool) -> AuditRow {
    wait_for(Duration::from_secs(10), || audit_rows(p).into_iter().find(|r| wanted(r)))
        .unwrap_or_else(|| panic!("no audit row for {what}; audit trail:\n{:#?}", audit_rows(p)))
}

impl Server {
    /// The structured (`log.format = "json"`) lines printed so far whose
    /// message is `message`.
    pub fn json_events(&mut self, message: &str) -> Vec<serde_json::Value> {
        self.output()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["message"] == message || v["fields"]["message"] == message)
            .collect()
    }

    /// Waits for the "upload completed" event of `path` (a client path such as
    /// `/inbox/a.csv`) and returns it; panics after `timeout`.
    pub fn wait_for_upload_completed(&mut self, path: &str, timeout: Duration) -> serde_json::Value {
        wait_for(timeout, || self.json_events("upload completed").into_iter().find(|v| field(v, "path") == Some(path)))
            .unwrap_or_else(|| panic!("no \"upload completed\" event for {path}; output:\n{}", self.output()))
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The most resident memory the server process has used so far, in KiB
    /// (`VmHWM` of `/proc/<pid>/status`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/<pid>/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM in kB")
    }
}

/// A string field of a JSON log event, flattened or under `fields`.
pub fn field<'a>(event: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    event[name].as_str().or_else(|| event["fields"][name].as_str())
}

/// How a test client authenticates.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// An OpenSSH private key file (its public half is `FILE.pub`).
    Key(PathBuf),
    /// A password, given to OpenSSH through an askpass script.
    Password {
        /// The password.
        password: String,
        /// An executable script that prints it (`SSH_ASKPASS`).
        askpass: PathBuf,
    },
}

/// One user of a running server, driven through real clients.
#[derive(Clone, Debug)]
pub struct SftpUser {
    /// The server's SFTP port on 127.0.0.1.
    pub port: u16,
    /// The login.
    pub login: String,
    /// The credentials.
    pub auth: ClientAuth,
    /// A scratch directory for batch files and downloads.
    pub scratch: PathBuf,
    /// The loopback source address to connect from (e.g. `127.0.0.2`); the
    /// kernel's choice when `None`.
    pub source: Option<String>,
}

impl SftpUser {
    /// A user that logs in with the private key `key`.
    pub fn with_key(port: u16, login: &str, key: &Path, scratch: &Path) -> Self {
        Self { port, login: login.into(), auth: ClientAuth::Key(key.into()), scratch: scratch.into(), source: None }
    }

    /// The same user, connecting from the loopback address `source`.
    pub fn from_address(mut self, source: &str) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A user that logs in with `password` (an askpass script is written to `scratch`).
    pub fn with_password(port: u16, login: &str, password: &str, scratch: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        assert!(!password.contains('\''), "the askpass script quotes the password with '");
        let askpass = scratch.join(format!("askpass-{login}-{:08x}", rand::random::<u32>()));
        std::fs::write(&askpass, format!("#!/bin/sh\nprintf '%s\\n' '{password}'\n")).expect("askpass");
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).expect("chmod askpass");
        Self {
            port,
            login: login.into(),
            auth: ClientAuth::Password { password: password.into(), askpass },
            scratch: scratch.into(),
            source: None,
        }
    }

    /// `login@127.0.0.1`.
    pub fn destination(&self) -> String {
        format!("{}@127.0.0.1", self.login)
    }

    /// The `-o` options every OpenSSH client gets: bounded, no host key
    /// checks, no agent, and only this user's credentials.
    pub fn ssh_options(&self) -> Vec<String> {
        let mut options: Vec<String> = [
            "ConnectTimeout=10",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "GlobalKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "IdentityAgent=none",
            "ServerAliveInterval=10",
            "ServerAliveCountMax=3",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        if let Some(source) = &self.source {
            options.push(format!("BindAddress={source}"));
        }
        match &self.auth {
            ClientAuth::Key(key) => options.extend([
                "BatchMode=yes".into(),
                "IdentitiesOnly=yes".into(),
                format!("IdentityFile={}", key.display()),
                "PreferredAuthentications=publickey".into(),
                "PasswordAuthentication=no".into(),
                "KbdInteractiveAuthentication=no".into(),
            ]),
            ClientAuth::Password { .. } => options.extend([
                // Must come before sftp's own `-b`, which adds BatchMode=yes
                // (OpenSSH keeps the first value it sees).
                "BatchMode=no".into(),
                "PubkeyAuthentication=no".into(),
                "PreferredAuthentications=password".into(),
                "NumberOfPasswordPrompts=1".into(),
            ]),
        }
        options.into_iter().flat_map(|o| ["-o".to_owned(), o]).collect()
    }

    /// A bounded OpenSSH client command (`sftp`, `scp` or `ssh`) with the
    /// options and the askpass environment, but no port or destination yet.
    pub fn openssh(&self, program: &str) -> Command {
        let mut command = bounded(program, CLIENT_TIMEOUT_SECS);
        command.args(self.ssh_options());
        if let ClientAuth::Password { askpass, .. } = &self.auth {
            command.env("SSH_ASKPASS", askpass).env("SSH_ASKPASS_REQUIRE", "force").env("DISPLAY", ":0");
        }
        command
    }

    /// Runs `sftp -b BATCH` (BATCH given as text); `sftp -b` stops at the first failed command.
    pub fn sftp_batch(&self, batch: &str) -> Outcome {
        let file = self.scratch.join(format!("batch-{:08x}", rand::random::<u32>()));
        std::fs::write(&file, batch).expect("write batch file");
        let mut command = self.openssh("sftp");
        command.arg("-P").arg(self.port.to_string()).arg("-b").arg(&file).arg(self.destination());
        run_command(&mut command, b"")
    }

    /// Runs `scp -P PORT ARGS...`; remote paths are written `{remote}:/inbox/x`.
    pub fn scp(&self, args: &[&str]) -> Outcome {
        let mut command = self.openssh("scp");
        command.arg("-P").arg(self.port.to_string());
        let destination = self.destination();
        command.args(args.iter().map(|a| a.replace("{remote}", &destination)));
        run_command(&mut command, b"")
    }

    /// Runs `ssh -p PORT ARGS... login@127.0.0.1 REMOTE...`.
    pub fn ssh(&self, args: &[&str], remote: &[&str]) -> Outcome {
        let mut command = self.openssh("ssh");
        command.arg("-p").arg(self.port.to_string()).args(args).arg(self.destination()).args(remote);
        run_command(&mut command, b"")
    }

    /// `curl -sS --insecure` with this user's credentials, then `ARGS...`;
    /// URLs are written `{url}/inbox/x` for `sftp://127.0.0.1:PORT/inbox/x`.
    pub fn curl(&self, args: &[&str]) -> Outcome {
        let mut command = bounded("curl", CLIENT_TIMEOUT_SECS);
        command.args(["-sS", "--insecure", "--connect-timeout", "10", "--max-time", "50"]);
        match &self.auth {
            ClientAuth::Key(key) => {
                command
                    .arg("--key")
                    .arg(key)
                    .arg("--pubkey")
                    .arg(format!("{}.pub", key.display()))
                    .arg("-u")
                    .arg(format!("{}:", self.login));
            }
            ClientAuth::Password { password, .. } => {
                command.arg("-u").arg(format!("{}:{password}", self.login));
            }
        }
        let url = format!("sftp://127.0.0.1:{}", self.port);
        command.args(args.iter().map(|a| a.replace("{url}", &url)));
        run_command(&mut command, b"")
    }

    /// Runs `tests/python/sftp_client.py` (paramiko) with `ops` and returns its JSON report.
    pub fn paramiko(&self, ops: serde_json::Value) -> serde_json::Value {
        self.paramiko_plan(serde_json::json!({ "ops": ops }))
    }

    /// Like [`SftpUser::paramiko`] with a whole plan (`mode`, `attempts`, `ops`...);
    /// the port, user and credentials are filled in.
    pub fn paramiko_plan(&self, mut plan: serde_json::Value) -> serde_json::Value {
        plan["port"] = self.port.into();
        plan["user"] = self.login.clone().into();
        if let Some(source) = &self.source {
            plan["source"] = source.clone().into();
        }
        match &self.auth {
            ClientAuth::Key(key) => plan["key"] = key.display().to_string().into(),
            ClientAuth::Password { password, .. } => plan["password"] = password.clone().into(),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/sftp_client.py");
        let mut command = bounded(python(), CLIENT_TIMEOUT_SECS);
        command.arg(script);
        let out = run_command(&mut command, plan.to_string().as_bytes());
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!("paramiko script gave no report ({e}), exit {}:\n{}\n{}", out.code, out.stdout, out.stderr)
        })
    }
}

/// An installation with tenant `tenant` and user `login` (password and an
/// ed25519 key), logging JSON.
pub fn sftp_installation(tenant: &str, login: &str, password: &str) -> (Passerelle, PathBuf) {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_LOG_FORMAT", "json");
    p.tenant_with_user(tenant, login, password);
    let key = add_user_key(&p, login);
    (p, key)
}

/// Generates an ed25519 key for `login`, registers it with `key add` and
/// returns the private key file.
pub fn add_user_key(p: &Passerelle, login: &str) -> PathBuf {
    let public = ssh_keygen(&p.scratch(), &format!("id_{login}"), "ed25519", None, &format!("{login}@test"));
    p.ok(&["key", "add", login, &public.display().to_string()]);
    p.scratch().join(format!("id_{login}"))
}

// ---------------------------------------------------------------------------
// Import pipeline end-to-end helpers: tenants with import profiles, files
// uploaded over SFTP, receipts downloaded as a client would.
// ---------------------------------------------------------------------------

/// The import profile of the demo tenant (`serve --demo`): `employees/*.csv`,
/// upsert by `employee_id`, `;`/`,` detected, dates `%d/%m/%Y`, decimals with `,`.
pub const DEMO_PROFILE: &str = include_str!("../../server/src/demo-profile.toml");

/// How long an import job may take to reach its verdict in the tests.
pub const IMPORT_VERDICT: Duration = Duration::from_secs(60);

/// The password of every [`ImportInstallation`] user (they log in with keys).
const IMPORT_PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// A running server whose users upload files to `/inbox` over SFTP and read
/// their receipts from `/outbox`; each user logs in with the ed25519 key
/// that [`add_user_key`] made for it.
pub struct ImportInstallation {
    // Declared first: the server stops before the data directory goes away.
    /// The running server.
    pub server: Server,
    /// The installation.
    pub p: Passerelle,
}

impl ImportInstallation {
    /// Creates each `(tenant, login)` with a key, gives every tenant
    /// `profile` (none when `None`) and the inbox directories `inbox_dirs`,
    /// then starts serving, logging JSON.
    pub fn start(mut p: Passerelle, tenants: &[(&str, &str)], profile: Option<&str>, inbox_dirs: &[&str]) -> Self {
        p.set_env("PASSERELLE_LOG_FORMAT", "json");
        for (tenant, login) in tenants {
            p.tenant_with_user(tenant, login, IMPORT_PASSWORD);
            add_user_key(&p, login);
            if let Some(profile) = profile {
                let out = p.run_with_stdin(&["profile", "set", tenant, "-"], profile);
                assert!(out.success(), "profile set {tenant}: {}", out.stderr);
            }
            for dir in inbox_dirs {
                std::fs::create_dir_all(p.data_dir().join("tenants").join(tenant).join("inbox").join(dir))
                    .expect("inbox directory");
            }
        }
        let server = p.serve(&[]);
        Self { server, p }
    }

    /// An SFTP user of this server, logging in with its key.
    pub fn user(&self, login: &str) -> SftpUser {
        let scratch = self.p.scratch().join(login);
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        SftpUser::with_key(self.p.sftp_port(), login, &self.p.scratch().join(format!("id_{login}")), &scratch)
    }

    /// A tenant's `/inbox` on disk.
    pub fn inbox(&self, tenant: &str) -> PathBuf {
        self.p.data_dir().join("tenants").join(tenant).join("inbox")
    }

    /// A tenant's `/outbox` on disk.
    pub fn outbox(&self, tenant: &str) -> PathBuf {
        self.p.data_dir().join("tenants").join(tenant).join("outbox")
    }

    /// A tenant's own SQLite database file.
    pub fn tenant_db(&self, tenant: &str) -> PathBuf {
        self.p.data_dir().join("tenant-db").join(format!("{tenant}.db"))
    }

    /// Uploads `content` as `/inbox/<path>` over SFTP.
    pub fn upload(&self, login: &str, path: &str, content: &[u8]) {
        let local = self.p.scratch().join(format!("upload-{:08x}", rand::random::<u32>()));
        std::fs::write(&local, content).expect("write the file to upload");
        self.upload_files(login, &[(local.as_path(), path)]);
    }

    /// Uploads local files, `(local file, path under /inbox)`, in order, in
    /// one `sftp -b` session.
    pub fn upload_files(&self, login: &str, files: &[(&Path, &str)]) {
        let batch: String =
            files.iter().map(|(local, path)| format!("put {} /inbox/{path}\n", local.display())).collect();
        let out = self.user(login).sftp_batch(&batch);
        assert!(out.success(), "upload of {files:?} failed: {}", out.stderr);
    }

    /// Waits (up to [`IMPORT_VERDICT`]) for the receipt of `/inbox/<path>`,
    /// downloads it over SFTP as the client would, then removes it from the
    /// outbox so that a later receipt for the same path can be waited for.
    pub fn receipt(&self, tenant: &str, login: &str, path: &str) -> serde_json::Value {
        let on_disk = self.outbox(tenant).join(format!("{path}.result.json"));
        wait_for(IMPORT_VERDICT, || on_disk.exists().then_some(()))
            .unwrap_or_else(|| panic!("no receipt for {path}; jobs: {}", self.p.ok(&["import", "list"])));
        let local = self.p.scratch().join(format!("receipt-{:08x}", rand::random::<u32>()));
        let out = self.user(login).sftp_batch(&format!("get /outbox/{path}.result.json {}\n", local.display()));
        assert!(out.success(), "download of the receipt of {path} failed: {}", out.stderr);
        let receipt =
            serde_json::from_slice(&std::fs::read(&local).expect("downloaded receipt")).expect("receipt JSON");
        std::fs::remove_file(on_disk).expect("remove the receipt");
        receipt
    }

    /// Every import job, as `import list --json` prints them.
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        let out = self.p.ok(&["import", "list", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).expect("import list JSON").as_array().expect("array").clone()
    }
}

// ---------------------------------------------------------------------------
// FTPS end-to-end helpers: curl, lftp and a scripted Python client against a
// running server, every invocation bounded in time.
// ---------------------------------------------------------------------------

/// The FTPS ports of an installation whose FTPS listeners are on.
#[derive(Clone, Copy, Debug)]
pub struct FtpsPorts {
    /// Explicit FTPS (AUTH TLS) on 127.0.0.1.
    pub explicit: u16,
    /// Implicit FTPS (TLS at once) on 127.0.0.1.
    pub implicit: u16,
}

impl Passerelle {
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

    /// The TLS certificate the server presents (generated at the first `serve`).
    pub fn tls_cert(&self) -> PathBuf {
        self.data_dir().join("tls/cert.pem")
    }
}

/// A running server with FTPS on, logging JSON, with tenant `tenant` and
/// user `login`.
pub struct FtpsFixture {
    // Declared first: the server stops before the data directory goes away.
    /// The running server.
    pub server: Server,
    /// The installation.
    pub p: Passerelle,
    /// Its FTPS ports.
    pub ports: FtpsPorts,
    tenant: String,
}

impl FtpsFixture {
    /// Creates the installation, the tenant and the user, and starts serving.
    pub fn start(tenant: &str, login: &str, password: &str) -> Self {
        Self::start_with(tenant, login, password, &[])
    }

    /// Like [`FtpsFixture::start`], with extra environment (configuration).
    pub fn start_with(tenant: &str, login: &str, password: &str, env: &[(&str, &str)]) -> Self {
        let mut p = Passerelle::new();
        for (name, value) in env {
            p.set_env(name, value);
        }
        p.set_env("PASSERELLE_LOG_FORMAT", "json");
        p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
        let ports = p.enable_ftps();
        p.tenant_with_user(tenant, login, password);
        let server = p.serve(&[]);
        Self { server, p, ports, tenant: tenant.into() }
    }

    /// A user of this server.
    pub fn user(&self, login: &str, password: &str) -> FtpsUser {
        FtpsUser::new(&self.p, self.ports, login, password)
    }

    /// The tenant's `/inbox` on disk.
    pub fn inbox(&self) -> PathBuf {
        self.p.data_dir().join("tenants").join(&self.tenant).join("inbox")
    }

    /// A scratch directory of its own for one part of a test.
    pub fn work(&self, name: &str) -> PathBuf {
        let dir = self.p.scratch().join(name);
        std::fs::create_dir_all(&dir).expect("work dir");
        dir
    }

    /// The names in the tenant's inbox, sorted (upload temporaries included).
    pub fn inbox_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.inbox())
            .expect("inbox")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Server {
    /// Sends `signal` (e.g. SIGHUP) to the running server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).expect("signal the server");
    }
}

/// One FTPS user of a running server, driven through real clients.
#[derive(Clone, Debug)]
pub struct FtpsUser {
    /// The server's ports.
    pub ports: FtpsPorts,
    /// The login.
    pub login: String,
    /// The password.
    pub password: String,
    /// The server certificate, trusted by the clients.
    pub cert: PathBuf,
    /// A scratch directory for downloads.
    pub scratch: PathBuf,
}

impl FtpsUser {
    /// A user of `p`'s server.
    pub fn new(p: &Passerelle, ports: FtpsPorts, login: &str, password: &str) -> Self {
        let scratch = p.scratch().join(format!("ftps-{login}"));
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        Self { ports, login: login.into(), password: password.into(), cert: p.tls_cert(), scratch }
    }

    /// `curl -sS --cacert CERT -u LOGIN:PASSWORD ARGS...`; in ARGS, `{explicit}` becomes
    /// `ftp://127.0.0.1:PORT` (and `--ssl-reqd` is added) and `{implicit}` `ftps://127.0.0.1:PORT`.
    pub fn curl(&self, args: &[&str]) -> Outcome {
        let mut command = bounded("curl", CLIENT_TIMEOUT_SECS);
        command.args(["-sS", "--connect-timeout", "10", "--max-time", "50", "--cacert"]).arg(&self.cert);
        command.arg("-u").arg(format!("{}:{}", self.login, self.password));
        if args.iter().any(|a| a.contains("{explicit}")) && !args.contains(&"--ftp-ssl-control") {
            command.arg("--ssl-reqd");
        }
        let explicit = format!("ftp://127.0.0.1:{}", self.ports.explicit);
        let implicit = format!("ftps://127.0.0.1:{}", self.ports.implicit);
        command.args(args.iter().map(|a| a.replace("{explicit}", &explicit).replace("{implicit}", &implicit)));
        run_command(&mut command, b"")
    }

    /// Runs an lftp script over explicit FTPS (TLS forced on control and data,
    /// the server certificate trusted); lftp stops at the first failed command.
    pub fn lftp(&self, script: &str) -> Outcome {
        let mut command = bounded("lftp", CLIENT_TIMEOUT_SECS);
        let setup = format!(
            "set cmd:fail-exit true; set net:max-retries 1; set net:timeout 10; set ftp:ssl-force true; \
             set ftp:ssl-protect-data true; set ftp:passive-mode true; set ssl:ca-file {}; \
             open -u {},{} -p {} 127.0.0.1; {script}",
            self.cert.display(),
            self.login,
            self.password,
            self.ports.explicit
        );
        command.arg("-c").arg(setup).env("HOME", &self.scratch);
        run_command(&mut command, b"")
    }

    /// Runs `tests/python/ftps_client.py` with `plan` (port, user and password
    /// filled in; `"mode": "implicit"` picks the implicit port) and returns its report.
    pub fn script(&self, mut plan: serde_json::Value) -> serde_json::Value {
        let implicit = plan["mode"] == "implicit";
        plan["port"] = (if implicit { self.ports.implicit } else { self.ports.explicit }).into();
        if plan.get("user").is_none() {
            plan["user"] = self.login.clone().into();
            plan["password"] = self.password.clone().into();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/ftps_client.py");
        let mut command = bounded("python3", CLIENT_TIMEOUT_SECS);
        command.arg(script);
        let out = run_command(&mut command, plan.to_string().as_bytes());
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!("ftps script gave no report ({e}), exit {}:\n{}\n{}", out.code, out.stdout, out.stderr)
        })
    }
}
