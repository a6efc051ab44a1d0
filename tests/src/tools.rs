//! Running the command-line tools the tests use (clients, `sqlite3`,
//! `sha256sum`...), every client bounded in time.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long any one client invocation may run before it is killed.
pub const CLIENT_TIMEOUT_SECS: u32 = 60;

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

/// `timeout -k 5 <secs> PROGRAM`: the program and everything it starts are
/// killed after `secs` seconds (exit code 124 or 137 then).
pub fn bounded(program: impl AsRef<std::ffi::OsStr>, secs: u32) -> Command {
    let mut command = Command::new("timeout");
    command.args(["-k", "5", &secs.to_string()]).arg(program);
    command.env_remove("SSH_AUTH_SOCK");
    command
}

/// Whether `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The workspace root (the parent of `tests/`).
fn workspace_root() -> PathBuf {
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

/// Runs `tests/python/login_burst.py` (paramiko): `plan["connections"]`
/// password logins at once, spread over `plan["users"]` and `plan["sources"]`; returns its
/// report (outcomes counted, wall time).
pub fn login_burst(plan: &serde_json::Value) -> serde_json::Value {
    python_report(python(), "login_burst.py", plan, "login burst")
}

/// A script of `tests/python/`.
pub(crate) fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// Runs a script of `tests/python/` with `interpreter`, `plan` as its JSON
/// input, and returns the JSON report it prints; `what` names it in a panic.
pub(crate) fn python_report(
    interpreter: impl AsRef<std::ffi::OsStr>,
    script: &str,
    plan: &serde_json::Value,
    what: &str,
) -> serde_json::Value {
    let mut command = bounded(interpreter, CLIENT_TIMEOUT_SECS);
    command.arg(python_script(script));
    let out = run_command(&mut command, plan.to_string().as_bytes());
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!("{what} script gave no report ({e}), exit {}:\n{}\n{}", out.code, out.stdout, out.stderr)
    })
}

/// Runs `sqlite3 -batch FILE SQL` and returns its output; panics on failure.
pub fn sqlite3(file: &Path, sql: &str) -> String {
    let out = Outcome::from(
        Command::new("sqlite3").arg("-batch").arg(file).arg(sql).output().expect("sqlite3 must be installed"),
    );
    assert!(out.success(), "sqlite3 {} {sql:?} failed: {}", file.display(), out.stderr);
    out.stdout
}

/// SHA-256 of a file as `sha256sum` prints it (lower-case hex).
pub fn sha256sum(path: &Path) -> String {
    let out = Outcome::from(Command::new("sha256sum").arg(path).output().expect("sha256sum"));
    assert!(out.success(), "sha256sum {}: {}", path.display(), out.stderr);
    out.stdout.split_whitespace().next().expect("sha256sum output").to_owned()
}
