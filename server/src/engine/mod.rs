//! The engine every protocol front-end drives: authentication against the
//! catalog, the tenant filesystem, connection limits, the audit trail and the
//! upload-completed events. Front-ends parse their protocol and call in here;
//! they never touch the disk or the catalog themselves.
//!
//! ```text
//!   SFTP ─┐                 ┌─ proxy    (PROXY protocol v1/v2 from trusted proxies)
//!   FTPS ─┼──► Engine ──────┼─ source   (IPv4 address or IPv6 /64: what is scored and limited)
//!         │      │          ├─ defender (scores, bans: dropped at accept)
//!         │      │          ├─ handshake (failed TLS/SSH handshakes: counted, logged, audited)
//!         │      │          ├─ auth     (catalog, argon2id, allowlists, account locks,
//!         │      │          │            same answer for every failure)
//!         │      │          ├─ password_checks (argon2 verifications: bounded, queued ≤ 1 s)
//!         │      │          ├─ fs       (TenantFs: chrooted, cap-std)
//!         │      │          ├─ limits   (connection rate and connections per source, startups,
//!         │      │          │            sessions per user, open files per session, per user, in all)
//!         │      │          ├─ grants   (live sessions, ended when an admin change withdraws them)
//!         │      │          ├─ cluster  (heartbeat, state, other nodes' sessions, periodic duties)
//!         │      │          ├─ quota    (per-tenant bytes and files, reserved as uploads grow)
//!         │   Session       ├─ audit    (catalog + tracing)
//!         │                 ├─ space    (data_dir's free space: uploads stop at the reserve)
//!         │                 └─ uploads  (upload-completed events → import pipeline)
//! ```
//!
//! A front-end hands every accepted TCP connection to [`Engine::accept`],
//! which reads a PROXY header when the peer is a trusted proxy (answering a
//! proxy's own health check itself), drops banned sources and applies the
//! connection rate and limits, before any protocol work.

mod audit;
mod auth;
mod chain_check;
mod cluster;
mod defender;
pub(crate) mod fs;
mod grants;
mod handshake;
mod limits;
mod listeners;
mod metrics;
mod nofile;
mod password_checks;
pub(crate) mod proxy;
mod quota;
mod rate;
mod refusals;
mod retention;
mod session;
mod source;
mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;

use passerelle_catalog::{Catalog, FailureCount, LockPolicy, Login, NodeState, TenantName};
use passerelle_config::Config;
use passerelle_tree::{DiskSpace, LowSpace};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

pub(crate) use auth::{Credentials, LoginAttempts, LoginRefused};
pub(crate) use defender::{Offence, Tripwire};
pub(crate) use grants::Ending;
pub(crate) use handshake::{HandshakeFailure, HandshakeReason};
pub(crate) use limits::ConnectionPermit;
use limits::Refusal;
pub(crate) use listeners::{Alive, Incoming, Listeners};
pub(crate) use nofile::raise as raise_open_file_limit;
pub(crate) use proxy::ClientStream;
pub(crate) use session::{DirListing, DownloadEnd, IncomingFile, OutgoingFile, Overwrite, Session};
pub(crate) use source::{BanTarget, parse_network};

use crate::data_dir::DataDir;

/// The SSH identification line (without its CRLF): sent by the SFTP
/// front-end, and to a trusted proxy's health checks.
pub(crate) const SSH_ID: &str = "SSH-2.0-passerelle";

/// Which front-end a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// SSH File Transfer Protocol.
    Sftp,
    /// FTP over TLS, explicit or implicit.
    Ftps,
}

impl Protocol {
    /// The name used in logs and the audit trail.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sftp => "sftp",
            Self::Ftps => "ftps",
        }
    }
}

/// Shared state of the running server; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    config: Arc<Config>,
    data_dir: DataDir,
    limits: limits::Limits,
    audit: audit::Auditor,
    uploads: uploads::UploadEvents,
    defender: Arc<defender::Defender>,
    metrics: Arc<metrics::Metrics>,
    /// Live sessions and what their right to stay connected rests on.
    grants: Arc<grants::Registry>,
    /// Refused connections, counted per source between summaries.
    refusals: refusals::Refusals,
    /// Per-tenant quota trackers.
    quotas: Arc<quota::Quotas>,
    /// Free space under `data_dir`, against `uploads.min_free_space`.
    space: DiskSpace,
    /// The bound on concurrent argon2 verifications.
    password_checks: password_checks::PasswordChecks,
    /// The last backup status the schedule saw; `None` when backups are off.
    backups: Option<std::sync::Mutex<crate::backup::Status>>,
    /// This node among those sharing the catalog.
    cluster: cluster::Cluster,
}

/// A connection that passed [`Engine::accept`].
pub(crate) struct Accepted {
    /// The client's stream (after any PROXY header).
    pub(crate) stream: ClientStream,
    /// The client's address: the PROXY header's source when proxied.
    pub(crate) peer: SocketAddr,
    /// Held for the connection's lifetime.
    pub(crate) permit: ConnectionPermit,
    /// Tripped by the layers under the protocol when the client misbehaves.
    pub(crate) tripwire: Tripwire,
}

impl Engine {
    /// Builds the engine over an opened catalog and data directory.
    pub(crate) fn new(config: Arc<Config>, catalog: Catalog, data_dir: DataDir) -> Self {
        let capped = source::Capped::new(&config.defender);
        let limits = limits::Limits::new(&config.limits, capped, nofile::client_share());
        let metrics = Arc::new(metrics::Metrics::new());
        let audit = audit::Auditor::new(catalog.clone(), Arc::clone(&metrics));
        let defender = defender::Defender::new(config.defender.clone(), catalog.clone());
        let quotas = quota::Quotas::new(catalog.clone(), data_dir.clone(), config.quotas);
        let space = DiskSpace::new(data_dir.root(), config.uploads.min_free_space.bytes());
        let password_checks =
            password_checks::PasswordChecks::new(config.limits.max_concurrent_password_checks, Arc::clone(&metrics));
        let backups = config.backup.target.as_ref().map(|_| std::sync::Mutex::default());
        let cluster = cluster::Cluster::new(&config);
        let inner = Arc::new(Inner {
            catalog,
            config,
            data_dir,
            limits,
            audit,
            uploads: uploads::UploadEvents::new(),
            defender,
            metrics,
            quotas,
            space,
            grants: Arc::default(),
            refusals: refusals::Refusals::default(),
            password_checks,
            backups,
            cluster,
        });
        tokio::spawn(grants::watch_catalog(Arc::downgrade(&inner)));
        tokio::spawn(refusals::summarise(Arc::downgrade(&inner)));
        tokio::spawn(retention::prune(Arc::downgrade(&inner)));
        tokio::spawn(chain_check::check(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Loads the bans in force from the catalog; called once before the
    /// listeners open (afterwards they are refreshed every second).
    pub(crate) async fn load_bans(&self) -> anyhow::Result<()> {
        self.inner.defender.refresh().await?;
        Ok(())
    }

    /// Writes this node's first heartbeat (its row in `nodes`, the other
    /// nodes' sessions read), then beats every third of
    /// `cluster.lease_timeout`; called once, before the listeners open.
    pub(crate) async fn join_cluster(&self) -> anyhow::Result<()> {
        cluster::beat(&self.inner).await?;
        info!(node = self.inner.cluster.id(), "cluster: node registered in the catalog");
        let every = self.inner.config.cluster.heartbeat_interval();
        tokio::spawn(cluster::heartbeat(Arc::downgrade(&self.inner), every));
        Ok(())
    }

    /// Marks the node `draining` (SIGTERM): `/healthz` answers 503 from now
    /// on, and the catalog says so at once.
    pub(crate) async fn drain(&self) {
        self.inner.cluster.set_state(NodeState::Draining);
        if let Err(e) = cluster::beat(&self.inner).await {
            warn!(error = %e, "cluster: the draining state is not in the catalog");
        }
    }

    /// Whether the node is stopping (draining or stopped).
    pub(crate) fn draining(&self) -> bool {
        self.inner.cluster.state() != NodeState::Running
    }

    /// Records the node `stopped` and gives its periodic duties back; the
    /// last thing `serve` does with the catalog.
    pub(crate) async fn leave_cluster(&self) {
        match cluster::leave(&self.inner).await {
            Ok(()) => info!(node = self.inner.cluster.id(), "cluster: node recorded as stopped"),
            Err(e) => warn!(error = %e, "cluster: the stopped state is not in the catalog (the node shows as gone)"),
        }
    }

    /// Whether this node holds periodic duty `name` (see `cluster::holds_duty`).
    pub(crate) async fn holds_duty(&self, name: &str) -> bool {
        cluster::holds_duty(&self.inner.catalog, &self.inner.config, name).await
    }

    /// The effective configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Takes a freshly accepted TCP connection: reads the PROXY header of a
    /// trusted proxy, then drops banned sources and applies the connection
    /// rate and limits. `None`: the connection is dropped (closing the socket).
    pub(crate) async fn accept(&self, mut stream: TcpStream, peer: SocketAddr, protocol: Protocol) -> Option<Accepted> {
        let mut peer = proxy::canonical(peer);
        let tripwire = Tripwire::default();
        let trusted = &self.inner.config.proxy_protocol.trusted_proxies;
        let stream = if trusted.iter().any(|net| net.contains(&peer.ip())) {
            match proxy::read_header(&mut stream).await {
                Ok((Some(source), rest)) => {
                    peer = source;
                    ClientStream::proxied(stream, rest, tripwire.clone())
                }
                Ok((None, _)) => {
                    health_check(stream, peer, protocol).await;
                    return None;
                }
                Err(e) => {
                    // Not scored: banning a trusted proxy would ban every client behind it.
                    self.refused(peer, protocol, &format!("bad PROXY header from a trusted proxy: {e}"));
                    return None;
                }
            }
        } else {
            ClientStream::direct(stream, tripwire.clone())
        };
        if self.inner.defender.is_banned(peer.ip()) {
            // Not scored: the source is banned already.
            self.refused(peer, protocol, "banned");
            return None;
        }
        match self.inner.limits.admit(self.inner.defender.source(peer.ip())) {
            Ok(permit) => Some(Accepted { stream, peer, permit, tripwire }),
            Err(refusal) => {
                self.refused(peer, protocol, &refusal.to_string());
                let offence = match refusal {
                    Refusal::TooManyFromAddress => Offence::LimitExceeded,
                    Refusal::TooManyConnections | Refusal::StartupDropped | Refusal::RateExceeded { .. } => {
                        Offence::RefusedConnection
                    }
                };
                self.offence(peer, offence);
                None
            }
        }
    }

    /// Records a refused connection: in full when it is the first of its
    /// source and reason for a while, else only counted (see `refusals`).
    fn refused(&self, peer: SocketAddr, protocol: Protocol, reason: &str) {
        if self.inner.refusals.first(self.inner.defender.source(peer.ip()), protocol, reason) {
            warn!(
                peer = %peer,
                reason,
                "{}: connection refused (repeats from this source are counted for a minute, then summarised)",
                protocol.as_str()
            );
            self.inner.audit.connection_refused(peer, protocol, reason);
        }
    }

    /// Records a failed TLS or SSH handshake: counted in `/metrics` by
    /// protocol and reason; logged and audited in full when it is the first
    /// of its source and reason for a minute, else only counted (see
    /// `handshake`).
    pub(crate) fn handshake_failed(&self, peer: SocketAddr, protocol: Protocol, failure: &HandshakeFailure) {
        self.inner.metrics.handshake_failure(protocol.as_str(), failure.reason.label());
        let key = format!("handshake failed ({})", failure.reason);
        if self.inner.refusals.first(self.inner.defender.source(peer.ip()), protocol, &key) {
            warn!(
                peer = %peer,
                reason = failure.reason.label(),
                detail = %failure.detail,
                "{}: handshake failed (repeats from this source are counted for a minute, then summarised)",
                protocol.as_str()
            );
            self.inner.audit.handshake_failed(peer, protocol, failure);
        }
    }

    /// Resolves once `peer` is banned: a front-end then cuts the connection
    /// if it has not logged in yet.
    pub(crate) async fn banned(&self, peer: SocketAddr) {
        self.inner.defender.banned(peer.ip()).await;
    }

    /// Scores an offence of `peer`'s source; bans the source (in the
    /// catalog, audited) when its score reaches the threshold.
    pub(crate) fn offence(&self, peer: SocketAddr, offence: Offence) {
        let Some(ban) = self.inner.defender.score(peer.ip(), offence) else { return };
        let engine = self.clone();
        tokio::spawn(async move {
            match engine.inner.defender.store(&ban).await {
                Ok(stored) => engine.inner.audit.ban(&stored),
                Err(e) => {
                    warn!(source = %ban.source, error = %e, "defender: ban not stored in the catalog (kept in memory)");
                }
            }
        });
    }

    /// Counts a failed login of an existing user in the catalog; locks the
    /// login for `account_lock.lock_time` when it failed too often, from
    /// any source (see `auth` for which failures count).
    async fn count_failure(&self, tenant: &TenantName, login: &Login, peer: SocketAddr, protocol: Protocol) {
        let lock = &self.inner.config.account_lock;
        if lock.max_failures == 0 {
            return;
        }
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let policy = LockPolicy {
            max_failures: lock.max_failures,
            window_ms: millis(lock.observation_time),
            lock_ms: millis(lock.lock_time),
        };
        match self.inner.catalog.count_login_failure(login, policy, passerelle_catalog::now_ms()).await {
            Ok(FailureCount::Locked(until)) => {
                self.inner.audit.account_locked(peer, protocol, tenant, login.as_str(), lock.max_failures, until);
            }
            Ok(FailureCount::Counted(_) | FailureCount::NotCounted) => {}
            Err(e) => warn!(login = %login, error = %e, "failed login not counted in the catalog"),
        }
    }

    /// The Prometheus exposition of the server's metrics (the catalog is
    /// asked for the import job counts).
    pub(crate) async fn metrics(&self) -> String {
        let (connections, sessions) = self.inner.limits.in_use();
        let import_jobs = self.inner.catalog.import_job_counts().await.ok();
        let bans = self.inner.defender.active_bans();
        self.inner.metrics.render(metrics::Snapshot { connections, sessions, bans, import_jobs })
    }

    /// Whether the catalog answers.
    pub(crate) async fn healthy(&self) -> bool {
        self.inner.catalog.import_job_counts().await.is_ok()
    }

    /// The data directory's free space and its reserve, shared with the
    /// import pipeline.
    pub(crate) fn disk_space(&self) -> DiskSpace {
        self.inner.space.clone()
    }

    /// Where the import pipeline counts what its jobs do (`/metrics`).
    pub(crate) fn import_observer(&self) -> Arc<dyn passerelle_import::Observer> {
        Arc::<metrics::Metrics>::clone(&self.inner.metrics)
    }

    /// Measures the data directory's free space now: [`LowSpace`] when it
    /// is below the reserve (uploads are refused meanwhile).
    pub(crate) fn low_space(&self) -> Option<LowSpace> {
        self.inner.space.check().err()
    }

    /// Hands every upload that completes from now on to the import
    /// pipeline's intake, before its client hears of it.
    pub(crate) fn attach_intake(&self, intake: passerelle_import::Intake) {
        self.inner.uploads.attach(intake);
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &DataDir {
        &self.inner.data_dir
    }

    /// Records an event of the server's own (a backup's) in the audit trail.
    pub(crate) fn audit(&self, event: passerelle_catalog::AuditEvent) {
        self.inner.audit.record(event);
    }

    /// Counts a failed backup run (`run`) or verification (`verify`) in `/metrics`.
    pub(crate) fn backup_failed(&self, kind: &str) {
        self.inner.metrics.backup_failed(kind);
    }

    /// Publishes the backup status to `/metrics` and `/healthz`.
    pub(crate) fn backup_status(&self, status: &crate::backup::Status) {
        self.inner.metrics.backup_successes(status.backed_up_at, status.verified_at);
        if let Some(current) = &self.inner.backups {
            *current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = status.clone();
        }
    }

    /// Why `/healthz` says the backups are degraded (the last verified snapshot is older than
    /// 26 h, or there is none); `None` when they are fine or off.
    pub(crate) fn backups_degraded(&self) -> Option<String> {
        let current = self.inner.backups.as_ref()?;
        current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).degraded()
    }

    /// The catalog, on the server's runtime.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// Waits until every audit event recorded so far is stored; called at
    /// shutdown, after the front-ends closed their sessions, so the last
    /// logouts reach the catalog before it closes.
    pub(crate) async fn flush_audit(&self) {
        refusals::write(&self.inner, true);
        self.inner.audit.flush().await;
    }
}

/// Answers a trusted proxy's own health check (PROXY v1 `UNKNOWN`, v2
/// `LOCAL`): there is no client, so no authentication is offered and nothing
/// is scored or audited. SFTP sends its identification line, FTPS a `421`
/// line, and the connection is closed.
async fn health_check(mut stream: TcpStream, proxy: SocketAddr, protocol: Protocol) {
    let reply = match protocol {
        Protocol::Sftp => format!("{SSH_ID}\r\n"),
        Protocol::Ftps => "421 Health check answered: no login without a client address (PROXY LOCAL).\r\n".into(),
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
    debug!(proxy = %proxy, "{}: health check of a trusted proxy answered", protocol.as_str());
}
