//! Prometheus metrics of the running server, served by the admin endpoint.
//!
//! Counters come from the audit trail (every event any front-end records
//! counts once, by protocol, action and outcome; bytes of transfers too), so
//! there is one place where things are counted and the numbers agree with
//! `passerelle audit`. Gauges (connections, sessions, bans, import jobs)
//! are read when scraped. The import pipeline counts its own figures (rows
//! imported, bytes validated, close → receipt and job durations) through
//! [`passerelle_import::Observer`].

use std::time::Duration;

use passerelle_catalog::JobStatus;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

/// Labels of the backup failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    kind: String,
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
    imported_rows: Counter,
    validated_bytes: Counter,
    receipt_latency: Family<StatusLabels, Histogram>,
    job_duration: Family<StatusLabels, Histogram>,
    audit_chain_failures: Counter,
    backups: BackupMetrics,
}

/// The backups' figures.
struct BackupMetrics {
    last_success: Gauge,
    verify_last_success: Gauge,
    failures: Family<BackupLabels, Counter>,
}

impl BackupMetrics {
    fn register(registry: &mut Registry) -> Self {
        let last_success = Gauge::default();
        registry.register(
            "backup_last_success_timestamp",
            "When the last backup run stored a snapshot, Unix seconds (0: never, or backups off)",
            last_success.clone(),
        );
        let verify_last_success = Gauge::default();
        registry.register(
            "backup_verify_last_success_timestamp",
            "When the last backup verification passed, Unix seconds (0: never, or backups off)",
            verify_last_success.clone(),
        );
        let failures = Family::<BackupLabels, Counter>::default();
        registry.register(
            "backup_failures",
            "Backup runs (kind run) and verifications (kind verify) that failed",
            failures.clone(),
        );
        Self { last_success, verify_last_success, failures }
    }
}

/// Buckets of the import histograms, in seconds: 10 ms to about 11 min.
fn import_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
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
        let imported_rows = Counter::default();
        registry.register("import_rows", "Rows committed into tenant databases by imports", imported_rows.clone());
        let validated_bytes = Counter::default();
        registry.register(
            "import_validated_bytes",
            "Bytes of files read and validated by import jobs",
            validated_bytes.clone(),
        );
        let receipt_latency = Family::<StatusLabels, Histogram>::new_with_constructor(import_buckets);
        registry.register(
            "import_receipt_latency_seconds",
            "From when a file was taken (received_at; an upload's close once it is taken at once) to its receipt, by verdict",
            receipt_latency.clone(),
        );
        let job_duration = Family::<StatusLabels, Histogram>::new_with_constructor(import_buckets);
        registry.register(
            "import_job_duration_seconds",
            "How long the run of an import job that reached its verdict took, by verdict",
            job_duration.clone(),
        );
        let backups = BackupMetrics::register(&mut registry);
        let audit_chain_failures = Counter::default();
        registry.register(
            "audit_chain_failures",
            "Hourly checks of the audit chain that found a row changed, removed or inserted",
            audit_chain_failures.clone(),
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
            imported_rows,
            validated_bytes,
            receipt_latency,
            job_duration,
            backups,
            audit_chain_failures,
        }
    }

    /// Sets the times of the last successful backup run and verification (Unix seconds).
    pub(super) fn backup_successes(&self, run: Option<i64>, verify: Option<i64>) {
        self.backups.last_success.set(run.unwrap_or(0));
        self.backups.verify_last_success.set(verify.unwrap_or(0));
    }

    /// Counts a failed backup run (`run`) or verification (`verify`).
    pub(super) fn backup_failed(&self, kind: &str) {
        self.backups.failures.get_or_create(&BackupLabels { kind: kind.to_owned() }).inc();
    }

    /// Counts a check of the audit chain that found it broken.
    pub(super) fn audit_chain_failure(&self) {
        self.audit_chain_failures.inc();
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

impl passerelle_import::Observer for Metrics {
    fn rows_imported(&self, rows: u64) {
        self.imported_rows.inc_by(rows);
    }

    fn bytes_validated(&self, bytes: u64) {
        self.validated_bytes.inc_by(bytes);
    }

    fn job_finished(&self, status: JobStatus, since_received: Duration, run: Duration) {
        let labels = StatusLabels { status: status.as_str().to_owned() };
        self.receipt_latency.get_or_create(&labels).observe(since_received.as_secs_f64());
        self.job_duration.get_or_create(&labels).observe(run.as_secs_f64());
    }
}
