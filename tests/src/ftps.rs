//! FTPS clients (curl, lftp and a scripted Python client) driven against a
//! running server, every invocation bounded in time.

use std::path::PathBuf;

use crate::installation::Passerelle;
use crate::tools::{CLIENT_TIMEOUT_SECS, Outcome, bounded, python_report, run_command};

/// The FTPS ports of an installation whose FTPS listeners are on.
#[derive(Clone, Copy, Debug)]
pub struct FtpsPorts {
    /// Explicit FTPS (AUTH TLS) on 127.0.0.1.
    pub explicit: u16,
    /// Implicit FTPS (TLS at once) on 127.0.0.1.
    pub implicit: u16,
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
        Self { ports, login: login.into(), password: password.into(), cert: p.layout().tls_cert(), scratch }
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
    /// the server certificate trusted and verified); lftp stops at the first
    /// failed command.
    pub fn lftp(&self, script: &str) -> Outcome {
        self.lftp_at(&format!("-p {} 127.0.0.1", self.ports.explicit), script)
    }

    /// [`Self::lftp`] over implicit FTPS (`ftps://`).
    pub fn lftp_implicit(&self, script: &str) -> Outcome {
        self.lftp_at(&format!("ftps://127.0.0.1:{}", self.ports.implicit), script)
    }

    fn lftp_at(&self, site: &str, script: &str) -> Outcome {
        let mut command = bounded("lftp", CLIENT_TIMEOUT_SECS);
        let setup = format!(
            "set cmd:fail-exit true; set net:max-retries 1; set net:timeout 10; set ftp:ssl-force true; \
             set ftp:ssl-protect-data true; set ftp:passive-mode true; set ssl:verify-certificate yes; \
             set ssl:ca-file {}; open -u {},{} {site}; {script}",
            self.cert.display(),
            self.login,
            self.password,
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
        python_report("python3", "ftps_client.py", &plan, "ftps")
    }
}
