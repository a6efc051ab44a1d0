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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub(crate) use control::Mode;
use tls::{CertStore, TlsPolicy};

use crate::engine::{Accepted, Engine, Protocol};

/// How long a shutdown waits for connections to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running FTPS front-end; [`FtpsServer::shutdown`] stops it.
pub(crate) struct FtpsServer {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Every connection task holds a clone; all gone means all ended.
    alive: mpsc::Sender<()>,
    all_ended: mpsc::Receiver<()>,
}

impl FtpsServer {
    /// Loads the certificate, binds every explicit and implicit address and
    /// starts accepting; SIGHUP reloads the certificate and key files.
    pub(crate) async fn start(engine: Engine) -> anyhow::Result<Self> {
        let config = &engine.config().ftps;
        let certs = Arc::new(CertStore::load(&config.cert, &config.key).context("FTPS certificate")?);
        let policy = TlsPolicy::new(config, Arc::clone(&certs)).context("FTPS TLS policy")?;
        let (stop, _) = watch::channel(false);
        let (alive, all_ended) = mpsc::channel(1);
        let mut tasks = JoinSet::new();
        let listens = config.explicit_listen.iter().map(|a| (*a, Mode::Explicit));
        for (addr, mode) in listens.chain(config.implicit_listen.iter().map(|a| (*a, Mode::Implicit))) {
            let name = if mode == Mode::Explicit { "explicit" } else { "implicit" };
            let listener =
                TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (ftps {name})"))?;
            info!(addr = %listener.local_addr().unwrap_or(addr), mode = name, "ftps listening");
            let acceptor = Acceptor { engine: engine.clone(), policy: policy.clone(), mode, stop: stop.subscribe() };
            tasks.spawn(acceptor.run(listener, alive.clone()));
        }
        tasks.spawn(reload_on_sighup(certs, stop.subscribe()));
        Ok(Self { stop, tasks, alive, all_ended })
    }

    /// Stops accepting, tells every client (421), and waits briefly for
    /// their sessions to end.
    pub(crate) async fn shutdown(self) {
        let Self { stop, mut tasks, alive, mut all_ended } = self;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        drop(alive);
        if tokio::time::timeout(SHUTDOWN_GRACE, all_ended.recv()).await.is_err() {
            warn!("ftps: some connections did not end in time");
        }
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

/// One listening address.
struct Acceptor {
    engine: Engine,
    policy: TlsPolicy,
    mode: Mode,
    stop: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener, alive: mpsc::Sender<()>) {
        let mut stop = self.stop.clone();
        loop {
            let accepted = tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let connection = self.connection(stream, peer, alive.clone());
                    tokio::spawn(connection);
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "ftps: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        alive: mpsc::Sender<()>,
    ) -> impl Future<Output = ()> + use<> {
        let (engine, policy, mode, stop) = (self.engine.clone(), self.policy.clone(), self.mode, self.stop.clone());
        async move {
            let local_ip = match stream.local_addr() {
                Ok(local) => local.ip().to_canonical(),
                Err(_) => return,
            };
            // A PROXY header, a ban or a limit may end it here (audited by the engine).
            let Some(Accepted { stream, peer, permit, tripwire }) = engine.accept(stream, peer, Protocol::Ftps).await
            else {
                return;
            };
            let _ = stream.socket().set_nodelay(true);
            let ctx = control::Context { engine, peer, local_ip, tls: policy.session(), tripwire, stop };
            control::run(ctx, stream, mode, permit).await;
            drop(alive);
        }
    }
}
