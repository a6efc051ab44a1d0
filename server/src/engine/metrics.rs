//! Prometheus metrics of the running server, served by the admin endpoint.
//!
//! Counters come from the audit trail (every event any front-end records
//! counts once, by protocol, action and outcome; bytes of transfers too), so
//! there is one place where things are counted and the numbers agree with
//! `passerelle audit`. Gauges (connections, sessions, bans, import jobs)
//! are read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of an audit event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    protocol: String,
    action: String,
    outcome: String,
}

/// Labels of a byte counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    protocol: String,
    action: String,
}

/// Labels of the handshake failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    protocol: String,
    reason: String,
}

/// Labels of the import job gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// What the server is doing, as numbers.
pub(crate) struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    connections: Gauge,
    sessions: Gauge,
    bans: Gauge,
    import_jobs: Family<StatusLabels, Gauge>,
    catalog_up: Gauge,
    password_checks: Gauge,
    password_checks_refused: Counter,
    handshake_failures: Family<HandshakeLabels, Counter>,
}

/// One password verification running; counted out when dropped.
pub(super) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Gauges read at scrape time.
pub(crate) struct Snapshot {
    /// Open client connections.
    pub(crate) connections: u32,
    /// Logged-in sessions.
    pub(crate) sessions: u32,
    /// Addresses banned now.
    pub(crate) bans: usize,
    /// Import jobs per status; `None` when the catalog did not answer.
    pub(crate) import_jobs: Option<Vec<(String, i64)>>,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("passerelle");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Audit events, by protocol, action and outcome", events.clone());
        let bytes = Family::<BytesLabels, Counter>::default();
        registry.register("transferred_bytes", "Bytes of uploads and downloads, by protocol", bytes.clone());
        let connections = Gauge::default();
        registry.register("connections", "Open client connections", connections.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Logged-in sessions", sessions.clone());
        let bans = Gauge::default();
        registry.register("bans", "Source addresses banned now", bans.clone());
        let import_jobs = Family::<StatusLabels, Gauge>::default();
        registry.register("import_jobs", "Import jobs in the catalog, by status", import_jobs.clone());
        let catalog_up = Gauge::default();
        registry.register("catalog_up", "Whether the catalog answered the last scrape", catalog_up.clone());
        let password_checks = Gauge::default();
        registry.register(
            "password_checks_in_flight",
            "Password verifications running now (at most limits.max_concurrent_password_checks)",
            password_checks.clone(),
        );
        let password_checks_refused = Counter::default();
        registry.register(
            "password_checks_refused",
            "Password checks refused because every verification slot stayed busy",
            password_checks_refused.clone(),
        );
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "handshake_failures",
            "TLS and SSH handshakes that failed, by protocol and reason",
            handshake_failures.clone(),
        );
        Self {
            registry,
            events,
            bytes,
            connections,
            sessions,
            bans,
            import_jobs,
            catalog_up,
            password_checks,
            password_checks_refused,
            handshake_failures,
        }
    }

    /// Counts one failed handshake.
    pub(super) fn handshake_failure(&self, protocol: &str, reason: &str) {
        let labels = HandshakeLabels { protocol: protocol.to_owned(), reason: reason.to_owned() };
        self.handshake_failures.get_or_create(&labels).inc();
    }

    /// Counts a password verification in until the returned guard drops.
    pub(super) fn password_check_started(&self) -> InFlight {
        self.password_checks.inc();
        InFlight(self.password_checks.clone())
    }

    /// Counts a password check refused for want of a verification slot.
    pub(super) fn password_check_refused(&self) {
        self.password_checks_refused.inc();
    }

    /// Counts one audit event.
    pub(super) fn event(&self, protocol: &str, action: &str, outcome: &str, bytes: Option<i64>) {
        let labels =
            EventLabels { protocol: protocol.to_owned(), action: action.to_owned(), outcome: outcome.to_owned() };
        self.events.get_or_create(&labels).inc();
        if let Some(bytes) = bytes.and_then(|b| u64::try_from(b).ok())
            && outcome == "ok"
            && matches!(action, "upload" | "download")
        {
            let labels = BytesLabels { protocol: protocol.to_owned(), action: action.to_owned() };
            self.bytes.get_or_create(&labels).inc_by(bytes);
        }
    }

    /// The Prometheus text exposition, with the gauges set from `snapshot`.
    pub(crate) fn render(&self, snapshot: Snapshot) -> String {
        self.connections.set(i64::from(snapshot.connections));
        self.sessions.set(i64::from(snapshot.sessions));
        self.bans.set(i64::try_from(snapshot.bans).unwrap_or(i64::MAX));
        self.catalog_up.set(i64::from(snapshot.import_jobs.is_some()));
        if let Some(counts) = snapshot.import_jobs {
            self.import_jobs.clear();
            for (status, count) in counts {
                self.import_jobs.get_or_create(&StatusLabels { status }).set(count);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
