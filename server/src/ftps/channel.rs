//! The command channel of one connection: bounded command lines in, replies
//! out, every reply bounded in time; and what every state of the connection
//! shares: its [`Context`], how a line becomes a command ([`Input`]), what
//! the logged-in loop does next ([`Next`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::line::{Command, Line, LineReader};
use super::passive::PortLeases;
use super::reply::Reply;
use super::tls::SessionTls;
use crate::engine::{ClientStream, Engine, Tripwire};

/// The control stream once TLS is up.
pub(super) type Secure = TlsStream<ClientStream>;

/// What a control connection needs from the server.
pub(super) struct Context {
    /// The engine.
    pub(super) engine: Engine,
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// The address the client reached us at: passive ports open there.
    pub(super) local_ip: IpAddr,
    /// The passive ports each user holds, shared by every connection.
    pub(super) ports: Arc<PortLeases>,
    /// This connection's TLS (and its private session cache).
    pub(super) tls: SessionTls,
    /// Set when the client broke the protocol.
    pub(super) tripwire: Tripwire,
    /// Turns true at shutdown.
    pub(super) stop: watch::Receiver<bool>,
}

/// Longest a logged-in client may leave a reply unread, whatever the idle
/// timeout.
const MAX_REPLY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Time a last reply gets even past its deadline (the 421 of the login
/// grace time).
const LAST_WRITE: Duration = Duration::from_secs(1);

/// How long closing the channel may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// By when the client must have taken a reply.
#[derive(Clone, Copy, Debug)]
enum ReplyDeadline {
    /// Until login, replies too must be taken by the login grace deadline.
    LoginGrace(Instant),
    /// After login, each reply must be taken within the idle timeout.
    Idle(Duration),
}

/// The control channel over `S` (the clear stream of explicit FTPS before
/// `AUTH TLS`, then TLS): bounded lines in, replies out.
pub(super) struct Control<S = Secure> {
    reader: LineReader<S>,
    replies_by: ReplyDeadline,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Control<S> {
    /// A channel before login: its replies must be taken by `deadline`, the
    /// login grace deadline.
    pub(super) fn before_login(stream: S, deadline: Instant) -> Self {
        Self { reader: LineReader::new(stream), replies_by: ReplyDeadline::LoginGrace(deadline) }
    }

    /// From login on, each reply must be taken within `idle`.
    pub(super) fn logged_in(&mut self, idle: Duration) {
        self.replies_by = ReplyDeadline::Idle(idle);
    }

    /// Sends a reply (bounded in time: see [`write_by`]).
    pub(super) async fn reply(&mut self, reply: Reply) -> io::Result<()> {
        let by = match self.replies_by {
            ReplyDeadline::LoginGrace(deadline) => deadline,
            // Capped so that no configured idle timeout overflows the clock.
            ReplyDeadline::Idle(idle) => Instant::now() + idle.min(MAX_REPLY_WAIT),
        };
        write_by(self.reader.get_mut(), &reply.encode(), by).await
    }

    /// Sends the reply that ends the connection: whether it arrives no
    /// longer changes anything.
    pub(super) async fn last_reply(&mut self, reply: Reply) {
        let _ = self.reply(reply).await;
    }

    /// Sends a reply; the logged-in loop goes on unless the client is gone.
    pub(super) async fn answer(&mut self, reply: Reply) -> Next {
        match self.reply(reply).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }

    /// The next line (cancel-safe).
    pub(super) async fn next(&mut self) -> io::Result<Line> {
        self.reader.next().await
    }

    /// Whether bytes arrived after the last line read (see
    /// [`LineReader::has_pending`]).
    pub(super) fn has_pending(&self) -> bool {
        self.reader.has_pending()
    }

    /// Gives the stream back (for the TLS upgrade of explicit FTPS).
    pub(super) fn into_stream(self) -> S {
        self.reader.into_inner()
    }

    /// Sends close_notify and closes, best effort and bounded.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.reader.get_mut().shutdown()).await;
    }
}

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

/// What a line read from the channel holds.
pub(super) enum Input {
    /// A well-formed command.
    Command(Command),
    /// A line that is no command: answered 500, and abuse before login.
    Malformed(Malformed),
    /// The client closed the connection.
    Closed,
}

impl Input {
    /// Parses one line of the channel.
    pub(super) fn parse(line: Line) -> Self {
        match line {
            Line::Closed => Self::Closed,
            Line::TooLong => Self::Malformed(Malformed::TooLong),
            Line::Command(bytes) => Command::parse(&bytes).map_or(Self::Malformed(Malformed::Syntax), Self::Command),
        }
    }
}

/// Why a line is no command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Malformed {
    /// Longer than the line limit (`line::MAX_LINE`).
    TooLong,
    /// Not `VERB[ SP argument]`.
    Syntax,
}

impl Malformed {
    /// The reply to the line.
    pub(super) fn reply(self) -> Reply {
        match self {
            Self::TooLong => Reply::new(500, "command line too long"),
            Self::Syntax => Reply::new(500, "syntax error"),
        }
    }

    /// How the tripwire records it (before login, where it is abuse).
    pub(super) fn abuse(self) -> &'static str {
        match self {
            Self::TooLong => "overlong command line",
            Self::Syntax => "malformed command line",
        }
    }
}

/// What the logged-in loop does after a command.
pub(super) enum Next {
    /// Read the next command.
    Continue,
    /// This line arrived during a transfer: handle it now.
    Pending(Vec<u8>),
    /// Close the connection.
    Close,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_are_no_command_are_answered_500() {
        assert!(matches!(Input::parse(Line::Command(b"noop".to_vec())), Input::Command(c) if c.verb == "NOOP"));
        assert!(matches!(Input::parse(Line::Closed), Input::Closed));
        assert!(matches!(Input::parse(Line::TooLong), Input::Malformed(Malformed::TooLong)));
        let hello = Input::parse(Line::Command(b"\x16\x03\x01".to_vec()));
        assert!(matches!(hello, Input::Malformed(Malformed::Syntax)));
        assert_eq!(Malformed::TooLong.reply().encode(), b"500 command line too long\r\n");
        assert_eq!(Malformed::Syntax.reply().encode(), b"500 syntax error\r\n");
    }
}
