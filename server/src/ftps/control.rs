//! One control connection, by trust state (as vsftpd's prelogin/postlogin):
//!
//! ```text
//!  explicit: [clear] ─ AUTH TLS ─┐
//!                                ├─► [TLS, not logged in] ─ USER/PASS ─► [logged in] (session.rs)
//!  implicit: TLS handshake ──────┘
//! ```
//!
//! In the clear, only FEAT, AUTH, HELP, NOOP and QUIT exist; USER and PASS get
//! 530 without their argument being looked at, so a password sent in the clear
//! is never read. Before login, only login, TLS-parameter and informational
//! commands exist. Both states end at the login grace time, when the client's
//! address is banned, and after `limits.max_auth_tries` failed logins.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::line::{Command, Line, LineReader};
use super::reply::Reply;
use super::session::LoggedIn;
use super::tls::SessionTls;
use crate::engine::{
    ClientStream, ConnectionPermit, Credentials, Engine, LoginAttempts, LoginRefused, Offence, Protocol, Session,
    Tripwire,
};

/// The control stream once TLS is up.
pub(super) type Secure = TlsStream<ClientStream>;

/// How the control connection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// In the clear until `AUTH TLS`.
    Explicit,
    /// TLS from the first byte.
    Implicit,
}

/// What a control connection needs from the server.
pub(super) struct Context {
    /// The engine.
    pub(super) engine: Engine,
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// The address the client reached us at: passive ports open there.
    pub(super) local_ip: IpAddr,
    /// This connection's TLS (and its private session cache).
    pub(super) tls: SessionTls,
    /// Set when the client broke the protocol.
    pub(super) tripwire: Tripwire,
    /// Turns true at shutdown.
    pub(super) stop: watch::Receiver<bool>,
}

/// PBSZ/PROT state (RFC 4217 §8, §9): PROT P is the only level accepted.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Protection {
    /// PBSZ 0 was received.
    pub(super) pbsz: bool,
    /// PROT P was accepted.
    pub(super) private: bool,
}

/// The TLS control channel: bounded lines in, replies out.
pub(super) struct Control {
    reader: LineReader<Secure>,
    /// Until login, replies too must be taken by the login grace deadline.
    login_deadline: Option<Instant>,
    /// After login, each reply must be taken within the idle timeout.
    idle: Duration,
}

impl Control {
    /// Sends a reply (bounded in time: see [`write_by`]).
    pub(super) async fn reply(&mut self, reply: Reply) -> io::Result<()> {
        // Capped so that no configured idle timeout overflows the clock.
        let by = self.login_deadline.unwrap_or_else(|| Instant::now() + self.idle.min(MAX_REPLY_WAIT));
        write_by(self.reader.get_mut(), &reply.encode(), by).await
    }

    /// The next line (cancel-safe).
    pub(super) async fn next(&mut self) -> io::Result<Line> {
        self.reader.next().await
    }

    /// Sends close_notify and closes, best effort and bounded.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.reader.get_mut().shutdown()).await;
    }
}

const GREETING: &str = "passerelle FTPS ready";
const TLS_FIRST: &str = "TLS required: send AUTH TLS first";

/// Runs one accepted control connection to its end.
pub(super) async fn run(ctx: Context, stream: ClientStream, mode: Mode, mut permit: ConnectionPermit) {
    let deadline = Instant::now() + ctx.engine.config().limits.login_grace_time;
    let secure = match mode {
        Mode::Explicit => match clear(&ctx, stream, deadline).await {
            Some(stream) => handshake(&ctx, stream, deadline).await,
            None => None,
        },
        Mode::Implicit => handshake(&ctx, stream, deadline).await,
    };
    let Some(secure) = secure else {
        score(&ctx);
        return;
    };
    let idle = ctx.engine.config().limits.idle_timeout;
    let mut control = Control { reader: LineReader::new(secure), login_deadline: Some(deadline), idle };
    if mode == Mode::Implicit && control.reply(Reply::new(220, GREETING)).await.is_err() {
        return;
    }
    let Some((session, protection)) = prelogin(&ctx, &mut control, deadline).await else {
        score(&ctx);
        control.close().await;
        return;
    };
    permit.logged_in();
    control.login_deadline = None;
    LoggedIn::new(&ctx, session, protection).run(&mut control).await;
    score(&ctx);
    control.close().await;
}

/// Whatever broke the protocol is scored once, when the connection ends.
fn score(ctx: &Context) {
    if let Some(what) = ctx.tripwire.tripped() {
        debug!(peer = %ctx.peer, what, "ftps: protocol abuse");
        ctx.engine.offence(ctx.peer, Offence::ProtocolAbuse);
    }
}

/// Explicit FTPS before `AUTH TLS`. Returns the stream to upgrade.
async fn clear(ctx: &Context, stream: ClientStream, deadline: Instant) -> Option<ClientStream> {
    let mut reader = LineReader::new(stream);
    if !send(&mut reader, Reply::new(220, format!("{GREETING}; {TLS_FIRST}")), deadline).await {
        return None;
    }
    let mut banned = Box::pin(ctx.engine.banned(ctx.peer));
    let mut stop = ctx.stop.clone();
    loop {
        let line = tokio::select! {
            line = tokio::time::timeout_at(deadline, reader.next()) => line,
            () = &mut banned => return None,
            _ = stop.changed() => return None,
        };
        let line = match line {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => return None,
            Err(_) => {
                ctx.tripwire.trip("login grace time exceeded");
                send(&mut reader, Reply::new(421, "login grace time exceeded"), deadline).await;
                return None;
            }
        };
        let cmd = match line {
            Line::Closed => return None,
            Line::TooLong => {
                ctx.tripwire.trip("overlong command line");
                if !send(&mut reader, Reply::new(500, "command line too long"), deadline).await {
                    return None;
                }
                continue;
            }
            Line::Command(bytes) => match Command::parse(&bytes) {
                Some(cmd) => cmd,
                None => {
                    ctx.tripwire.trip("malformed command line");
                    if !send(&mut reader, Reply::new(500, "syntax error"), deadline).await {
                        return None;
                    }
                    continue;
                }
            },
        };
        let reply = match cmd.verb.as_str() {
            "AUTH" if is_tls(&cmd) => {
                if !send(&mut reader, Reply::new(234, "AUTH TLS ok; start the TLS handshake"), deadline).await {
                    return None;
                }
                // Bytes after AUTH TLS, before our reply, would be read in the
                // clear and trusted after the upgrade (STARTTLS injection).
                if reader.has_pending() {
                    ctx.tripwire.trip("data pipelined after AUTH TLS");
                    return None;
                }
                return Some(reader.into_inner());
            }
            "AUTH" => Reply::new(504, "only AUTH TLS is supported"),
            "FEAT" => features(),
            "HELP" => help(),
            "NOOP" => Reply::new(200, "NOOP ok"),
            "QUIT" => {
                send(&mut reader, Reply::new(221, "goodbye"), deadline).await;
                return None;
            }
            // The argument (a password, maybe) is not even looked at.
            _ => Reply::new(530, TLS_FIRST),
        };
        if !send(&mut reader, reply, deadline).await {
            return None;
        }
    }
}

/// The TLS handshake of the control connection, within the grace time.
async fn handshake(ctx: &Context, stream: ClientStream, deadline: Instant) -> Option<Secure> {
    match tokio::time::timeout_at(deadline, ctx.tls.control().accept(stream)).await {
        Ok(Ok(secure)) => Some(secure),
        Ok(Err(e)) => {
            // Not scored: an old TLS stack is not an attack, and scanners
            // probing versions would otherwise ban themselves mid-scan.
            debug!(peer = %ctx.peer, error = %e, "ftps: TLS handshake failed");
            None
        }
        Err(_) => {
            ctx.tripwire.trip("login grace time exceeded");
            None
        }
    }
}

/// After TLS, before login. Returns the session and the PBSZ/PROT state.
async fn prelogin(ctx: &Context, control: &mut Control, deadline: Instant) -> Option<(Session, Protection)> {
    let mut protection = Protection::default();
    let mut user: Option<String> = None;
    let mut logins = LoginAttempts::new(ctx.engine.clone(), ctx.peer, Protocol::Ftps, ctx.tripwire.clone());
    let mut banned = Box::pin(ctx.engine.banned(ctx.peer));
    let mut stop = ctx.stop.clone();
    loop {
        let line = tokio::select! {
            line = tokio::time::timeout_at(deadline, control.next()) => line,
            () = &mut banned => return None,
            _ = stop.changed() => {
                let _ = control.reply(Reply::new(421, "server shutting down")).await;
                return None;
            }
        };
        let line = match line {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => return None,
            Err(_) => {
                ctx.tripwire.trip("login grace time exceeded");
                let _ = control.reply(Reply::new(421, "login grace time exceeded")).await;
                return None;
            }
        };
        let cmd = match line {
            Line::Closed => return None,
            Line::TooLong => {
                ctx.tripwire.trip("overlong command line");
                control.reply(Reply::new(500, "command line too long")).await.ok()?;
                continue;
            }
            Line::Command(bytes) => match Command::parse(&bytes) {
                Some(cmd) => cmd,
                None => {
                    ctx.tripwire.trip("malformed command line");
                    control.reply(Reply::new(500, "syntax error")).await.ok()?;
                    continue;
                }
            },
        };
        let reply = match cmd.verb.as_str() {
            "USER" => {
                // Bounded: a valid login is short; longer ones fail anyway.
                user = Some(String::from_utf8_lossy(&cmd.arg[..cmd.arg.len().min(256)]).into_owned());
                Reply::new(331, "password required")
            }
            "PASS" => {
                let Some(login) = user.take() else {
                    control.reply(Reply::new(503, "send USER first")).await.ok()?;
                    continue;
                };
                let password = String::from_utf8_lossy(&cmd.arg).into_owned();
                let credentials = Credentials::Password(&password);
                match logins.attempt(&login, credentials).await {
                    Ok(session) => {
                        control.reply(Reply::new(230, "logged in")).await.ok()?;
                        return Some((session, protection));
                    }
                    Err(LoginRefused::TooManyAttempts) => {
                        let _ = control.reply(Reply::new(421, "too many failed logins")).await;
                        return None;
                    }
                    Err(LoginRefused::TryAgain) => Reply::new(530, "login incorrect"),
                }
            }
            "QUIT" => {
                let _ = control.reply(Reply::new(221, "goodbye")).await;
                return None;
            }
            _ => common(&cmd, &mut protection).unwrap_or_else(|| Reply::new(530, "log in with USER and PASS first")),
        };
        control.reply(reply).await.ok()?;
    }
}

/// Whether `AUTH`'s argument asks for TLS.
fn is_tls(cmd: &Command) -> bool {
    matches!(cmd.arg_text().to_ascii_uppercase().as_str(), "TLS" | "TLS-C" | "SSL")
}

/// Commands answered the same before and after login; `None` for others.
pub(super) fn common(cmd: &Command, protection: &mut Protection) -> Option<Reply> {
    Some(match cmd.verb.as_str() {
        "AUTH" => Reply::new(503, "TLS is already active"),
        "PBSZ" => {
            protection.pbsz = true;
            Reply::new(200, "PBSZ=0")
        }
        "PROT" => match cmd.arg_text().to_ascii_uppercase().as_str() {
            _ if !protection.pbsz => Reply::new(503, "send PBSZ first"),
            "P" => {
                protection.private = true;
                Reply::new(200, "data connections are protected (PROT P)")
            }
            "C" | "S" | "E" => Reply::new(536, "only PROT P is accepted: data is never sent in the clear"),
            _ => Reply::new(504, "unknown protection level"),
        },
        "CCC" => Reply::new(534, "CCC refused: the control connection stays encrypted"),
        "FEAT" => features(),
        "OPTS" => match cmd.arg_text().to_ascii_uppercase().as_str() {
            "UTF8 ON" | "UTF8" => Reply::new(200, "UTF-8 is always on"),
            _ => Reply::new(501, "unknown option"),
        },
        "SYST" => Reply::new(215, "UNIX Type: L8"),
        "NOOP" => Reply::new(200, "NOOP ok"),
        "HELP" => help(),
        _ => return None,
    })
}

/// FEAT (RFC 2389).
fn features() -> Reply {
    let features = [
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "UTF8",
        "EPSV",
        "PASV",
        "SIZE",
        "MDTM",
        "REST STREAM",
        "TVFS",
        "MLST type*;size*;modify*;perm*;",
    ];
    Reply::multi(211, "Features:", features.iter().map(ToString::to_string), "End")
}

/// HELP.
fn help() -> Reply {
    let commands = [
        "USER PASS AUTH PBSZ PROT FEAT OPTS SYST NOOP QUIT HELP STAT",
        "PWD CWD CDUP TYPE MODE STRU PASV EPSV ABOR",
        "LIST NLST MLSD MLST SIZE MDTM RETR REST STOR DELE RNFR RNTO MKD RMD",
        "Refused: PORT EPRT (active mode), CCC, PROT C, APPE and REST before STOR (uploads are atomic)",
    ];
    Reply::multi(214, "Commands:", commands.iter().map(ToString::to_string), "End")
}

/// Sends a reply in the clear by `deadline`; `false` when the connection is gone.
async fn send(reader: &mut LineReader<ClientStream>, reply: Reply, deadline: Instant) -> bool {
    write_by(reader.get_mut(), &reply.encode(), deadline).await.is_ok()
}

/// Longest a logged-in client may leave a reply unread, whatever the idle
/// timeout.
const MAX_REPLY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Time a last reply gets even past its deadline (the 421 of the login
/// grace time).
const LAST_WRITE: Duration = Duration::from_secs(1);

/// Writes and flushes `bytes` by `by` (or within [`LAST_WRITE`] if later).
/// Reads alone are not enough to bound a connection: a client that sends
/// commands but never reads the replies leaves the write blocked once the
/// socket buffers are full, and would hold its connection slot for ever.
async fn write_by<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], by: Instant) -> io::Result<()> {
    let by = by.max(Instant::now() + LAST_WRITE);
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout_at(by, write).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client does not read its replies")),
    }
}
