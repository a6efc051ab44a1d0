//! The audit trail: who did what, when, from where. Metadata only: never a
//! password, never file contents.

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit_check::StoredRow;
use crate::audit_mac::Mac;
use crate::error::CatalogError;
use crate::store::Catalog;

/// One audit event.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditEvent {
    /// When it happened, Unix milliseconds; `None` means when it is stored.
    #[serde(serialize_with = "crate::timestamp::serialize_option")]
    pub at: Option<i64>,
    /// Who acted: a login, or `admin:<os user>` for the CLI.
    pub actor: String,
    /// The tenant concerned.
    pub tenant: Option<String>,
    /// The login concerned.
    pub login: Option<String>,
    /// Source IP address.
    pub ip: Option<String>,
    /// `sftp`, `ftps`, `cli`, `pipeline`…
    pub protocol: String,
    /// What happened (`login`, `upload`, `tenant_add`…).
    pub action: String,
    /// `ok`, `denied`, `failed`…
    pub outcome: String,
    /// The tenant-relative path concerned.
    pub path: Option<String>,
    /// Bytes moved.
    pub bytes: Option<i64>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Extra facts (key fingerprint, reason…), free text.
    pub detail: Option<String>,
}

/// Which events [`Catalog::audit_events`] returns; every filter is optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events of this tenant.
    pub tenant: Option<String>,
    /// Only events of this login.
    pub login: Option<String>,
    /// Only events at or after this time, Unix milliseconds.
    pub since: Option<i64>,
    /// At most this many events: the newest ones.
    pub limit: u32,
}

impl Catalog {
    /// Events matching `filter`, oldest first (the newest `filter.limit` of them).
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, CatalogError> {
        // A NULL parameter disables its filter, so the statement is one static string.
        let rows = sqlx::query(
            "SELECT at, actor, tenant, login, ip, protocol, action, outcome, path, bytes, duration_ms, detail \
             FROM audit_events \
             WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR login = $2) AND at >= $3 \
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(filter.tenant.as_deref())
        .bind(filter.login.as_deref())
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows.iter().map(event_from_row).collect::<Result<Vec<_>, CatalogError>>()?;
        events.reverse();
        Ok(events)
    }

    /// Appends an event to the audit trail.
    pub async fn record(&self, event: &AuditEvent) -> Result<(), CatalogError> {
        self.record_all(std::slice::from_ref(event)).await
    }

    /// Appends events to the chained trail: all of them or none, each with
    /// the next id and its MAC (see `audit_chain`). Refused without the
    /// chain's key ([`Catalog::with_audit_key`]).
    pub async fn record_all(&self, events: &[AuditEvent]) -> Result<(), CatalogError> {
        if events.is_empty() {
            return Ok(());
        }
        self.append_chained(events).await
    }
}

/// Reads the event columns of an `audit_events` row.
pub(crate) fn event_from_row(row: &AnyRow) -> Result<AuditEvent, CatalogError> {
    Ok(AuditEvent {
        at: Some(row.try_get("at")?),
        actor: row.try_get("actor")?,
        tenant: row.try_get("tenant")?,
        login: row.try_get("login")?,
        ip: row.try_get("ip")?,
        protocol: row.try_get("protocol")?,
        action: row.try_get("action")?,
        outcome: row.try_get("outcome")?,
        path: row.try_get("path")?,
        bytes: row.try_get("bytes")?,
        duration_ms: row.try_get("duration_ms")?,
        detail: row.try_get("detail")?,
    })
}

/// Inserts stamped, chained rows, one statement per [`ROWS_PER_INSERT`]
/// (each statement is a round trip to the database; for SQLite, to its
/// worker thread).
pub(crate) async fn insert_rows(tx: &mut AnyConnection, rows: &[StoredRow]) -> Result<(), CatalogError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        insert(&mut *tx, chunk).await?;
    }
    Ok(())
}

/// Rows per INSERT statement (14 parameters each). Kept small because
/// SQLite finds a numbered parameter (`$n`) by walking the statement's list of
/// parameters, once when compiling and again when binding: the cost grows
/// with the square of their number, and was a visible share of the server's
/// CPU with 256 rows per statement.
const ROWS_PER_INSERT: usize = 32;
/// Columns written per row, in the order [`insert`] binds them.
const COLUMNS: usize = 14;

/// Inserts `rows` (at most [`ROWS_PER_INSERT`]) in one statement.
async fn insert(connection: &mut AnyConnection, rows: &[StoredRow]) -> Result<(), CatalogError> {
    let placeholders: Vec<String> = (0..rows.len())
        .map(|row| {
            let first = row * COLUMNS + 1;
            let params: Vec<String> = (first..first + COLUMNS).map(|n| format!("${n}")).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events (id, at, actor, tenant, login, ip, protocol, action, outcome, path, bytes, duration_ms, detail, mac) \
         VALUES {}",
        placeholders.join(", ")
    );
    // Only placeholders are generated; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        let event = &row.event;
        query = query
            .bind(row.id)
            .bind(row.at)
            .bind(&event.actor)
            .bind(event.tenant.as_deref())
            .bind(event.login.as_deref())
            .bind(event.ip.as_deref())
            .bind(&event.protocol)
            .bind(&event.action)
            .bind(&event.outcome)
            .bind(event.path.as_deref())
            .bind(event.bytes)
            .bind(event.duration_ms)
            .bind(event.detail.as_deref())
            .bind(row.mac.map(Mac::to_hex));
    }
    query.execute(connection).await?;
    Ok(())
}
