//! The listening side of a protocol front-end: one accept loop per address,
//! one stop signal, and a drain at shutdown. Every accepted connection goes
//! through [`Engine::accept`] (PROXY header, bans, limits) before the
//! front-end sees it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::{Accepted, Engine, Protocol};

/// How long a shutdown waits for connections told to end to wind down
/// (uploads in progress recorded as aborted, sessions logged out) before
/// giving up; the drain before it is `shutdown.drain_timeout`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long an accept loop pauses after a failed accept (out of
/// descriptors and the like) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Held by everything a connection runs (its tasks included): a shutdown
/// waits until every copy is gone.
#[derive(Clone)]
pub(crate) struct Alive(#[expect(dead_code, reason = "held for its drop, never read")] mpsc::Sender<()>);

/// One connection, handed to the front-end once the engine admitted it.
pub(crate) struct Incoming {
    /// The client's stream, address and permits.
    pub(crate) accepted: Accepted,
    /// The address the client reached us at.
    pub(crate) local: SocketAddr,
    /// Turns true at shutdown.
    pub(crate) stop: watch::Receiver<bool>,
    /// Hold it (and clone it into the connection's tasks) until the
    /// connection has ended.
    pub(crate) alive: Alive,
}

/// The listeners of one front-end and everything they started.
pub(crate) struct Listeners {
    engine: Engine,
    protocol: Protocol,
    stop: watch::Sender<bool>,
    /// Turns true when the listeners close (a drain): accepting stops,
    /// connections go on.
    closing: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Dropped when the listeners close, so that `all_ended` then only
    /// waits for the connections.
    alive: Option<mpsc::Sender<()>>,
    all_ended: mpsc::Receiver<()>,
}

impl Listeners {
    /// No listener yet.
    pub(crate) fn new(engine: Engine, protocol: Protocol) -> Self {
        let (stop, _) = watch::channel(false);
        let (closing, _) = watch::channel(false);
        let (alive, all_ended) = mpsc::channel(1);
        Self { engine, protocol, stop, closing, tasks: JoinSet::new(), alive: Some(alive), all_ended }
    }

    /// Binds `addr` and serves every admitted connection with `serve`. An
    /// address that cannot be bound is an error: the server must not
    /// half-start. `mode` names the listener in logs and errors, if the
    /// front-end has several kinds.
    pub(crate) async fn listen<S, F>(
        &mut self,
        addr: SocketAddr,
        mode: Option<&'static str>,
        serve: S,
    ) -> anyhow::Result<()>
    where
        S: Fn(Incoming) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let protocol = self.protocol.as_str();
        let what = mode.map_or_else(|| protocol.to_owned(), |mode| format!("{protocol} {mode}"));
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({what})"))?;
        let local = listener.local_addr().unwrap_or(addr);
        match mode {
            Some(mode) => info!(addr = %local, mode, "{protocol} listening"),
            None => info!(addr = %local, "{protocol} listening"),
        }
        let alive = self.alive.clone().context("listeners closed already")?;
        let acceptor = Acceptor {
            engine: self.engine.clone(),
            protocol: self.protocol,
            stop: self.stop.subscribe(),
            closing: self.closing.subscribe(),
            alive,
        };
        self.tasks.spawn(acceptor.run(listener, serve));
        Ok(())
    }

    /// Runs `task` beside the listeners until shutdown (it should end when
    /// [`Listeners::stop_signal`] turns true).
    pub(crate) fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// A receiver of the stop signal.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops accepting (the listening sockets close); live connections go on.
    pub(crate) fn close(&mut self) {
        let _ = self.closing.send(true);
        self.alive = None;
    }

    /// Resolves once every connection has ended (after [`Listeners::close`]).
    pub(crate) async fn drained(&mut self) {
        // Nothing is ever sent: `None` once every sender is gone.
        let _ = self.all_ended.recv().await;
    }

    /// Stops accepting, tells every connection to end, and waits (briefly)
    /// for them to do so.
    pub(crate) async fn shutdown(self) {
        let Self { protocol, stop, mut tasks, alive, mut all_ended, .. } = self;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        drop(alive);
        if tokio::time::timeout(SHUTDOWN_GRACE, all_ended.recv()).await.is_err() {
            warn!("{}: some connections did not end in time", protocol.as_str());
        }
    }
}

/// One accept loop.
struct Acceptor {
    engine: Engine,
    protocol: Protocol,
    stop: watch::Receiver<bool>,
    closing: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Acceptor {
    async fn run<S, F>(self, listener: TcpListener, serve: S)
    where
        S: Fn(Incoming) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let serve = Arc::new(serve);
        let (mut stop, mut closing) = (self.stop.clone(), self.closing.clone());
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.changed() => return,
                _ = closing.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "{}: accept failed", self.protocol.as_str());
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let Ok(local) = stream.local_addr() else { continue };
            let (engine, protocol, alive) = (self.engine.clone(), self.protocol, Alive(self.alive.clone()));
            let stop = self.stop.clone();
            let admitted = async move {
                // A PROXY header, a ban or a limit may end it here (audited by the engine).
                let accepted = engine.accept(stream, peer, protocol).await?;
                let _ = accepted.stream.socket().set_nodelay(true);
                Some(Incoming { accepted, local, stop, alive })
            };
            let serve = Arc::clone(&serve);
            // Admission (reading a PROXY header) runs in the connection's own
            // task, so one slow client never holds the accept loop.
            let connection = async move {
                if let Some(incoming) = admitted.await {
                    serve(incoming).await;
                }
            };
            tokio::spawn(connection);
        }
    }
}
