//! The logged-in state: filesystem commands through the engine's session
//! (every path through `TenantFs::resolve`, every change audited) and the
//! transfers of `transfer.rs`.
//!
//! Uploads are atomic, as over SFTP: `APPE` and `REST` before `STOR` are
//! refused (a file is never edited in place, so the import pipeline never
//! sees half of one); `REST` before `RETR` resumes a download.

use std::time::Duration;

use super::control::{Context, Control, Protection, common};
use super::line::{Command, Line};
use super::listing;
use super::passive::{PassivePort, pasv_address};
use super::reply::{Reply, quoted};
use super::transfer::{self, Job, ListKind};
use crate::engine::fs::{FsError, TenantPath};
use crate::engine::{Overwrite, Session};

/// Longest a filesystem command may take before it is answered with a
/// failure (transfers have their own stall timeout instead).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

const NO_RESUME: &str = "uploads are atomic; append/resume of uploads is not supported";

/// One logged-in control connection.
pub(super) struct LoggedIn<'a> {
    ctx: &'a Context,
    session: Session,
    protection: Protection,
    cwd: TenantPath,
    /// Offset from REST, for the next RETR.
    rest: u64,
    /// Source of a rename, set by RNFR for the next command only.
    rename_from: Option<TenantPath>,
    passive: Option<PassivePort>,
    /// After `EPSV ALL`, only EPSV may set up data connections (RFC 2428 §4).
    epsv_only: bool,
}

/// The filesystem changes of DELE, RMD and MKD.
#[derive(Clone, Copy)]
enum Change {
    Delete,
    Rmdir,
    Mkdir,
}

/// What the loop does after a command.
pub(super) enum Next {
    /// Read the next command.
    Continue,
    /// This line arrived during a transfer: handle it now.
    Pending(Vec<u8>),
    /// Close the connection.
    Close,
}

impl<'a> LoggedIn<'a> {
    /// A session standing at `/`.
    pub(super) fn new(ctx: &'a Context, session: Session, protection: Protection) -> Self {
        Self {
            ctx,
            session,
            protection,
            cwd: TenantPath::root(),
            rest: 0,
            rename_from: None,
            passive: None,
            epsv_only: false,
        }
    }

    /// Serves commands until QUIT, disconnection, idle timeout or shutdown.
    pub(super) async fn run(mut self, control: &mut Control) {
        let idle = self.ctx.engine.config().limits.idle_timeout;
        let mut stop = self.ctx.stop.clone();
        let mut pending = None;
        loop {
            let line = match pending.take() {
                Some(bytes) => Line::Command(bytes),
                None => {
                    let next = tokio::select! {
                        next = tokio::time::timeout(idle, control.next()) => next,
                        _ = stop.changed() => {
                            let _ = control.reply(Reply::new(421, "server shutting down")).await;
                            return;
                        }
                    };
                    match next {
                        Ok(Ok(line)) => line,
                        Ok(Err(_)) => return,
                        Err(_) => {
                            let _ = control.reply(Reply::new(421, "idle timeout")).await;
                            return;
                        }
                    }
                }
            };
            let next = match line {
                Line::Closed => return,
                Line::TooLong => self.reply(control, Reply::new(500, "command line too long")).await,
                Line::Command(bytes) => match Command::parse(&bytes) {
                    None => self.reply(control, Reply::new(500, "syntax error")).await,
                    Some(cmd) => self.command(control, cmd).await,
                },
            };
            match next {
                Next::Continue => {}
                Next::Pending(bytes) => pending = Some(bytes),
                Next::Close => return,
            }
        }
    }

    async fn reply(&self, control: &mut Control, reply: Reply) -> Next {
        match control.reply(reply).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }

    async fn command(&mut self, control: &mut Control, cmd: Command) -> Next {
        // RNFR holds only for the command right after it.
        let rename_from = self.rename_from.take();
        match cmd.verb.as_str() {
            "QUIT" => {
                let _ = control.reply(Reply::new(221, "goodbye")).await;
                return Next::Close;
            }
            "RETR" | "LIST" | "NLST" | "MLSD" | "STOR" => return self.transfer(control, &cmd).await,
            "RNTO" => {
                let reply = match rename_from {
                    Some(from) => bounded(self.rename(&from, &cmd.arg)).await,
                    None => Reply::new(503, "send RNFR first"),
                };
                return self.reply(control, reply).await;
            }
            _ => {}
        }
        let reply = match common(&cmd, &mut self.protection) {
            Some(reply) => reply,
            None => bounded(self.simple(&cmd)).await,
        };
        if cmd.verb == "RNFR" && reply.code() == 350 {
            self.rename_from = self.resolve(&cmd.arg).ok();
        }
        self.reply(control, reply).await
    }

    fn resolve(&self, raw: &[u8]) -> Result<TenantPath, FsError> {
        self.session.resolve(&self.cwd, raw)
    }

    /// Commands that answer on the control connection alone.
    async fn simple(&mut self, cmd: &Command) -> Reply {
        let session = &self.session;
        match cmd.verb.as_str() {
            "USER" | "PASS" => Reply::new(503, "already logged in"),
            "PWD" | "XPWD" => {
                Reply::new(257, format!("{} is the current directory", quoted(&self.cwd.to_client_string())))
            }
            "CWD" | "XCWD" | "CDUP" | "XCUP" => {
                let raw: &[u8] = if cmd.verb.ends_with("UP") { b".." } else { &cmd.arg };
                match self.resolve(raw) {
                    Ok(path) => match session.stat(&path).await {
                        Ok(stat) if stat.is_dir => {
                            self.cwd = path;
                            Reply::new(250, format!("now in {}", quoted(&self.cwd.to_client_string())))
                        }
                        Ok(_) => fs_reply(&FsError::NotADirectory),
                        Err(e) => fs_reply(&e),
                    },
                    Err(e) => fs_reply(&e),
                }
            }
            "TYPE" => match cmd.arg_text().to_ascii_uppercase().as_str() {
                // ASCII is accepted and transfers stay byte for byte (as
                // vsftpd's default): an import must see the file as it was.
                "A" | "A N" | "I" | "L 8" => Reply::new(200, "type set"),
                _ => Reply::new(504, "only TYPE I (and A, transferred unchanged)"),
            },
            "MODE" if cmd.arg_text().eq_ignore_ascii_case("S") => Reply::new(200, "mode S"),
            "MODE" => Reply::new(504, "only MODE S"),
            "STRU" if cmd.arg_text().eq_ignore_ascii_case("F") => Reply::new(200, "structure F"),
            "STRU" => Reply::new(504, "only STRU F"),
            "PASV" | "EPSV" => self.passive(cmd).await,
            "PORT" | "EPRT" => {
                Reply::new(502, "active mode is refused (it allows FTP bounce attacks); use PASV or EPSV")
            }
            "APPE" => Reply::new(502, NO_RESUME),
            "REST" => match cmd.arg_text().parse::<u64>() {
                Ok(offset) => {
                    self.rest = offset;
                    Reply::new(350, format!("restarting at {offset} (downloads only: {NO_RESUME})"))
                }
                Err(_) => Reply::new(501, "REST takes a byte offset"),
            },
            "ABOR" => Reply::new(225, "no transfer to abort"),
            "SIZE" => match self.resolve(&cmd.arg) {
                Ok(path) => match session.stat(&path).await {
                    Ok(stat) if !stat.is_dir => Reply::new(213, stat.size.to_string()),
                    Ok(_) => Reply::new(550, "not a plain file"),
                    Err(e) => fs_reply(&e),
                },
                Err(e) => fs_reply(&e),
            },
            "MDTM" => match self.resolve(&cmd.arg) {
                Ok(path) => match session.stat(&path).await {
                    Ok(stat) => Reply::new(213, listing::timeval(stat.modified)),
                    Err(e) => fs_reply(&e),
                },
                Err(e) => fs_reply(&e),
            },
            "MLST" => match self.resolve(&cmd.arg) {
                Ok(path) => match session.stat(&path).await {
                    Ok(stat) => {
                        let line = listing::facts(&path.to_client_string(), &stat, &path);
                        Reply::multi(250, "Listing", [line], "End")
                    }
                    Err(e) => fs_reply(&e),
                },
                Err(e) => fs_reply(&e),
            },
            "STAT" if cmd.arg.is_empty() => Reply::multi(
                211,
                "passerelle FTPS status",
                [format!("logged in as {}", self.session.login()), "TLS on control and data".to_owned()],
                "End",
            ),
            "STAT" => match self.resolve(&cmd.arg) {
                Ok(path) => match transfer::listing_lines(&self.session, &path, ListKind::List).await {
                    Ok(lines) => Reply::multi(213, "Status follows", lines, "End"),
                    Err(e) => fs_reply(&e),
                },
                Err(e) => fs_reply(&e),
            },
            "DELE" => self.change(Change::Delete, &cmd.arg).await,
            "RMD" | "XRMD" => self.change(Change::Rmdir, &cmd.arg).await,
            "MKD" | "XMKD" => self.change(Change::Mkdir, &cmd.arg).await,
            "RNFR" => match self.resolve(&cmd.arg) {
                Ok(path) => match session.stat(&path).await {
                    Ok(_) => Reply::new(350, "ready for RNTO"),
                    Err(e) => fs_reply(&e),
                },
                Err(e) => fs_reply(&e),
            },
            _ => Reply::new(502, "command not implemented"),
        }
    }

    /// DELE, RMD, MKD: one audited change.
    async fn change(&self, change: Change, raw: &[u8]) -> Reply {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_reply(&e),
        };
        let (done, result) = match change {
            Change::Delete => ("delete done", self.session.remove(&path).await),
            Change::Rmdir => ("rmdir done", self.session.rmdir(&path).await),
            Change::Mkdir => ("mkdir done", self.session.mkdir(&path).await),
        };
        match (result, change) {
            (Ok(()), Change::Mkdir) => Reply::new(257, format!("{} created", quoted(&path.to_client_string()))),
            (Ok(()), _) => Reply::new(250, done),
            (Err(e), _) => fs_reply(&e),
        }
    }

    /// RNTO: replaces an existing target file, as most FTP servers do.
    async fn rename(&self, from: &TenantPath, raw: &[u8]) -> Reply {
        let to = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_reply(&e),
        };
        match self.session.rename(from, &to, Overwrite::Replace).await {
            Ok(()) => Reply::new(250, "renamed"),
            Err(e) => fs_reply(&e),
        }
    }

    /// PASV and EPSV: a new data port, replacing any previous one.
    async fn passive(&mut self, cmd: &Command) -> Reply {
        let epsv = cmd.verb == "EPSV";
        if epsv && cmd.arg_text().eq_ignore_ascii_case("ALL") {
            self.epsv_only = true;
            return Reply::new(200, "EPSV ALL ok");
        }
        if !epsv && self.epsv_only {
            return Reply::new(503, "EPSV ALL is in effect: use EPSV");
        }
        self.passive = None;
        let ip = self.ctx.local_ip;
        if !epsv && pasv_address(ip, 0).is_none() {
            return Reply::new(425, "PASV needs IPv4; use EPSV");
        }
        let port = match PassivePort::open(ip, &self.ctx.engine.config().ftps.passive_ports).await {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(error = %e, "ftps: no passive port");
                return Reply::new(425, "no data port available");
            }
        };
        let reply = if epsv {
            Reply::new(229, format!("Entering Extended Passive Mode (|||{}|)", port.port()))
        } else {
            let address = pasv_address(ip, port.port()).unwrap_or_default();
            Reply::new(227, format!("Entering Passive Mode ({address})"))
        };
        self.passive = Some(port);
        reply
    }

    /// RETR, STOR, LIST, NLST, MLSD.
    async fn transfer(&mut self, control: &mut Control, cmd: &Command) -> Next {
        // REST applies to the next transfer only, whatever it is.
        let rest = std::mem::take(&mut self.rest);
        if matches!(cmd.verb.as_str(), "RETR" | "STOR") && cmd.arg.is_empty() {
            return self.reply(control, Reply::new(501, "a file name is required")).await;
        }
        if !self.protection.private {
            return self
                .reply(control, Reply::new(521, "send PBSZ 0 and PROT P first: data is always encrypted"))
                .await;
        }
        if self.passive.is_none() {
            return self.reply(control, Reply::new(425, "send PASV or EPSV first")).await;
        }
        // A refused transfer keeps the passive port: the client may have
        // connected to it already, and resetting that connection makes some
        // clients (curl) report a bad PASV reply instead of the refusal.
        let job = match self.prepare(cmd, rest).await {
            Ok(job) => job,
            Err(reply) => return self.reply(control, reply).await,
        };
        let Some(port) = self.passive.take() else {
            return self.reply(control, Reply::new(425, "send PASV or EPSV first")).await;
        };
        let data = transfer::DataSide {
            port,
            client: self.ctx.peer.ip().to_canonical(),
            tls: &self.ctx.tls,
            require_reuse: self.ctx.engine.config().ftps.require_session_reuse,
            stall: self.ctx.engine.config().limits.idle_timeout,
        };
        transfer::run(&self.session, control, data, job).await
    }

    /// Checks and opens what a transfer needs, before the 150 reply.
    async fn prepare(&self, cmd: &Command, rest: u64) -> Result<Job, Reply> {
        match cmd.verb.as_str() {
            "STOR" => {
                if rest > 0 {
                    return Err(Reply::new(504, NO_RESUME));
                }
                let path = self.resolve(&cmd.arg).map_err(|e| fs_reply(&e))?;
                let file = self.session.create_upload(&path, false).await.map_err(|e| fs_reply(&e))?;
                Ok(Job::Upload(file))
            }
            "RETR" => {
                let path = self.resolve(&cmd.arg).map_err(|e| fs_reply(&e))?;
                let file = self.session.open_download(&path).await.map_err(|e| fs_reply(&e))?;
                Ok(Job::Download { file, offset: rest })
            }
            verb => {
                let path = self.resolve(&listing_path(&cmd.arg)).map_err(|e| fs_reply(&e))?;
                let kind = match verb {
                    "LIST" => ListKind::List,
                    "NLST" => ListKind::Nlst,
                    _ => ListKind::Mlsd,
                };
                let lines = transfer::listing_lines(&self.session, &path, kind).await.map_err(|e| fs_reply(&e))?;
                let mut text = String::new();
                for line in lines {
                    text.push_str(&line);
                    text.push_str("\r\n");
                }
                Ok(Job::Listing { text: text.into_bytes() })
            }
        }
    }
}

/// Runs a filesystem command under [`COMMAND_TIMEOUT`].
async fn bounded(work: impl Future<Output = Reply>) -> Reply {
    tokio::time::timeout(COMMAND_TIMEOUT, work).await.unwrap_or_else(|_| Reply::new(451, "command timed out"))
}

/// The path of `LIST -la /x` and the like: `ls` options are skipped, as
/// clients send them though RFC 959 knows none.
fn listing_path(arg: &[u8]) -> Vec<u8> {
    let mut rest = arg;
    while rest.first() == Some(&b'-') {
        match rest.iter().position(|&b| b == b' ') {
            Some(space) => rest = &rest[space + 1..],
            None => rest = &[],
        }
    }
    rest.to_vec()
}

/// The reply for a filesystem error, with the engine's wording for it.
pub(super) fn fs_reply(e: &FsError) -> Reply {
    let code = match e {
        FsError::InvalidPath(_) => 553,
        FsError::NoSpace => 452,
        FsError::Io(_) => 451,
        _ => 550,
    };
    Reply::new(code, e.client_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_options_are_skipped() {
        assert_eq!(listing_path(b"-la /inbox"), b"/inbox");
        assert_eq!(listing_path(b"-a"), b"");
        assert_eq!(listing_path(b"inbox"), b"inbox");
    }
}
