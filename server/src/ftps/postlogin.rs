//! A connection after login: filesystem commands through the engine's
//! session (every path through `TenantFs::resolve`, every change audited)
//! and the transfers of `transfer.rs`.
//!
//! Uploads are atomic, as over SFTP: `APPE` and `REST` before `STOR` are
//! refused (a file is never edited in place, so the import pipeline never
//! sees half of one); `REST` before `RETR` resumes a download.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::channel::{Context, Control, Input, Next};
use super::common::{self, Protection};
use super::line::{Command, Line};
use super::listing::{self, ListKind, Listing};
use super::passive::{PassivePort, pasv_address};
use super::reply::{Reply, fs_reply, quoted};
use super::transfer::{self, DataSide, Job};
use crate::engine::fs::{FileStat, FsError, TenantPath};
use crate::engine::{Ending, Overwrite, Session};

/// Longest a filesystem command may take before it is answered with a
/// failure (transfers have their own stall timeout instead).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Most entries a `STAT path` reply lists (it is built whole in memory).
const MAX_STAT_LINES: usize = 10_000;
/// Why an upload cannot resume.
const NO_RESUME: &str = "uploads are atomic; append/resume of uploads is not supported";

/// The FTP state of a logged-in connection, over its engine [`Session`].
pub(super) struct FtpSession<'a> {
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

impl<'a> FtpSession<'a> {
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

    /// Serves commands until QUIT, disconnection, idle timeout, shutdown,
    /// or an administrator's change that ends the session.
    pub(super) async fn run(mut self, control: &mut Control) {
        let idle = self.ctx.engine.config().limits.idle_timeout;
        let port_idle = self.ctx.engine.config().ftps.passive_idle_timeout;
        let mut stop = self.ctx.stop.clone();
        let mut ending = self.session.ending();
        let mut pending = None;
        let mut idle_deadline = Instant::now() + idle;
        loop {
            let line = match pending.take() {
                Some(bytes) => Line::Command(bytes),
                None => {
                    let port_deadline = self.passive.as_ref().map(|port| port.opened() + port_idle);
                    match next_line(control, &mut stop, &mut ending, idle_deadline, port_deadline).await {
                        Waited::Line(line) => line,
                        // Unused: back to the pool, for this user and others.
                        Waited::PortIdle => {
                            self.passive = None;
                            continue;
                        }
                        Waited::End => return,
                    }
                }
            };
            // Malformed lines are answered but, once logged in, not abuse.
            let next = match Input::parse(line) {
                Input::Closed => return,
                Input::Malformed(malformed) => control.answer(malformed.reply()).await,
                Input::Command(cmd) => self.command(control, cmd).await,
            };
            match next {
                Next::Continue => {}
                Next::Pending(bytes) => pending = Some(bytes),
                Next::Close => return,
            }
            idle_deadline = Instant::now() + idle;
        }
    }

    async fn command(&mut self, control: &mut Control, cmd: Command) -> Next {
        // RNFR holds only for the command right after it.
        let rename_from = self.rename_from.take();
        match cmd.verb.as_str() {
            "QUIT" => {
                control.last_reply(common::goodbye()).await;
                return Next::Close;
            }
            "RETR" | "LIST" | "NLST" | "MLSD" | "STOR" => return self.transfer(control, &cmd).await,
            "RNTO" => {
                let reply = match rename_from {
                    Some(from) => bounded(self.rename(&from, &cmd.arg)).await,
                    None => Reply::new(503, "send RNFR first"),
                };
                return control.answer(reply).await;
            }
            _ => {}
        }
        let reply = match common::answer(&cmd, &mut self.protection) {
            Some(reply) => reply,
            None => bounded(self.simple(&cmd)).await,
        };
        if cmd.verb == "RNFR" && reply.code() == 350 {
            self.rename_from = self.resolve(&cmd.arg).ok();
        }
        control.answer(reply).await
    }

    /// A path of the client's, resolved from the working directory.
    fn resolve(&self, raw: &[u8]) -> Result<TenantPath, Reply> {
        Ok(self.session.resolve(&self.cwd, raw)?)
    }

    /// A path of the client's and what is there.
    async fn stat(&self, raw: &[u8]) -> Result<(TenantPath, FileStat), Reply> {
        let path = self.resolve(raw)?;
        let stat = self.session.stat(&path).await?;
        Ok((path, stat))
    }

    /// Commands that answer on the control connection alone.
    async fn simple(&mut self, cmd: &Command) -> Reply {
        if let Some(reply) = parameter(cmd) {
            return reply;
        }
        if let Some(reply) = self.state(cmd).await {
            return reply;
        }
        if let Some(reply) = self.path_query(cmd).await {
            return reply;
        }
        let change = match cmd.verb.as_str() {
            "DELE" => Change::Delete,
            "RMD" | "XRMD" => Change::Rmdir,
            "MKD" | "XMKD" => Change::Mkdir,
            _ => return Reply::new(502, "command not implemented"),
        };
        let (Ok(reply) | Err(reply)) = self.change(change, &cmd.arg).await;
        reply
    }

    /// The connection's own state: working directory, REST offset, data
    /// port. `None` for other commands.
    async fn state(&mut self, cmd: &Command) -> Option<Reply> {
        Some(match cmd.verb.as_str() {
            "PWD" | "XPWD" => {
                Reply::new(257, format!("{} is the current directory", quoted(&self.cwd.to_client_string())))
            }
            "CWD" | "XCWD" | "CDUP" | "XCUP" => {
                let raw: &[u8] = if cmd.verb.ends_with("UP") { b".." } else { &cmd.arg };
                let (Ok(reply) | Err(reply)) = self.change_dir(raw).await;
                reply
            }
            "REST" => match cmd.arg_text().parse::<u64>() {
                Ok(offset) => {
                    self.rest = offset;
                    Reply::new(350, format!("restarting at {offset} (downloads only: {NO_RESUME})"))
                }
                Err(_) => Reply::new(501, "REST takes a byte offset"),
            },
            "PASV" | "EPSV" => self.passive(cmd).await,
            _ => return None,
        })
    }

    /// CWD, CDUP: to a directory only.
    async fn change_dir(&mut self, raw: &[u8]) -> Result<Reply, Reply> {
        let (path, stat) = self.stat(raw).await?;
        if !stat.is_dir {
            return Err(fs_reply(&FsError::NotADirectory));
        }
        self.cwd = path;
        Ok(Reply::new(250, format!("now in {}", quoted(&self.cwd.to_client_string()))))
    }

    /// Questions about a path (RNFR's is whether its source exists). `None`
    /// for other commands.
    async fn path_query(&self, cmd: &Command) -> Option<Reply> {
        let answer = match cmd.verb.as_str() {
            "SIZE" => self.stat(&cmd.arg).await.map(|(_, stat)| {
                if stat.is_dir { Reply::new(550, "not a plain file") } else { Reply::new(213, stat.size.to_string()) }
            }),
            "MDTM" => self.stat(&cmd.arg).await.map(|(_, stat)| Reply::new(213, listing::timeval(stat.modified))),
            "MLST" => self.stat(&cmd.arg).await.map(|(path, stat)| {
                let line = listing::facts(&path.to_client_string(), &stat, &path);
                Reply::multi(250, "Listing", [line], "End")
            }),
            "STAT" if cmd.arg.is_empty() => Ok(Reply::multi(
                211,
                "passerelle FTPS status",
                [format!("logged in as {}", self.session.login()), "TLS on control and data".to_owned()],
                "End",
            )),
            "STAT" => self.status_of(&cmd.arg).await,
            "RNFR" => self.stat(&cmd.arg).await.map(|_| Reply::new(350, "ready for RNTO")),
            _ => return None,
        };
        let (Ok(reply) | Err(reply)) = answer;
        Some(reply)
    }

    /// `STAT path`: the `LIST` of the path, on the control connection.
    async fn status_of(&self, raw: &[u8]) -> Result<Reply, Reply> {
        let path = self.resolve(raw)?;
        let mut listing = Listing::open(&self.session, &path, ListKind::List).await?;
        let mut lines = Vec::new();
        loop {
            let batch = listing.next_lines(&self.session).await?;
            if batch.is_empty() {
                break;
            }
            lines.extend(batch);
            // The reply is built whole in memory: a huge directory is cut
            // short here, and listed in full over a data connection.
            if lines.len() >= MAX_STAT_LINES {
                lines.push(format!("(first {} entries only; LIST or MLSD lists all)", lines.len()));
                break;
            }
        }
        Ok(Reply::multi(213, "Status follows", lines, "End"))
    }

    /// DELE, RMD, MKD: one audited change.
    async fn change(&self, change: Change, raw: &[u8]) -> Result<Reply, Reply> {
        let path = self.resolve(raw)?;
        Ok(match change {
            Change::Delete => {
                self.session.remove(&path).await?;
                Reply::new(250, "delete done")
            }
            Change::Rmdir => {
                self.session.rmdir(&path).await?;
                Reply::new(250, "rmdir done")
            }
            Change::Mkdir => {
                self.session.mkdir(&path).await?;
                Reply::new(257, format!("{} created", quoted(&path.to_client_string())))
            }
        })
    }

    /// RNTO: replaces an existing target file, as most FTP servers do.
    async fn rename(&self, from: &TenantPath, raw: &[u8]) -> Reply {
        let to = match self.resolve(raw) {
            Ok(path) => path,
            Err(reply) => return reply,
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
        let ftps = &self.ctx.engine.config().ftps;
        let limit = ftps.max_passive_ports_per_user;
        let Some(lease) = self.ctx.ports.take(self.session.login().as_str(), limit) else {
            return Reply::new(425, format!("too many passive data ports held by this user (limit {limit})"));
        };
        let port = match PassivePort::open(ip, &ftps.passive_ports, lease).await {
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
            return control.answer(Reply::new(501, "a file name is required")).await;
        }
        if !self.protection.is_private() {
            return control.answer(Reply::new(521, "send PBSZ 0 and PROT P first: data is always encrypted")).await;
        }
        if self.passive.is_none() {
            return control.answer(no_data_port()).await;
        }
        // A refused transfer keeps the passive port: the client may have
        // connected to it already, and resetting that connection makes some
        // clients (curl) report a bad PASV reply instead of the refusal.
        let job = match self.prepare(cmd, rest).await {
            Ok(job) => job,
            Err(reply) => return control.answer(reply).await,
        };
        let Some(port) = self.passive.take() else {
            return control.answer(no_data_port()).await;
        };
        transfer::run(&self.session, control, DataSide::new(self.ctx, port), job).await
    }

    /// Checks and opens what a transfer needs, before the 150 reply.
    async fn prepare(&self, cmd: &Command, rest: u64) -> Result<Job, Reply> {
        match cmd.verb.as_str() {
            "STOR" => {
                if rest > 0 {
                    return Err(Reply::new(504, NO_RESUME));
                }
                let path = self.resolve(&cmd.arg)?;
                Ok(Job::Upload(self.session.create_upload(&path, false).await?))
            }
            "RETR" => {
                let path = self.resolve(&cmd.arg)?;
                Ok(Job::Download { file: self.session.open_download(&path).await?, offset: rest })
            }
            verb => {
                let path = self.resolve(&listing::listing_path(&cmd.arg))?;
                let kind = match verb {
                    "LIST" => ListKind::List,
                    "NLST" => ListKind::Nlst,
                    _ => ListKind::Mlsd,
                };
                Ok(Job::Listing(Listing::open(&self.session, &path, kind).await?))
            }
        }
    }
}

/// What waiting for the next command gave.
enum Waited {
    /// A line to serve.
    Line(Line),
    /// The passive port waited `ftps.passive_idle_timeout` for a transfer in vain.
    PortIdle,
    /// The session is over (its last reply, if any, sent).
    End,
}

/// The next command line, unless the session ends first (idle past
/// `idle_deadline`, shutdown, an administrator's change) or the passive
/// port reaches `port_deadline`.
async fn next_line(
    control: &mut Control,
    stop: &mut watch::Receiver<bool>,
    ending: &mut Ending,
    idle_deadline: Instant,
    port_deadline: Option<Instant>,
) -> Waited {
    let port_idle = async move {
        match port_deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    // `control.next()` keeps what it read when dropped: a line cut by the
    // port's deadline is read whole by the next call.
    let next = tokio::select! {
        next = tokio::time::timeout_at(idle_deadline, control.next()) => next,
        () = port_idle => return Waited::PortIdle,
        _ = stop.changed() => {
            control.last_reply(Reply::new(421, "server shutting down")).await;
            return Waited::End;
        }
        reason = ending.ended() => {
            control.last_reply(Reply::new(421, reason)).await;
            return Waited::End;
        }
    };
    match next {
        Ok(Ok(line)) => Waited::Line(line),
        Ok(Err(_)) => Waited::End,
        Err(_) => {
            control.last_reply(Reply::new(421, "idle timeout")).await;
            Waited::End
        }
    }
}

/// Settings with a fixed answer (transfer parameters, refused commands).
/// `None` for other commands.
fn parameter(cmd: &Command) -> Option<Reply> {
    Some(match cmd.verb.as_str() {
        "USER" | "PASS" => Reply::new(503, "already logged in"),
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
        "PORT" | "EPRT" => Reply::new(502, "active mode is refused (it allows FTP bounce attacks); use PASV or EPSV"),
        "APPE" => Reply::new(502, NO_RESUME),
        "ABOR" => Reply::new(225, "no transfer to abort"),
        _ => return None,
    })
}

/// A transfer without PASV or EPSV before it.
fn no_data_port() -> Reply {
    Reply::new(425, "send PASV or EPSV first")
}

/// Runs a filesystem command under [`COMMAND_TIMEOUT`].
async fn bounded(work: impl Future<Output = Reply>) -> Reply {
    tokio::time::timeout(COMMAND_TIMEOUT, work).await.unwrap_or_else(|_| Reply::new(451, "command timed out"))
}
