//! A connection before login: the clear-text part of explicit FTPS, the TLS
//! handshake, then USER/PASS. It ends by handing over a session, and knows
//! nothing of what is done with it.
//!
//! ```text
//!  explicit: [clear] ─ AUTH TLS ─┐
//!                                ├─► [TLS, not logged in] ─ USER/PASS ─► logged in (postlogin.rs)
//!  implicit: TLS handshake ──────┘
//! ```
//!
//! In the clear, only FEAT, AUTH, HELP, NOOP and QUIT exist; USER and PASS get
//! 530 without their argument being looked at, so a password sent in the clear
//! is never read. Before login, only login, TLS-parameter and informational
//! commands exist. Both states end at the login grace time, when the client's
//! address is banned, and after `limits.max_auth_tries` failed logins; a
//! malformed line in either is abuse.

use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::channel::{Context, Control, Input, Secure};
use super::common::{self, Protection};
use super::handshake;
use super::line::Command;
use super::reply::Reply;
use crate::engine::{ClientStream, Credentials, LoginAttempts, LoginRefused, Protocol, Session};

/// How the control connection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// In the clear until `AUTH TLS`.
    Explicit,
    /// TLS from the first byte.
    Implicit,
}

const GREETING: &str = "passerelle FTPS ready";
const TLS_FIRST: &str = "TLS required: send AUTH TLS first";
const GRACE_EXCEEDED: &str = "login grace time exceeded";

/// The TLS control channel of a new connection: explicit FTPS after
/// `AUTH TLS`, implicit FTPS at once. `None` when the connection ended first.
pub(super) async fn secure(ctx: &Context, stream: ClientStream, mode: Mode, deadline: Instant) -> Option<Control> {
    let stream = match mode {
        Mode::Explicit => clear(ctx, stream, deadline).await?,
        Mode::Implicit => stream,
    };
    let secure = handshake(ctx, stream, deadline).await?;
    Some(Control::before_login(secure, deadline))
}

/// Greets an implicit FTPS client, now that TLS is up (explicit FTPS was
/// greeted in the clear).
pub(super) async fn greet(control: &mut Control, mode: Mode) -> io::Result<()> {
    match mode {
        Mode::Explicit => Ok(()),
        Mode::Implicit => control.reply(Reply::new(220, GREETING)).await,
    }
}

/// After TLS, before login. Returns the session and the PBSZ/PROT state.
pub(super) async fn login(ctx: &Context, control: &mut Control, deadline: Instant) -> Option<(Session, Protection)> {
    let mut protection = Protection::default();
    let mut user: Option<String> = None;
    let mut logins = LoginAttempts::new(ctx.engine.clone(), ctx.peer, Protocol::Ftps, ctx.tripwire.clone());
    let mut grace = Grace::new(ctx, deadline);
    loop {
        let cmd = match grace.next_command(control).await {
            Ok(cmd) => cmd,
            Err(NoCommand::Shutdown) => {
                control.last_reply(Reply::new(421, "server shutting down")).await;
                return None;
            }
            Err(NoCommand::Ended) => return None,
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
                match logins.attempt(&login, Credentials::Password(&password)).await {
                    Ok(session) => {
                        control.reply(Reply::new(230, "logged in")).await.ok()?;
                        return Some((session, protection));
                    }
                    Err(LoginRefused::TooManyAttempts) => {
                        control.last_reply(Reply::new(421, "too many failed logins")).await;
                        return None;
                    }
                    Err(LoginRefused::TryAgain) => Reply::new(530, "login incorrect"),
                }
            }
            "QUIT" => {
                control.last_reply(common::goodbye()).await;
                return None;
            }
            _ => common::answer(&cmd, &mut protection)
                .unwrap_or_else(|| Reply::new(530, "log in with USER and PASS first")),
        };
        control.reply(reply).await.ok()?;
    }
}

/// Explicit FTPS before `AUTH TLS`. Returns the stream to upgrade.
async fn clear(ctx: &Context, stream: ClientStream, deadline: Instant) -> Option<ClientStream> {
    let mut control = Control::before_login(stream, deadline);
    control.reply(Reply::new(220, format!("{GREETING}; {TLS_FIRST}"))).await.ok()?;
    let mut grace = Grace::new(ctx, deadline);
    loop {
        // At shutdown the clear connection just ends.
        let cmd = grace.next_command(&mut control).await.ok()?;
        let reply = match cmd.verb.as_str() {
            "AUTH" if is_tls(&cmd) => return upgrade(ctx, control).await,
            "AUTH" => Reply::new(504, "only AUTH TLS is supported"),
            "QUIT" => {
                control.last_reply(common::goodbye()).await;
                return None;
            }
            // The argument (a password, maybe) is not even looked at.
            _ => common::informational(&cmd).unwrap_or_else(|| Reply::new(530, TLS_FIRST)),
        };
        control.reply(reply).await.ok()?;
    }
}

/// Whether `AUTH`'s argument asks for TLS.
fn is_tls(cmd: &Command) -> bool {
    matches!(cmd.arg_text().to_ascii_uppercase().as_str(), "TLS" | "TLS-C" | "SSL")
}

/// Accepts `AUTH TLS`; returns the stream for the handshake.
async fn upgrade(ctx: &Context, mut control: Control<ClientStream>) -> Option<ClientStream> {
    control.reply(Reply::new(234, "AUTH TLS ok; start the TLS handshake")).await.ok()?;
    // Bytes after AUTH TLS, before our reply, would be read in the clear and
    // trusted after the upgrade (STARTTLS injection).
    if control.has_pending() {
        ctx.tripwire.trip("data pipelined after AUTH TLS");
        return None;
    }
    Some(control.into_stream())
}

/// The TLS handshake of the control connection, within the grace time.
async fn handshake(ctx: &Context, stream: ClientStream, deadline: Instant) -> Option<Secure> {
    match tokio::time::timeout_at(deadline, ctx.tls.control().accept(stream)).await {
        Ok(Ok(secure)) => Some(secure),
        Ok(Err(e)) => {
            // Reported, not scored: an old TLS stack is not an attack, and
            // scanners probing versions would otherwise ban themselves
            // mid-scan.
            ctx.engine.handshake_failed(ctx.peer, Protocol::Ftps, &handshake::classify(&e));
            None
        }
        Err(_) => {
            ctx.engine.handshake_failed(ctx.peer, Protocol::Ftps, &handshake::timeout());
            ctx.tripwire.trip(GRACE_EXCEEDED);
            None
        }
    }
}

/// Why no command came before login.
enum NoCommand {
    /// The server is shutting down.
    Shutdown,
    /// The connection is over: closed, broken, banned, or out of time (told
    /// with a 421).
    Ended,
}

/// What bounds a connection before login, whatever it reads: the login
/// grace deadline, a ban of the client's address, shutdown.
struct Grace<'a> {
    ctx: &'a Context,
    deadline: Instant,
    banned: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    stop: watch::Receiver<bool>,
}

impl<'a> Grace<'a> {
    /// Bounds for one state of the connection `ctx`.
    fn new(ctx: &'a Context, deadline: Instant) -> Self {
        Self { ctx, deadline, banned: Box::pin(ctx.engine.banned(ctx.peer)), stop: ctx.stop.clone() }
    }

    /// The next command. A malformed line is abuse: it trips the tripwire
    /// and is answered 500, and reading goes on.
    async fn next_command<S>(&mut self, control: &mut Control<S>) -> Result<Command, NoCommand>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let line = tokio::select! {
                line = tokio::time::timeout_at(self.deadline, control.next()) => line,
                () = &mut self.banned => return Err(NoCommand::Ended),
                _ = self.stop.changed() => return Err(NoCommand::Shutdown),
            };
            let line = match line {
                Ok(Ok(line)) => line,
                Ok(Err(_)) => return Err(NoCommand::Ended),
                Err(_) => {
                    self.ctx.tripwire.trip(GRACE_EXCEEDED);
                    control.last_reply(Reply::new(421, GRACE_EXCEEDED)).await;
                    return Err(NoCommand::Ended);
                }
            };
            match Input::parse(line) {
                Input::Command(cmd) => return Ok(cmd),
                Input::Closed => return Err(NoCommand::Ended),
                Input::Malformed(malformed) => {
                    self.ctx.tripwire.trip(malformed.abuse());
                    control.reply(malformed.reply()).await.map_err(|_| NoCommand::Ended)?;
                }
            }
        }
    }
}
