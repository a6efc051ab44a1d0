//! The SFTP front-end: an SSH server (russh) whose only service is the
//! `sftp` subsystem, over the engine's sessions and tenant filesystem.
//!
//! ```text
//!  TCP accept ─► Engine::accept ─► GraceStream ─► russh session ─► ssh::Connection
//!                 (PROXY header,    (login grace    (kex, auth)     auth via Engine,
//!                  bans, limits)     time)                          refuses all but sftp
//!                                                                        │
//!                                        dispatch::run ◄─────────────────┘
//!                                        (framing, in-flight window, barriers)
//!                                                │
//!                                        ops::Sftp ─► Session (TenantFs, audit, uploads)
//! ```
//!
//! - `ssh` — algorithms, authentication, channel policy.
//! - `grace` — the login grace timer, as a stream adapter.
//! - `dispatch` — the per-channel request loop; `codec` — SFTP v3 wire format.
//! - `ops` — the operations; `listing` — attributes and `ls -l` long names.
//!
//! Non-features: SFTP versions other than 3, symlinks (READLINK and SYMLINK
//! answer "unsupported"), hard links, resuming or appending (uploads are
//! atomic: a file appears complete under its name, or not at all), chmod and
//! chown (accepted and ignored), shells, commands, legacy `scp -O`,
//! forwarding of any kind.

mod codec;
mod dispatch;
mod grace;
pub(crate) mod listing;
mod ops;
mod ssh;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use russh::Disconnect;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::engine::{Accepted, Engine, Offence, Protocol};

/// How long a shutdown waits for connections to wind down (uploads in
/// progress recorded as aborted, sessions logged out) before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running SFTP front-end; [`SftpServer::shutdown`] stops it.
pub(crate) struct SftpServer {
    stop: watch::Sender<bool>,
    listeners: JoinSet<()>,
    /// Every connection task holds a clone; all gone means all ended.
    alive: mpsc::Sender<()>,
    all_ended: mpsc::Receiver<()>,
}

impl SftpServer {
    /// Binds every `sftp.listen` address and starts accepting. An address
    /// that cannot be bound is an error: the server must not half-start.
    pub(crate) async fn start(engine: Engine, host_keys: Vec<russh::keys::PrivateKey>) -> anyhow::Result<Self> {
        let config = Arc::new(ssh::config(&engine, host_keys));
        let (stop, _) = watch::channel(false);
        let (alive, all_ended) = mpsc::channel(1);
        let mut listeners = JoinSet::new();
        for addr in engine.config().sftp.listen.clone() {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (sftp)"))?;
            let local = listener.local_addr().unwrap_or(addr);
            info!(addr = %local, "sftp listening");
            listeners.spawn(accept_loop(
                listener,
                engine.clone(),
                Arc::clone(&config),
                stop.subscribe(),
                alive.clone(),
            ));
        }
        Ok(Self { stop, listeners, alive, all_ended })
    }

    /// Stops accepting, disconnects every client, and waits (briefly) for
    /// their sessions to end.
    pub(crate) async fn shutdown(self) {
        let Self { stop, mut listeners, alive, mut all_ended } = self;
        let _ = stop.send(true);
        while listeners.join_next().await.is_some() {}
        drop(alive);
        if tokio::time::timeout(SHUTDOWN_GRACE, all_ended.recv()).await.is_err() {
            warn!("sftp: some connections did not end in time");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    engine: Engine,
    config: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(error = %e, "sftp: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, peer, engine.clone(), Arc::clone(&config), stop.clone(), alive.clone()));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    engine: Engine,
    config: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    // A PROXY header, a ban or a limit may end it here (audited by the engine).
    let Some(Accepted { stream, peer, permit, tripwire }) = engine.accept(stream, peer, Protocol::Sftp).await else {
        return;
    };
    let _ = stream.socket().set_nodelay(true);
    let logged_in = grace::LoggedIn::default();
    let grace_time = engine.config().limits.login_grace_time;
    // Cut when the address is banned before the client has logged in.
    let banned = {
        let engine = engine.clone();
        Box::pin(async move { engine.banned(peer).await })
    };
    let stream = grace::GraceStream::new(stream, grace_time, logged_in.clone(), tripwire.clone(), banned);
    let handler = ssh::Connection::new(engine.clone(), peer, logged_in.clone(), permit, alive, tripwire.clone());
    // Whatever broke the protocol before login is scored once, when the connection ends.
    let score_abuse = |error: Option<&russh::Error>| {
        let abuse = tripwire.tripped().is_some() || error.is_some_and(|e| !logged_in.get() && is_abuse(e));
        if abuse {
            engine.offence(peer, Offence::ProtocolAbuse);
        }
    };
    let session = match russh::server::run_stream(config, stream, handler).await {
        Ok(session) => session,
        Err(e) => {
            debug!(peer = %peer, error = %e, "ssh: connection setup failed");
            score_abuse(Some(&e));
            return;
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    tokio::select! {
        result = &mut session => {
            if let Err(e) = &result {
                debug!(peer = %peer, error = %e, "ssh: connection ended with an error");
            }
            score_abuse(result.as_ref().err());
        }
        _ = stop.changed() => {
            let _ = handle
                .disconnect(Disconnect::ByApplication, "server shutting down".into(), String::new())
                .await;
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, session).await;
        }
    }
}

/// Errors that only a client breaking the protocol causes (a client that
/// merely disconnects or times out is not one).
fn is_abuse(error: &russh::Error) -> bool {
    use russh::Error as E;
    matches!(
        error,
        E::Version
            | E::PacketSize(_)
            | E::PacketAuth
            | E::DecryptionError
            | E::Inconsistent
            | E::Kex
            | E::KexInit
            | E::IndexOutOfBounds
            | E::Utf8(_)
            | E::StrictKeyExchangeViolation { .. }
    )
}
