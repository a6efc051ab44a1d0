//! The audit trail of the running server: every event goes to the structured
//! log at once and to the catalog through one writer task, in order. Events
//! carry metadata only: never a password, never file contents.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passerelle_catalog::{AuditEvent, Ban, Catalog, TenantName};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::Protocol;
use super::grants::Grant;
use super::handshake::HandshakeFailure;
use super::metrics::Metrics;
use super::refusals::Summary;

/// Most events written in one transaction.
const BATCH: usize = 256;
/// How long the writer lets events gather before it commits them: a client
/// uploading files one by one would otherwise cost one catalog transaction
/// per file. Events are already in the log; a flush does not wait.
const LINGER: Duration = Duration::from_millis(100);

/// How long events the catalog refused wait before they are tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Most events kept for a catalog that refuses them (a full disk, a
/// database away); beyond, the oldest go (they are in the log already).
const MAX_UNSTORED: usize = 100_000;

/// What the writer task receives.
enum Message {
    Event(Box<AuditEvent>),
    /// Answered once every event sent before it is stored.
    Flush(oneshot::Sender<()>),
}

/// The writer task: stores events in order, in batches. Events the catalog
/// refuses are kept and stored with the next batch, or after [`RETRY`]:
/// a catalog that cannot write for a while (its disk full) delays the
/// trail, it neither loses it nor holds up a login.
async fn write_events(catalog: Catalog, mut receiver: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut unstored: Vec<AuditEvent> = Vec::new();
    loop {
        let received = if unstored.is_empty() {
            receiver.recv_many(&mut batch, BATCH).await
        } else {
            tokio::time::timeout(RETRY, receiver.recv_many(&mut batch, BATCH)).await.unwrap_or(usize::MAX)
        };
        if received == 0 {
            break;
        }
        // Whatever queues up while the last batch is written, or within
        // LINGER of its first event, is stored at once (all or none).
        // Asleep rather than waiting on the channel: events sent meanwhile
        // do not wake this task one by one.
        if received != usize::MAX && batch.len() < BATCH && !batch.iter().any(|m| matches!(m, Message::Flush(_))) {
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH
                && let Ok(message) = receiver.try_recv()
            {
                batch.push(message);
            }
        }
        let mut events = std::mem::take(&mut unstored);
        let mut flushed = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Event(event) => events.push(*event),
                Message::Flush(done) => flushed.push(done),
            }
        }
        if !events.is_empty()
            && let Err(e) = catalog.record_all(&events).await
        {
            warn!(error = %e, events = events.len(), "audit events not stored in the catalog yet; tried again in 1 s");
            let excess = events.len().saturating_sub(MAX_UNSTORED);
            if excess > 0 {
                warn!(dropped = excess, "audit events dropped from the catalog's backlog (they are in the log)");
            }
            unstored = events.split_off(excess);
        }
        // A flush waits for what could be stored: at shutdown, a catalog
        // that refuses events must not hold the server up.
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Hands audit events to the catalog writer.
pub(super) struct Auditor {
    sender: mpsc::UnboundedSender<Message>,
    metrics: Arc<Metrics>,
}

impl Auditor {
    /// Starts the writer task on the current runtime.
    pub(super) fn new(catalog: Catalog, metrics: Arc<Metrics>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(write_events(catalog, receiver));
        Self { sender, metrics }
    }

    /// Logs and stores one event, stamped now (it is stored a moment later).
    pub(super) fn record(&self, mut event: AuditEvent) {
        event.at.get_or_insert_with(passerelle_catalog::now_ms);
        info!(
            target: "audit",
            actor = %event.actor,
            tenant = event.tenant.as_deref().unwrap_or("-"),
            login = event.login.as_deref().unwrap_or("-"),
            ip = event.ip.as_deref().unwrap_or("-"),
            protocol = %event.protocol,
            action = %event.action,
            outcome = %event.outcome,
            path = event.path.as_deref().unwrap_or("-"),
            bytes = event.bytes,
            duration_ms = event.duration_ms,
            detail = event.detail.as_deref().unwrap_or("-"),
            "audit"
        );
        self.metrics.event(&event.protocol, &event.action, &event.outcome, event.bytes);
        // The receiver lives as long as the runtime; a send error only happens at shutdown.
        let _ = self.sender.send(Message::Event(Box::new(event)));
    }

    /// Waits until every event recorded so far is in the catalog.
    pub(super) async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }

    /// A login attempt and its outcome.
    pub(super) fn login(
        &self,
        peer: SocketAddr,
        protocol: Protocol,
        tenant: Option<&TenantName>,
        login: &str,
        outcome: &str,
        detail: &str,
    ) {
        self.record(AuditEvent {
            actor: login.to_owned(),
            tenant: tenant.map(ToString::to_string),
            login: Some(login.to_owned()),
            ip: Some(peer.ip().to_string()),
            protocol: protocol.as_str().into(),
            action: "login".into(),
            outcome: outcome.into(),
            detail: Some(detail.to_owned()),
            ..AuditEvent::default()
        });
    }

    /// A connection turned away before authentication.
    pub(super) fn connection_refused(&self, peer: SocketAddr, protocol: Protocol, reason: &str) {
        self.record(AuditEvent {
            actor: "-".into(),
            ip: Some(peer.ip().to_string()),
            protocol: protocol.as_str().into(),
            action: "connect".into(),
            outcome: "refused".into(),
            detail: Some(reason.to_owned()),
            ..AuditEvent::default()
        });
    }

    /// A TLS or SSH handshake that failed (see `handshake`).
    pub(super) fn handshake_failed(&self, peer: SocketAddr, protocol: Protocol, failure: &HandshakeFailure) {
        self.record(AuditEvent {
            actor: "-".into(),
            ip: Some(peer.ip().to_string()),
            protocol: protocol.as_str().into(),
            action: "handshake".into(),
            outcome: "failed".into(),
            detail: Some(format!("{} ({})", failure.detail, failure.reason)),
            ..AuditEvent::default()
        });
    }

    /// Repeated refusals of a source, counted over a window (see `refusals`).
    pub(super) fn refusals(&self, summary: &Summary) {
        self.record(AuditEvent {
            actor: "-".into(),
            ip: summary.source.map(|source| source.to_string()),
            protocol: summary.protocol.map_or("-", Protocol::as_str).into(),
            action: "connect".into(),
            outcome: "refused".into(),
            detail: Some(summary.text.clone()),
            ..AuditEvent::default()
        });
    }

    /// A live session ended by an administrator's change (its logout
    /// follows when the front-end has closed it).
    pub(super) fn session_ended(&self, grant: &Grant, reason: &str, lasted: Duration) {
        self.record(AuditEvent {
            actor: grant.login.to_string(),
            tenant: Some(grant.tenant.to_string()),
            login: Some(grant.login.to_string()),
            ip: Some(grant.peer.ip().to_string()),
            protocol: grant.protocol.as_str().into(),
            action: "session_end".into(),
            outcome: "ended".into(),
            duration_ms: Some(i64::try_from(lasted.as_millis()).unwrap_or(i64::MAX)),
            detail: Some(reason.to_owned()),
            ..AuditEvent::default()
        });
    }

    /// A source address banned by the defender.
    pub(super) fn ban(&self, ban: &Ban) {
        self.record(AuditEvent {
            actor: "defender".into(),
            ip: Some(ban.ip.clone()),
            protocol: "-".into(),
            action: "ban".into(),
            outcome: "banned".into(),
            duration_ms: Some(ban.expires_at - ban.banned_at),
            detail: Some(format!("{}; offence {}", ban.reason, ban.offences)),
            ..AuditEvent::default()
        });
    }

    /// A login locked after too many failed logins.
    pub(super) fn account_locked(
        &self,
        peer: SocketAddr,
        protocol: Protocol,
        tenant: &TenantName,
        login: &str,
        failures: u32,
        until: i64,
    ) {
        self.record(AuditEvent {
            actor: "defender".into(),
            tenant: Some(tenant.to_string()),
            login: Some(login.to_owned()),
            ip: Some(peer.ip().to_string()),
            protocol: protocol.as_str().into(),
            action: "account_lock".into(),
            outcome: "locked".into(),
            detail: Some(format!("{failures} failed logins; locked until {until} (Unix ms)")),
            ..AuditEvent::default()
        });
    }
}
