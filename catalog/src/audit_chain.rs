//! The audit chain in the catalog: the `audit_chain` row (checkpoint, its
//! seal, and the head: the last row's id and MAC), appending under its lock,
//! verifying, and pruning from the front.
//!
//! Every writer (server, admin CLI, import pipeline; possibly several
//! processes at once) appends inside one transaction that first updates the
//! `audit_chain` row: the update takes the row's lock (PostgreSQL) or the
//! database's write lock (SQLite) before anything is read, so appends are
//! serialized and no two rows ever claim the same predecessor. The head is
//! then kept in memory for the whole batch: one round trip for the lock,
//! the inserts, one for the new head.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::AuditEvent;
use crate::audit_check::{ChainBreak, Checker, StoredRow};
use crate::audit_mac::{AuditKey, Checkpoint, Link, Mac, checkpoint_mac};
use crate::error::CatalogError;
use crate::store::{Backend, Catalog};

/// Rows read per query when verifying.
const PAGE: i64 = 1000;

/// Locks the chain row (held until the transaction ends) and reads it.
const LOCK_CHAIN: &str = "UPDATE audit_chain SET head_id = head_id WHERE id = 1 \
     RETURNING legacy_until, start_id, start_mac, seal, head_id, head_mac";

/// Writes the chain row back.
const WRITE_CHAIN: &str = "UPDATE audit_chain SET legacy_until = $1, start_id = $2, start_mac = $3, seal = $4, \
     head_id = $5, head_mac = $6 WHERE id = 1";

/// Columns of a stored row, in the order [`stored_row`] reads them.
pub(crate) const ROW_COLUMNS: &str =
    "id, at, actor, tenant, login, ip, protocol, action, outcome, path, bytes, duration_ms, detail, mac";

/// A position in the chain (a row's id and MAC), remembered between two
/// incremental checks ([`Catalog::verify_audit_chain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPosition(Link);

impl ChainPosition {
    /// The id of the row (0 when the chain has none yet).
    pub fn row(&self) -> i64 {
        self.0.id
    }
}

/// What a verification found intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Rows with an id up to this one predate the chain (written before
    /// this version): they are not covered.
    pub legacy_until: i64,
    /// The last row pruned (or the chain's start): the checkpoint.
    pub checkpoint: i64,
    /// Rows checked.
    pub checked: u64,
    /// The chain's last row, where the next incremental check starts.
    pub head: ChainPosition,
}

/// The outcome of [`Catalog::verify_audit_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every row checked is as written.
    Intact(ChainSummary),
    /// The first row that is not.
    Broken(ChainBreak),
}

/// The `audit_chain` row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainState {
    /// Where the chain starts.
    pub(crate) checkpoint: Checkpoint,
    /// The checkpoint's seal; `None` until the first chained write (or unreadable).
    pub(crate) seal: Option<Mac>,
    /// Whether the chain was ever started (a seal written).
    pub(crate) started: bool,
    /// The last row of the chain (the checkpoint when none).
    pub(crate) head: Link,
}

impl ChainState {
    fn read(row: &AnyRow) -> Result<Self, CatalogError> {
        let mac = |column: &str| -> Result<Option<Mac>, CatalogError> {
            Ok(Mac::from_hex(&row.try_get::<String, _>(column)?))
        };
        let seal_text: String = row.try_get("seal")?;
        let started = !seal_text.is_empty();
        // An unstarted chain has no MACs yet: its start is the genesis.
        let or_genesis = |m: Option<Mac>| if started { m } else { Some(Mac::GENESIS) };
        let corrupt = || CatalogError::Corrupt("audit chain head".into());
        Ok(Self {
            checkpoint: Checkpoint {
                legacy_until: row.try_get("legacy_until")?,
                after: Link { id: row.try_get("start_id")?, mac: or_genesis(mac("start_mac")?).ok_or_else(corrupt)? },
            },
            seal: Mac::from_hex(&seal_text),
            started,
            head: Link { id: row.try_get("head_id")?, mac: or_genesis(mac("head_mac")?).ok_or_else(corrupt)? },
        })
    }

    /// Whether the seal is the checkpoint's.
    fn sealed_by(&self, key: &AuditKey) -> bool {
        self.seal.is_some_and(|seal| crate::audit_mac::same(seal, checkpoint_mac(key, &self.checkpoint)))
    }
}

/// Locks the chain for this transaction and reads it.
pub(crate) async fn lock(tx: &mut sqlx::AnyConnection) -> Result<ChainState, CatalogError> {
    let row = sqlx::query(LOCK_CHAIN).fetch_one(&mut *tx).await?;
    ChainState::read(&row)
}

/// Starts the chain if this is its first write: every row present is
/// declared older than the chain (written before this version), in a
/// checkpoint sealed with `key`. A chain that was started once and lost its
/// seal is refused rather than started again over its rows.
pub(crate) async fn start_if_new(
    tx: &mut sqlx::AnyConnection,
    key: &AuditKey,
    state: &mut ChainState,
) -> Result<(), CatalogError> {
    if state.started {
        return Ok(());
    }
    let chained: i64 =
        sqlx::query("SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE mac IS NOT NULL LIMIT 1) AS chained")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    if chained > 0 {
        return Err(CatalogError::AuditChain(ChainBreak::Checkpoint));
    }
    let last: i64 =
        sqlx::query("SELECT COALESCE(MAX(id), 0) FROM audit_events").fetch_one(&mut *tx).await?.try_get(0)?;
    let start = Link { id: last, mac: Mac::GENESIS };
    state.checkpoint = Checkpoint { legacy_until: last, after: start };
    state.seal = Some(checkpoint_mac(key, &state.checkpoint));
    state.started = true;
    state.head = start;
    Ok(())
}

/// Writes the chain row back (within the transaction that locked it).
pub(crate) async fn write(tx: &mut sqlx::AnyConnection, state: &ChainState) -> Result<(), CatalogError> {
    sqlx::query(WRITE_CHAIN)
        .bind(state.checkpoint.legacy_until)
        .bind(state.checkpoint.after.id)
        .bind(state.checkpoint.after.mac.to_hex())
        .bind(state.seal.map(Mac::to_hex).unwrap_or_default())
        .bind(state.head.id)
        .bind(state.head.mac.to_hex())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Reads a row selected with [`ROW_COLUMNS`].
pub(crate) fn stored_row(row: &AnyRow) -> Result<StoredRow, CatalogError> {
    let mac: Option<String> = row.try_get("mac")?;
    Ok(StoredRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        event: crate::audit::event_from_row(row)?,
        mac: mac.as_deref().and_then(Mac::from_hex),
    })
}

/// Rows of the trail after `after`, in id order, at most `limit`.
pub(crate) async fn rows_after(
    tx: &mut sqlx::AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredRow>, CatalogError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2");
    // The column list is a constant; the values are bound.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(&mut *tx).await?;
    rows.iter().map(stored_row).collect()
}

/// Reads the chain row without locking it.
const READ_CHAIN: &str =
    "SELECT legacy_until, start_id, start_mac, seal, head_id, head_mac FROM audit_chain WHERE id = 1";

/// Re-MACs the whole chain under `new` within `tx` (the master key, which
/// the chain's key derives from, is being replaced in that transaction):
/// every row is first checked under `old`, and a broken chain is refused
/// ([`CatalogError::AuditChain`]): re-MAC'ing it would hide the break. The
/// checkpoint keeps its link and is sealed again; rows from before the
/// chain stay as they are.
pub(crate) async fn rekey(tx: &mut sqlx::AnyConnection, old: &AuditKey, new: &AuditKey) -> Result<(), CatalogError> {
    let mut state = lock(&mut *tx).await?;
    if !state.started {
        return Ok(());
    }
    if !state.sealed_by(old) {
        return Err(CatalogError::AuditChain(ChainBreak::Checkpoint));
    }
    let mut checker = Checker::new(old, state.checkpoint.legacy_until, state.checkpoint.after, state.head);
    let mut head = state.checkpoint.after;
    let mut from = state.checkpoint.legacy_until;
    loop {
        let page = rows_after(&mut *tx, from, PAGE).await?;
        for row in &page {
            checker.push(row).map_err(CatalogError::AuditChain)?;
            let mac = crate::audit_mac::row_mac(new, head.mac, row.id, row.at, &row.event);
            sqlx::query("UPDATE audit_events SET mac = $1 WHERE id = $2")
                .bind(mac.to_hex())
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            head = Link { id: row.id, mac };
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => from = last.id,
            _ => break,
        }
    }
    checker.finish().map_err(CatalogError::AuditChain)?;
    state.seal = Some(checkpoint_mac(new, &state.checkpoint));
    state.head = head;
    write(tx, &state).await
}

impl Catalog {
    /// The chain's head as its writers recorded it, not verified: where
    /// checks resume once a break was reported.
    pub async fn audit_chain_head(&self) -> Result<ChainPosition, CatalogError> {
        let state = ChainState::read(&sqlx::query(READ_CHAIN).fetch_one(&self.pool).await?)?;
        Ok(ChainPosition(state.head))
    }

    /// Verifies the audit chain: the checkpoint's seal, then every row in id
    /// order up to the head. With `since` (the head a previous check
    /// returned), only the rows written after it are checked, and that row
    /// must still be there, unchanged. Reads one consistent snapshot, a page
    /// at a time.
    pub async fn verify_audit_chain(&self, since: Option<ChainPosition>) -> Result<ChainVerdict, CatalogError> {
        let key = self.audit_key()?;
        let mut tx = self.pool.begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        }
        let state = ChainState::read(&sqlx::query(READ_CHAIN).fetch_one(&mut *tx).await?)?;
        let checkpoint = state.checkpoint;
        if state.started && !state.sealed_by(key) {
            return Ok(ChainVerdict::Broken(ChainBreak::Checkpoint));
        }
        let mut checker = Checker::new(key, checkpoint.legacy_until, checkpoint.after, state.head);
        // An anchor pruned meanwhile: the checkpoint (sealed) replaces it.
        let mut from = checkpoint.legacy_until;
        if let Some(ChainPosition(anchor)) = since
            && anchor.id > checkpoint.after.id
        {
            checker = checker.after(anchor);
            from = anchor.id - 1;
        }
        loop {
            let page = rows_after(&mut tx, from, PAGE).await?;
            for row in &page {
                if let Err(broken) = checker.push(row) {
                    return Ok(ChainVerdict::Broken(broken));
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => from = last.id,
                _ => break,
            }
        }
        tx.commit().await?;
        let checked = checker.checked();
        Ok(match checker.finish() {
            Ok(head) => ChainVerdict::Intact(ChainSummary {
                legacy_until: checkpoint.legacy_until,
                checkpoint: checkpoint.after.id,
                checked,
                head: ChainPosition(head),
            }),
            Err(broken) => ChainVerdict::Broken(broken),
        })
    }

    /// Deletes at most `batch` audit events that happened before `before`
    /// (Unix ms) from the front of the trail, in id order (a newer row stops
    /// the batch); returns how many went. Rows from before the chain go
    /// first; chained rows are checked to be as written, and the checkpoint
    /// moves past them, sealed again, in the same transaction: the chain
    /// stays verifiable. A broken chain is never pruned (that would erase
    /// the evidence): [`CatalogError::AuditChain`].
    pub async fn prune_audit_events(&self, before: i64, batch: u32) -> Result<u64, CatalogError> {
        let key = self.audit_key()?;
        let mut tx = self.pool.begin().await?;
        let mut state = lock(&mut tx).await?;
        let legacy = sqlx::query(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE id <= $1 AND at < $2 ORDER BY id LIMIT $3)",
        )
        .bind(state.checkpoint.legacy_until)
        .bind(before)
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if legacy > 0 || !state.started {
            tx.commit().await?;
            return Ok(legacy);
        }
        if !state.sealed_by(key) {
            return Err(CatalogError::AuditChain(ChainBreak::Checkpoint));
        }
        let rows = rows_after(&mut tx, state.checkpoint.legacy_until, i64::from(batch)).await?;
        let mut checker = Checker::new(key, state.checkpoint.legacy_until, state.checkpoint.after, state.head);
        for row in rows.iter().take_while(|row| row.at < before) {
            checker.push(row).map_err(CatalogError::AuditChain)?;
        }
        let last = checker.last();
        if last.id == state.checkpoint.after.id {
            return Ok(0);
        }
        let gone = sqlx::query("DELETE FROM audit_events WHERE id > $1 AND id <= $2")
            .bind(state.checkpoint.after.id)
            .bind(last.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        state.checkpoint.after = last;
        state.seal = Some(checkpoint_mac(key, &state.checkpoint));
        write(&mut tx, &state).await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Appends `events` to the chain in one transaction: each gets the next
    /// id (after the head, and after any row present) and its MAC, chained to
    /// the one before.
    pub(crate) async fn append_chained(&self, events: &[AuditEvent]) -> Result<(), CatalogError> {
        let key = self.audit_key()?;
        let mut tx = self.pool.begin().await?;
        let mut state = lock(&mut tx).await?;
        start_if_new(&mut tx, key, &mut state).await?;
        // A checkpoint sealed with another key: the master key was rotated
        // since this process loaded it. Rows MAC'ed with a stale key would
        // break the chain; they wait (the server keeps them) for a restart.
        if !state.sealed_by(key) {
            return Err(CatalogError::AuditKeyStale);
        }
        // Past any row inserted behind the writers' back (verification names
        // it), so that such a row never stops the trail.
        let last: i64 =
            sqlx::query("SELECT COALESCE(MAX(id), 0) FROM audit_events").fetch_one(&mut *tx).await?.try_get(0)?;
        let mut head = state.head;
        let mut next = head.id.max(last) + 1;
        let rows: Vec<StoredRow> = events
            .iter()
            .map(|event| {
                let at = event.at.unwrap_or_else(crate::store::now_ms);
                let id = next;
                next += 1;
                let mac = crate::audit_mac::row_mac(key, head.mac, id, at, event);
                head = Link { id, mac };
                StoredRow { id, at, event: event.clone(), mac: Some(mac) }
            })
            .collect();
        crate::audit::insert_rows(&mut tx, &rows).await?;
        state.head = head;
        write(&mut tx, &state).await?;
        tx.commit().await?;
        Ok(())
    }
}
