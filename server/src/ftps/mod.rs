//! The FTPS front-end: FTP (RFC 959, 2228, 2428, 3659, 4217) of our own on
//! tokio and rustls, over the engine's sessions and tenant filesystem.
//!
//! ```text
//!  TCP accept ─► Engine::accept ─► connection ─► prelogin ─────────────► postlogin
//!                 (PROXY header,                  explicit: clear,        filesystem commands,
//!                  bans, limits)                  AUTH TLS; implicit:     transfer ─► data::accept
//!                                                 TLS at once; then       (PASV/EPSV port, same IP,
//!                                                 USER/PASS via Engine     TLS resuming the control session)
//! ```
//!
//! Modules, one job each:
//!
//! - `connection` — one connection's life: prelogin, then postlogin.
//! - `prelogin` — before login: the clear text of explicit FTPS until
//!   `AUTH TLS`, the TLS handshake, USER/PASS, under the login grace time.
//! - `postlogin` — after login: filesystem commands, transfer set-up.
//! - `common` — the commands of every state (FEAT, HELP, NOOP, PBSZ, PROT...).
//! - `transfer` — data transfers and ABOR; `data` — data-connection checks;
//!   `passive` — data ports.
//! - `channel` — the command channel: lines in, replies out by their
//!   deadline; the connection's context.
//! - `listing` — LIST, NLST, MLSD and MLST formats, and listings.
//! - `line` — bounded command lines; `reply` — replies, including those to
//!   filesystem errors.
//! - `tls` — the TLS policy and the reloadable certificate; `handshake` —
//!   why a TLS handshake failed, for the engine's report.
//!
//! Imports between them form no circle: each module below uses only modules
//! listed after it. The two trust states never use each other, so nothing
//! after login can leak into the code a stranger reaches; both use the
//! command channel, and `transfer` knows nothing of the logged-in state it
//! serves.
//!
//! ```text
//!  connection ─► prelogin, postlogin, channel, tls
//!  postlogin  ─► transfer, common, channel, listing, passive, line, reply
//!  prelogin   ─► common, channel, handshake, line, reply
//!  transfer   ─► channel, data, passive, line, reply, tls
//!  common     ─► line, reply
//!  channel    ─► line, reply, tls
//!  data       ─► handshake, passive, tls
//!  listing, passive, line, reply, tls, handshake: no other module of the front-end
//! ```
//!
//! Non-features: plaintext FTP (no PROT C, no CCC, nothing but AUTH/FEAT/
//! HELP/NOOP/QUIT before TLS), active mode (PORT/EPRT: FTP bounce), APPE and
//! REST before STOR (uploads are atomic), ASCII conversion (TYPE A is
//! accepted and transfers byte for byte), SITE commands, symlinks.

mod channel;
pub(crate) mod common;
mod connection;
mod data;
mod handshake;
pub(crate) mod line;
mod listing;
mod passive;
mod postlogin;
mod prelogin;
mod reply;
mod tls;
mod transfer;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

use passive::PortLeases;
use prelogin::Mode;
use tls::{CertStore, TlsPolicy};

use crate::engine::{Engine, Listeners, Protocol};

/// The running FTPS front-end; [`FtpsServer::shutdown`] stops it.
pub(crate) struct FtpsServer {
    listeners: Listeners,
}

impl FtpsServer {
    /// Loads the certificate, binds every explicit and implicit address and
    /// starts accepting; SIGHUP reloads the certificate and key files.
    pub(crate) async fn start(engine: Engine) -> anyhow::Result<Self> {
        let config = &engine.config().ftps;
        let certs = Arc::new(CertStore::load(&config.cert, &config.key).context("FTPS certificate")?);
        let policy = TlsPolicy::new(config, Arc::clone(&certs)).context("FTPS TLS policy")?;
        let ports = Arc::new(PortLeases::default());
        let mut listeners = Listeners::new(engine.clone(), Protocol::Ftps);
        let listens = config.explicit_listen.iter().map(|a| (*a, Mode::Explicit));
        for (addr, mode) in listens.chain(config.implicit_listen.iter().map(|a| (*a, Mode::Implicit))) {
            let name = if mode == Mode::Explicit { "explicit" } else { "implicit" };
            let (engine, policy, ports) = (engine.clone(), policy.clone(), Arc::clone(&ports));
            listeners
                .listen(addr, Some(name), move |incoming| {
                    connection::serve(incoming, engine.clone(), policy.clone(), Arc::clone(&ports), mode)
                })
                .await?;
        }
        listeners.spawn(reload_on_sighup(certs, listeners.stop_signal()));
        Ok(Self { listeners })
    }

    /// Stops accepting, tells every client (421), and waits briefly for
    /// their sessions to end.
    pub(crate) async fn shutdown(self) {
        self.listeners.shutdown().await;
    }

    /// The listeners, for a drain (close, then wait for the connections).
    pub(crate) fn listeners(&mut self) -> &mut Listeners {
        &mut self.listeners
    }
}

/// Reloads the certificate on SIGHUP; a broken new pair keeps the old one.
async fn reload_on_sighup(certs: Arc<CertStore>, mut stop: watch::Receiver<bool>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            warn!(error = %e, "ftps: cannot listen for SIGHUP; certificate reload disabled");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = hangup.recv() => if received.is_none() { return },
        }
        match certs.reload() {
            Ok(()) => info!("ftps: certificate reloaded"),
            Err(e) => warn!(error = %e, "ftps: certificate not reloaded; the previous one stays in use"),
        }
    }
}
