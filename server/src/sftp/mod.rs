//! The SFTP front-end: an SSH server (russh) whose only service is the
//! `sftp` subsystem, over the engine's sessions and tenant filesystem.
//!
//! ```text
//!  TCP accept ─► Engine::accept ─► Tapped ─► GraceStream ─► russh session ─► ssh::Connection
//!                 (PROXY header,    (client's (login grace    (kex, auth)     auth via Engine,
//!                  bans, limits)     KEXINIT)  time)          disconnected    refuses all but sftp
//!                                                             when the session's Ending fires
//!                                                                        │
//!                                        dispatch::run ◄─────────────────┘
//!                                        (framing, in-flight window, barriers)
//!                                                │
//!                                        ops::Sftp ─► Session (TenantFs, audit, uploads)
//! ```
//!
//! - `ssh` — algorithms, authentication, channel policy.
//! - `grace` — the login grace timer, as a stream adapter.
//! - `kexinit` — what the client sent before its keys were in use;
//!   `failure` — why a handshake failed, from it and russh's error.
//! - `dispatch` — the per-channel request loop; `codec` — SFTP v3 wire format.
//! - `ops` — the operations; `listing` — attributes and times.
//!
//! Non-features: SFTP versions other than 3, symlinks (READLINK and SYMLINK
//! answer "unsupported"), hard links, resuming or appending (uploads are
//! atomic: a file appears complete under its name, or not at all), chmod and
//! chown (accepted and ignored), shells, commands, legacy `scp -O`,
//! forwarding of any kind.

pub(crate) mod codec;
mod dispatch;
mod failure;
mod grace;
pub(crate) mod kexinit;
mod listing;
mod ops;
mod ssh;

use std::sync::Arc;
use std::time::Duration;

use russh::Disconnect;
use tokio::sync::oneshot;
use tracing::debug;

use crate::engine::{Accepted, Ending, Engine, Incoming, Listeners, Offence, Protocol};
use failure::Ending as Ended;

/// How long a disconnected session may take to wind down at shutdown
/// (uploads in progress recorded as aborted, the logout recorded).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running SFTP front-end; [`SftpServer::shutdown`] stops it.
pub(crate) struct SftpServer {
    listeners: Listeners,
}

impl SftpServer {
    /// Binds every `sftp.listen` address and starts accepting. An address
    /// that cannot be bound is an error: the server must not half-start.
    pub(crate) async fn start(engine: Engine, host_keys: Vec<russh::keys::PrivateKey>) -> anyhow::Result<Self> {
        let config = Arc::new(ssh::config(&engine, host_keys));
        let mut listeners = Listeners::new(engine.clone(), Protocol::Sftp);
        for addr in engine.config().sftp.listen.clone() {
            let (engine, config) = (engine.clone(), Arc::clone(&config));
            listeners
                .listen(addr, None, move |incoming| connection(incoming, engine.clone(), Arc::clone(&config)))
                .await?;
        }
        Ok(Self { listeners })
    }

    /// Stops accepting, disconnects every client, and waits (briefly) for
    /// their sessions to end.
    pub(crate) async fn shutdown(self) {
        self.listeners.shutdown().await;
    }

    /// The listeners, for a drain (close, then wait for the connections).
    pub(crate) fn listeners(&mut self) -> &mut Listeners {
        &mut self.listeners
    }
}

async fn connection(incoming: Incoming, engine: Engine, config: Arc<russh::server::Config>) {
    let Incoming { accepted: Accepted { stream, peer, permit, tripwire }, mut stop, alive, .. } = incoming;
    let logged_in = grace::LoginFlag::default();
    let grace_time = engine.config().limits.login_grace_time;
    // Cut when the address is banned before the client has logged in.
    let banned = {
        let engine = engine.clone();
        Box::pin(async move { engine.banned(peer).await })
    };
    // The tap is innermost: it must see every byte russh reads, the grace
    // stream's errors then reach russh as they did without it.
    let watch = kexinit::KexWatch::default();
    let stream = grace::GraceStream::new(watch.tap(stream), grace_time, logged_in.clone(), tripwire.clone(), banned);
    // The handler hands over the session's end signal once the user logs in.
    let (ending_to, ending) = oneshot::channel::<Ending>();
    let ended = async move {
        match ending.await {
            Ok(mut ending) => ending.ended().await,
            Err(_) => std::future::pending().await,
        }
    };
    let handler =
        ssh::Connection::new(engine.clone(), peer, logged_in.clone(), permit, alive, tripwire.clone(), ending_to);
    // Whatever broke the protocol before login is scored once, when the
    // connection ends; a key exchange that failed is reported then too.
    let report = |error: Option<&russh::Error>| {
        let abuse = tripwire.tripped().is_some() || error.is_some_and(|e| !logged_in.get() && is_abuse(e));
        if abuse {
            engine.offence(peer, Offence::ProtocolAbuse);
        }
        if !logged_in.get() {
            let ending = error.map_or(Ended::Closed, Ended::Error);
            if let Some(failure) = failure::classify(&ending, &watch.hello(), grace_time) {
                engine.handshake_failed(peer, Protocol::Sftp, &failure);
            }
        }
    };
    let session = match russh::server::run_stream(config, stream, handler).await {
        Ok(session) => session,
        Err(e) => {
            debug!(peer = %peer, error = %e, "ssh: connection setup failed");
            report(Some(&e));
            return;
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    tokio::pin!(ended);
    tokio::select! {
        result = &mut session => {
            if let Err(e) = &result {
                debug!(peer = %peer, error = %e, "ssh: connection ended with an error");
            }
            report(result.as_ref().err());
        }
        _ = stop.changed() => {
            let _ = handle
                .disconnect(Disconnect::ByApplication, "server shutting down".into(), String::new())
                .await;
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, session).await;
        }
        reason = &mut ended => {
            debug!(peer = %peer, reason = %reason, "ssh: session ended by an administrator's change");
            let _ = handle.disconnect(Disconnect::ByApplication, reason, String::new()).await;
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
