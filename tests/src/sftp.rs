//! SFTP clients customers use (OpenSSH `sftp`, `scp`, `ssh`, curl,
//! paramiko) driven against a running server, and OpenSSH keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::installation::Passerelle;
use crate::tools::{CLIENT_TIMEOUT_SECS, Outcome, bounded, python, python_report, run_command};

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
    /// A known_hosts file the server's host key must be in (OpenSSH's
    /// `StrictHostKeyChecking=yes`); no check when `None`.
    pub known_hosts: Option<PathBuf>,
}

/// The `-o` options of every OpenSSH client: bounded, no agent.
const COMMON_SSH_OPTIONS: [&str; 6] = [
    "ConnectTimeout=10",
    "GlobalKnownHostsFile=/dev/null",
    "LogLevel=ERROR",
    "IdentityAgent=none",
    "ServerAliveInterval=10",
    "ServerAliveCountMax=3",
];

impl SftpUser {
    /// A user that logs in with the private key `key`.
    pub fn with_key(port: u16, login: &str, key: &Path, scratch: &Path) -> Self {
        Self {
            port,
            login: login.into(),
            auth: ClientAuth::Key(key.into()),
            scratch: scratch.into(),
            source: None,
            known_hosts: None,
        }
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
            known_hosts: None,
        }
    }

    /// The same user, connecting from the loopback address `source`.
    pub fn from_address(mut self, source: &str) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The same user, checking the server's host key against `file`
    /// (OpenSSH: `StrictHostKeyChecking=yes`, `UserKnownHostsFile=file`).
    pub fn checking_host_key(mut self, file: &Path) -> Self {
        self.known_hosts = Some(file.into());
        self
    }

    /// `login@127.0.0.1`.
    pub fn destination(&self) -> String {
        format!("{}@127.0.0.1", self.login)
    }

    /// The `-o` options every OpenSSH client gets: bounded, no agent, host
    /// keys checked only against [`SftpUser::known_hosts`], and only this
    /// user's credentials.
    pub fn ssh_options(&self) -> Vec<String> {
        let mut options: Vec<String> = COMMON_SSH_OPTIONS.iter().map(ToString::to_string).collect();
        match &self.known_hosts {
            Some(file) => {
                options.extend(["StrictHostKeyChecking=yes".into(), format!("UserKnownHostsFile={}", file.display())])
            }
            None => options.extend(["StrictHostKeyChecking=no".into(), "UserKnownHostsFile=/dev/null".into()]),
        }
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
    pub fn paramiko_plan(&self, plan: serde_json::Value) -> serde_json::Value {
        python_report(python(), "sftp_client.py", &self.filled_plan(plan), "paramiko")
    }

    /// Runs `tests/python/asyncssh_client.py` (asyncssh's SFTP client) with a
    /// plan of the same form as [`SftpUser::paramiko_plan`]'s, filled in the same way.
    pub fn asyncssh_plan(&self, plan: serde_json::Value) -> serde_json::Value {
        python_report(python(), "asyncssh_client.py", &self.filled_plan(plan), "asyncssh")
    }

    /// `plan` with this user's port, login, source address and credentials.
    fn filled_plan(&self, mut plan: serde_json::Value) -> serde_json::Value {
        plan["port"] = self.port.into();
        plan["user"] = self.login.clone().into();
        if let Some(source) = &self.source {
            plan["source"] = source.clone().into();
        }
        match &self.auth {
            ClientAuth::Key(key) => plan["key"] = key.display().to_string().into(),
            ClientAuth::Password { password, .. } => plan["password"] = password.clone().into(),
        }
        plan
    }
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

/// Generates an ed25519 key for `login`, registers it with `key add` and
/// returns the private key file.
pub(crate) fn add_user_key(p: &Passerelle, login: &str) -> PathBuf {
    let public = ssh_keygen(&p.scratch(), &format!("id_{login}"), "ed25519", None, &format!("{login}@test"));
    p.ok(&["key", "add", login, &public.display().to_string()]);
    p.scratch().join(format!("id_{login}"))
}

/// Writes what `passerelle hostkey show --known-hosts` prints (a line per
/// host key for `[127.0.0.1]:PORT`, then the TLS fingerprint as a comment)
/// to a file of the scratch directory, as an operator hands it to a
/// client, and returns the file.
pub fn known_hosts_file(p: &Passerelle) -> PathBuf {
    let text = p.ok(&["hostkey", "show", "--known-hosts"]);
    let host = format!("[127.0.0.1]:{} ", p.sftp_port());
    let keys = text.lines().filter(|l| l.starts_with(&host)).count();
    assert_eq!(keys, 2, "one line per host key (ed25519, RSA):\n{text}");
    assert!(text.lines().all(|l| l.starts_with(&host) || l.starts_with("# ")), "only keys and comments:\n{text}");
    let file = p.scratch().join(format!("known_hosts-{:08x}", rand::random::<u32>()));
    std::fs::write(&file, text).expect("write known_hosts");
    file
}
