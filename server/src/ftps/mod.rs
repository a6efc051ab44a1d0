//! The FTPS front-end: FTP (RFC 959, 2228, 2428, 3659, 4217) of our own on
//! tokio and rustls, over the engine's sessions and tenant filesystem.
//!
//! ```text
//!  TCP accept ─► Engine::accept ─► control::run ──────────────► session::LoggedIn
//!                 (PROXY header,    explicit: clear, AUTH TLS    filesystem commands,
//!                  bans, limits)    implicit: TLS at once        transfer::run ─► data::accept
//!                                   then USER/PASS via Engine    (PASV/EPSV port, same IP,
//!                                                                 TLS resuming the control session)
//! ```
//!
//! - `tls` — the TLS policy and the reloadable certificate.
//! - `line` — bounded command lines; `reply` — replies.
//! - `control` — the connection by trust state (clear, TLS, logged in).
//! - `session` — logged-in commands; `transfer` — data transfers and ABOR.
//! - `passive` — data ports; `data` — data-connection checks;
//!   `listing` — LIST, NLST, MLSD and MLST formats.
//!
//! Non-features: plaintext FTP (no PROT C, no CCC, nothing but AUTH/FEAT/
//! HELP/NOOP/QUIT before TLS), active mode (PORT/EPRT: FTP bounce), APPE and
//! REST before STOR (uploads are atomic), ASCII conversion (TYPE A is
//! accepted and transfers byte for byte), SITE commands, symlinks.

mod control;
mod data;
mod line;
mod listing;
mod passive;
mod reply;
mod session;
mod tls;
mod transfer;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

pub(crate) use control::Mode;
use tls::{CertStore, TlsPolicy};

use crate::engine::{Accepted, Engine, Incoming, Listeners, Protocol};

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
        let mut listeners = Listeners::new(engine.clone(), Protocol::Ftps);
        let listens = config.explicit_listen.iter().map(|a| (*a, Mode::Explicit));
        for (addr, mode) in listens.chain(config.implicit_listen.iter().map(|a| (*a, Mode::Implicit))) {
            let name = if mode == Mode::Explicit { "explicit" } else { "implicit" };
            let (engine, policy) = (engine.clone(), policy.clone());
            listeners
                .listen(addr, Some(name), move |incoming| connection(incoming, engine.clone(), policy.clone(), mode))
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
}

/// Serves one admitted control connection.
async fn connection(incoming: Incoming, engine: Engine, policy: TlsPolicy, mode: Mode) {
    let Incoming { accepted: Accepted { stream, peer, permit, tripwire }, local, stop, alive } = incoming;
    let local_ip = local.ip().to_canonical();
    let ctx = control::Context { engine, peer, local_ip, tls: policy.session(), tripwire, stop };
    control::run(ctx, stream, mode, permit).await;
    drop(alive);
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
