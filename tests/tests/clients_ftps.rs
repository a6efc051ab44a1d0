//! FTPS conformance: each client a script is written with does the whole
//! conformance scenario (`conformance.rs`) over real TLS, the server's
//! certificate verified wherever the client can: rclone's ftp backend (the
//! current one, as shipped, and Debian 12's 1.60 with
//! `ftps.require_extended_master_secret` off, both explicit and implicit),
//! lftp and curl (explicit and implicit), and Python's ftplib with
//! `examples/ftplib_reuse.py`. Every data connection must resume the control
//! connection's TLS session (`ftps.require_session_reuse`, on by default), so
//! each transfer that succeeds is one that resumed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_tests::{
    CLIENT_TIMEOUT_SECS, CONFORMANCE_LOGIN, CONFORMANCE_PASSWORD, ClientScript, Fixture, FtpsUser, Outcome,
    RECEIPT_POLL_MILLIS, RECEIPT_POLLS, bounded, conformance_setup, python, run_command, venv_tool,
};

/// Implicit (TLS from the first byte) or explicit (AUTH TLS) FTPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Explicit,
    Implicit,
}

/// What the scenario asks of a client; every call is one client run.
trait FtpsClient {
    /// Uploads `local` to `remote`.
    fn upload(&self, local: &Path, remote: &str) -> Outcome;
    /// Prints `remote` on standard output.
    fn cat(&self, remote: &str) -> Outcome;
    /// Lists `dir`, names on standard output.
    fn list(&self, dir: &str) -> Outcome;
    /// Downloads `remote` to `local`.
    fn download(&self, remote: &str, local: &Path) -> Outcome;
    /// Deletes `remote`.
    fn delete(&self, remote: &str) -> Outcome;
}

fn ok(what: &str, out: Outcome) -> Outcome {
    assert!(out.success(), "{what} failed (exit {}):\n{}\n{}", out.code, out.stdout, out.stderr);
    out
}

/// The conformance scenario, one client run per step.
fn scenario(f: &Fixture, name: &str, client: &impl FtpsClient) {
    let script = ClientScript::new(name);
    let work = f.work(name);
    let (csv, temporary) = script.local_files(&work);
    ok("upload", client.upload(&csv, &script.upload_path()));
    let receipt = (0..RECEIPT_POLLS)
        .find_map(|_| {
            let out = client.cat(&script.receipt_path());
            if out.success() && !out.stdout.is_empty() {
                return Some(out.stdout);
            }
            std::thread::sleep(Duration::from_millis(RECEIPT_POLL_MILLIS));
            None
        })
        .expect("the receipt appears");
    script.check_receipt(receipt.as_bytes());
    script.check_listing(&ok("list", client.list(script.receipt_dir())).stdout);
    let downloaded = work.join("downloaded.json");
    ok("download", client.download(&script.receipt_path(), &downloaded));
    ok("temporary upload", client.upload(&temporary, &script.temporary_path()));
    ok("delete", client.delete(&script.temporary_path()));
    script.check_server(f, &downloaded);
}

/// rclone's ftp backend (Go's crypto/tls), configured by environment, the
/// server's certificate trusted through `SSL_CERT_FILE` (Go reads it for
/// its system roots; rclone's ftp backend has no CA option).
struct Rclone {
    binary: PathBuf,
    user: FtpsUser,
    mode: Mode,
    obscured: String,
}

impl Rclone {
    fn new(binary: PathBuf, user: FtpsUser, mode: Mode) -> Self {
        let out = ok("rclone obscure", run_command(bounded(&binary, 20).args(["obscure", &user.password]), b""));
        Self { binary, user, mode, obscured: out.stdout.trim().to_owned() }
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let mut command = bounded(&self.binary, CLIENT_TIMEOUT_SECS);
        let port = match self.mode {
            Mode::Explicit => self.user.ports.explicit,
            Mode::Implicit => self.user.ports.implicit,
        };
        let tls = if self.mode == Mode::Explicit { "RCLONE_FTP_EXPLICIT_TLS" } else { "RCLONE_FTP_TLS" };
        command
            .env("RCLONE_CONFIG", self.user.scratch.join("rclone.conf"))
            .env("SSL_CERT_FILE", &self.user.cert)
            .env("RCLONE_FTP_HOST", "127.0.0.1")
            .env("RCLONE_FTP_PORT", port.to_string())
            .env("RCLONE_FTP_USER", &self.user.login)
            .env("RCLONE_FTP_PASS", &self.obscured)
            .env(tls, "true")
            .args(["--low-level-retries", "1", "--retries", "1", "--contimeout", "10s", "--timeout", "30s"])
            .args(args);
        run_command(&mut command, b"")
    }

    fn remote(path: &str) -> String {
        format!(":ftp:{}", path.trim_start_matches('/'))
    }
}

impl FtpsClient for Rclone {
    fn upload(&self, local: &Path, remote: &str) -> Outcome {
        self.run(&["copyto", &local.display().to_string(), &Self::remote(remote)])
    }

    fn cat(&self, remote: &str) -> Outcome {
        self.run(&["cat", &Self::remote(remote)])
    }

    fn list(&self, dir: &str) -> Outcome {
        self.run(&["lsf", &Self::remote(dir)])
    }

    fn download(&self, remote: &str, local: &Path) -> Outcome {
        self.run(&["copyto", &Self::remote(remote), &local.display().to_string()])
    }

    fn delete(&self, remote: &str) -> Outcome {
        self.run(&["deletefile", &Self::remote(remote)])
    }
}

/// lftp, the server's certificate verified.
struct Lftp {
    user: FtpsUser,
    mode: Mode,
}

impl Lftp {
    fn run(&self, command: &str) -> Outcome {
        let out = match self.mode {
            Mode::Explicit => self.user.lftp(command),
            Mode::Implicit => self.user.lftp_implicit(command),
        };
        // lftp may exit 0 after a failed command when it prints its error.
        if out.success() && out.stderr.contains("Fatal error") {
            return Outcome { code: 1, ..out };
        }
        out
    }
}

impl FtpsClient for Lftp {
    fn upload(&self, local: &Path, remote: &str) -> Outcome {
        self.run(&format!("put {} -o {remote}", local.display()))
    }

    fn cat(&self, remote: &str) -> Outcome {
        // With `cmd:fail-exit` on, lftp 4.9 hangs at its exit after a `cat`
        // of a missing file (against vsftpd too) until the client timeout: a
        // poll for a receipt not written yet took 60 s. Off, it exits 1 at once.
        self.run(&format!("set cmd:fail-exit false; cat {remote}"))
    }

    fn list(&self, dir: &str) -> Outcome {
        self.run(&format!("cls -1 {dir}/"))
    }

    fn download(&self, remote: &str, local: &Path) -> Outcome {
        self.run(&format!("get {remote} -o {}", local.display()))
    }

    fn delete(&self, remote: &str) -> Outcome {
        self.run(&format!("rm {remote}"))
    }
}

/// curl with `--cacert`: `ftps://` (implicit) or `ftp://` with `--ssl-reqd`.
struct Curl {
    user: FtpsUser,
    mode: Mode,
}

impl Curl {
    fn url(&self, path: &str) -> String {
        let base = if self.mode == Mode::Explicit { "{explicit}" } else { "{implicit}" };
        format!("{base}{path}")
    }
}

impl FtpsClient for Curl {
    fn upload(&self, local: &Path, remote: &str) -> Outcome {
        self.user.curl(&["-T", &local.display().to_string(), &self.url(remote)])
    }

    fn cat(&self, remote: &str) -> Outcome {
        self.user.curl(&[&self.url(remote)])
    }

    fn list(&self, dir: &str) -> Outcome {
        self.user.curl(&["--list-only", &self.url(&format!("{dir}/"))])
    }

    fn download(&self, remote: &str, local: &Path) -> Outcome {
        self.user.curl(&["-o", &local.display().to_string(), &self.url(remote)])
    }

    fn delete(&self, remote: &str) -> Outcome {
        // The command before a listing of the folder.
        let (dir, _) = remote.rsplit_once('/').expect("an absolute path");
        self.user.curl(&["-Q", &format!("DELE {remote}"), "--list-only", &self.url(&format!("{dir}/"))])
    }
}

// One installation per run: the same CSV twice in one tenant is a duplicate.

fn rclone_scenario(binary: PathBuf, envs: &[(&str, &str)], name: &str) {
    for mode in [Mode::Explicit, Mode::Implicit] {
        let f = conformance_setup().envs(envs).serve();
        let client = Rclone::new(binary.clone(), f.ftps(CONFORMANCE_LOGIN), mode);
        scenario(&f, &format!("{name}-{mode:?}").to_lowercase(), &client);
    }
}

#[test]
fn rclone_current_explicit_and_implicit_as_shipped() {
    rclone_scenario(venv_tool("rclone", "rclone"), &[], "rclone-current");
}

#[test]
fn rclone_debian_explicit_and_implicit_with_ems_off() {
    // Go 1.19 (Debian 12's rclone 1.60) sends no extended master secret.
    rclone_scenario(
        PathBuf::from("/usr/bin/rclone"),
        &[("PASSERELLE_FTPS_REQUIRE_EXTENDED_MASTER_SECRET", "false")],
        "rclone-debian",
    );
}

#[test]
fn lftp_explicit_and_implicit_verifying_the_certificate() {
    for mode in [Mode::Explicit, Mode::Implicit] {
        let f = conformance_setup().serve();
        scenario(&f, &format!("lftp-{mode:?}").to_lowercase(), &Lftp { user: f.ftps(CONFORMANCE_LOGIN), mode });
    }
}

#[test]
fn curl_explicit_and_implicit_verifying_the_certificate() {
    for mode in [Mode::Explicit, Mode::Implicit] {
        let f = conformance_setup().serve();
        scenario(&f, &format!("curl-{mode:?}").to_lowercase(), &Curl { user: f.ftps(CONFORMANCE_LOGIN), mode });
    }
}

/// `examples/ftplib_reuse.py` as a user runs it: the whole scenario in one
/// run, resuming by session ticket (Python's default) then by session ID.
#[test]
fn python_ftplib_with_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ftplib_reuse.py");
    for (name, extra) in [("ftplib-tickets", None), ("ftplib-session-ids", Some("--no-tickets"))] {
        let f = conformance_setup().serve();
        let script = ClientScript::new(name);
        let work = f.work(name);
        let (csv, _) = script.local_files(&work);
        let user = f.ftps(CONFORMANCE_LOGIN);
        let mut command = bounded(python(), CLIENT_TIMEOUT_SECS * 2);
        command
            .arg(&example)
            .args(["--host", "127.0.0.1", "--port", &user.ports.explicit.to_string(), "--user", CONFORMANCE_LOGIN])
            .arg("--cafile")
            .arg(&user.cert)
            .arg("--csv")
            .arg(&csv)
            .arg("--out")
            .arg(&work)
            .args(["--polls", &RECEIPT_POLLS.to_string()])
            .args(["--pause", &(RECEIPT_POLL_MILLIS as f64 / 1000.0).to_string()])
            .args(extra)
            .env("FTPS_PASSWORD", CONFORMANCE_PASSWORD);
        let report = ok(name, run_command(&mut command, b"")).json();
        script.check_receipt(report["receipt"].as_str().expect("receipt").as_bytes());
        let listing = report["listing"].as_array().expect("listing");
        script.check_listing(&listing.iter().filter_map(|n| n.as_str()).collect::<Vec<_>>().join("\n"));
        script.check_server(&f, Path::new(report["downloaded"].as_str().expect("downloaded")));
    }
}

/// Plain `ftplib.FTP_TLS` (no session reuse): each transfer gets a clean
/// 425 saying why, no TLS error (`SHUTDOWN_WHILE_IN_INIT` on NLST, a broken
/// pipe on STOR), and the session goes on.
#[test]
fn python_ftplib_without_session_reuse_gets_a_clean_425() {
    const PLAIN: &str = r#"
import ftplib, io, ssl, sys
port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cafile), timeout=20)
ftp.connect("127.0.0.1", port)
ftp.login("alice", password)
ftp.prot_p()
for op in (lambda: ftp.storbinary("STOR /inbox/plain.tmp", io.BytesIO(b"x" * 100000)), lambda: ftp.nlst("/inbox")):
    try:
        op()
        print("accepted")
    except ftplib.error_temp as e:
        print(str(e).split(" ")[0])
print(ftp.voidcmd("NOOP").split(" ")[0])
ftp.quit()
"#;
    let f = conformance_setup().serve();
    let user = f.ftps(CONFORMANCE_LOGIN);
    let mut command = bounded(python(), CLIENT_TIMEOUT_SECS);
    command.args(["-c", PLAIN, &user.ports.explicit.to_string()]).arg(&user.cert).arg(CONFORMANCE_PASSWORD);
    let out = ok("ftplib without reuse", run_command(&mut command, b""));
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["425", "425", "200"], "{}", out.stderr);
}

/// ftplib with the example's subclass offers the control connection's
/// session on every data connection, however many there are: that session
/// (ticket or session ID) must outlast the newer ones data connections get.
#[test]
fn python_ftplib_resumes_the_control_session_on_many_data_connections() {
    const MANY: &str = r#"
import sys
sys.path.insert(0, sys.argv[4])
import ftplib_reuse
port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for tickets in (True, False):
    ftp = ftplib_reuse.connect("127.0.0.1", port, "alice", password, cafile, tickets)
    for _ in range(20):
        ftp.nlst("/inbox")
    ftp.quit()
print("ok")
"#;
    let f = conformance_setup().serve();
    let user = f.ftps(CONFORMANCE_LOGIN);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut command = bounded(python(), CLIENT_TIMEOUT_SECS);
    command
        .args(["-c", MANY, &user.ports.explicit.to_string()])
        .arg(&user.cert)
        .arg(CONFORMANCE_PASSWORD)
        .arg(&examples);
    let out = ok("40 listings", run_command(&mut command, b""));
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
}
