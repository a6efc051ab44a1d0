//! Checking the audit chain, row after row in id order: each row must lie
//! between the checkpoint and the chain's head and carry the MAC of its
//! content and id chained to the MAC of the row before it. The first row
//! that does not is named: removed when ids are missing before it, changed
//! otherwise.

use std::fmt;

use crate::audit::AuditEvent;
use crate::audit_mac::{AuditKey, Link, Mac, row_mac, same};

/// Where the audit chain breaks: the first row that was changed, removed or
/// inserted behind the writers' back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The row's content (or id, or MAC) is not what was written.
    Changed {
        /// The row's id.
        row: i64,
    },
    /// Rows of the chain are missing.
    Removed {
        /// The first id missing.
        first: i64,
        /// The last id missing.
        last: i64,
    },
    /// A row stands where the chain has none: after its head, or among the
    /// rows already pruned.
    Inserted {
        /// The row's id.
        row: i64,
    },
    /// The checkpoint the chain starts from is not the one written.
    Checkpoint,
    /// The chain's head (its last row, kept apart) is not the last row.
    Head {
        /// The id the head names.
        row: i64,
    },
}

impl ChainBreak {
    /// What happened, in one word: `changed`, `removed`, `inserted`, `checkpoint` or `head`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Changed { .. } => "changed",
            Self::Removed { .. } => "removed",
            Self::Inserted { .. } => "inserted",
            Self::Checkpoint => "checkpoint",
            Self::Head { .. } => "head",
        }
    }

    /// The id of the first row concerned (0 for the checkpoint).
    pub fn row(&self) -> i64 {
        match self {
            Self::Changed { row } | Self::Inserted { row } | Self::Head { row } => *row,
            Self::Removed { first, .. } => *first,
            Self::Checkpoint => 0,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Changed { row } => write!(f, "row {row} was changed (its MAC does not match its content)"),
            Self::Removed { first, last } if first == last => write!(f, "row {first} was removed"),
            Self::Removed { first, last } => write!(f, "rows {first} to {last} were removed"),
            Self::Inserted { row } => write!(f, "row {row} was inserted (the chain has no such row)"),
            Self::Checkpoint => f.write_str("the checkpoint the chain starts from was changed"),
            Self::Head { row } => write!(f, "the chain head (row {row}) does not match the last row"),
        }
    }
}

/// A stored row, as the checker needs it.
pub(crate) struct StoredRow {
    /// The row's id.
    pub(crate) id: i64,
    /// When it happened, Unix milliseconds.
    pub(crate) at: i64,
    /// Its other columns.
    pub(crate) event: AuditEvent,
    /// Its MAC as stored (`None`: missing or not a MAC).
    pub(crate) mac: Option<Mac>,
}

/// Checks rows pushed in id order against the chain.
pub(crate) struct Checker<'k> {
    key: &'k AuditKey,
    /// The checkpoint: rows up to its id must be gone (or predate the chain).
    checkpoint: i64,
    /// Rows up to this id predate the chain; they are not looked at.
    legacy_until: i64,
    /// The head the chain's writers recorded.
    head: Link,
    /// The last row accepted (at first, the checkpoint or an anchor).
    last: Link,
    /// A row already checked that must come first with this MAC (an incremental check).
    anchor: Option<Link>,
    /// Rows accepted.
    checked: u64,
}

impl<'k> Checker<'k> {
    /// A check of the whole chain, from its checkpoint to `head`.
    pub(crate) fn new(key: &'k AuditKey, legacy_until: i64, checkpoint: Link, head: Link) -> Self {
        Self { key, checkpoint: checkpoint.id, legacy_until, head, last: checkpoint, anchor: None, checked: 0 }
    }

    /// A check of the rows after `anchor`, a row checked before: it must
    /// still be there, unchanged.
    pub(crate) fn after(mut self, anchor: Link) -> Self {
        self.last = anchor;
        self.anchor = Some(anchor);
        self
    }

    /// The last row accepted.
    pub(crate) fn last(&self) -> Link {
        self.last
    }

    /// Rows accepted so far.
    pub(crate) fn checked(&self) -> u64 {
        self.checked
    }

    /// Checks the next row (the rows come in id order).
    pub(crate) fn push(&mut self, row: &StoredRow) -> Result<(), ChainBreak> {
        if row.id <= self.legacy_until {
            return Ok(());
        }
        if let Some(anchor) = self.anchor.take() {
            return match row.mac {
                _ if row.id < anchor.id => Err(ChainBreak::Inserted { row: row.id }),
                _ if row.id > anchor.id => Err(ChainBreak::Removed { first: anchor.id, last: anchor.id }),
                Some(mac) if same(mac, anchor.mac) => Ok(()),
                _ => Err(ChainBreak::Changed { row: row.id }),
            };
        }
        if row.id <= self.checkpoint || row.id > self.head.id {
            return Err(ChainBreak::Inserted { row: row.id });
        }
        let computed = row_mac(self.key, self.last.mac, row.id, row.at, &row.event);
        match row.mac {
            // A writer may skip ids (past a row inserted behind its back): the
            // MAC, which covers the id and the MAC before, says it did.
            Some(mac) if same(mac, computed) => {
                self.last = Link { id: row.id, mac };
                self.checked += 1;
                Ok(())
            }
            _ if row.id > self.last.id + 1 => Err(ChainBreak::Removed { first: self.last.id + 1, last: row.id - 1 }),
            _ => Err(ChainBreak::Changed { row: row.id }),
        }
    }

    /// After the last row: the chain must end at its head.
    pub(crate) fn finish(self) -> Result<Link, ChainBreak> {
        if let Some(anchor) = self.anchor {
            return Err(ChainBreak::Removed { first: anchor.id, last: self.head.id.max(anchor.id) });
        }
        if self.last.id < self.head.id {
            return Err(ChainBreak::Removed { first: self.last.id + 1, last: self.head.id });
        }
        if self.last.id != self.head.id || !same(self.last.mac, self.head.mac) {
            return Err(ChainBreak::Head { row: self.head.id });
        }
        Ok(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            actor: "alice".into(),
            protocol: "sftp".into(),
            action: "upload".into(),
            outcome: "ok".into(),
            bytes: Some(n),
            ..AuditEvent::default()
        }
    }

    /// Rows 11..=15 chained after a checkpoint at 10.
    fn chain(key: &AuditKey) -> (Link, Vec<StoredRow>) {
        let start = Link { id: 10, mac: Mac([3; 32]) };
        let mut previous = start.mac;
        let rows = (11..=15)
            .map(|id| {
                let mac = row_mac(key, previous, id, 1000 + id, &event(id));
                previous = mac;
                StoredRow { id, at: 1000 + id, event: event(id), mac: Some(mac) }
            })
            .collect();
        (start, rows)
    }

    fn check(key: &AuditKey, start: Link, head: Link, rows: &[StoredRow]) -> Result<Link, ChainBreak> {
        let mut checker = Checker::new(key, 5, start, head);
        for row in rows {
            checker.push(row)?;
        }
        checker.finish()
    }

    fn head(rows: &[StoredRow]) -> Link {
        let last = rows.last().unwrap();
        Link { id: last.id, mac: last.mac.unwrap() }
    }

    #[test]
    fn an_untouched_chain_holds() {
        let key = AuditKey::new([1; 32]);
        let (start, rows) = chain(&key);
        assert_eq!(check(&key, start, head(&rows), &rows), Ok(head(&rows)));
        let legacy = StoredRow { id: 4, at: 0, event: event(0), mac: None };
        let mut with_legacy = vec![legacy];
        with_legacy.extend(chain(&key).1);
        assert_eq!(check(&key, start, head(&rows), &with_legacy), Ok(head(&rows)), "rows before the chain");
    }

    #[test]
    fn a_changed_row_is_named() {
        let key = AuditKey::new([1; 32]);
        let (start, mut rows) = chain(&key);
        let end = head(&rows);
        rows[2].event.outcome = "denied".into();
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Changed { row: 13 }));
        let (_, mut rows) = chain(&key);
        rows[1].at += 1;
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Changed { row: 12 }));
        let (_, mut rows) = chain(&key);
        rows[1].mac = None;
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Changed { row: 12 }));
        let other_key = AuditKey::new([2; 32]);
        let (_, rows) = chain(&key);
        assert_eq!(check(&other_key, start, end, &rows), Err(ChainBreak::Changed { row: 11 }));
    }

    #[test]
    fn removed_rows_are_named() {
        let key = AuditKey::new([1; 32]);
        let (start, mut rows) = chain(&key);
        let end = head(&rows);
        rows.remove(1);
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Removed { first: 12, last: 12 }));
        let (_, mut rows) = chain(&key);
        rows.truncate(3);
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Removed { first: 14, last: 15 }));
        let (_, mut rows) = chain(&key);
        rows.remove(0);
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Removed { first: 11, last: 11 }));
    }

    #[test]
    fn inserted_rows_are_named() {
        let key = AuditKey::new([1; 32]);
        let (start, mut rows) = chain(&key);
        let end = head(&rows);
        rows.push(StoredRow { id: 16, at: 2000, event: event(16), mac: Some(Mac([9; 32])) });
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Inserted { row: 16 }));
        let (_, mut rows) = chain(&key);
        rows.insert(0, StoredRow { id: 8, at: 900, event: event(8), mac: None });
        assert_eq!(check(&key, start, end, &rows), Err(ChainBreak::Inserted { row: 8 }), "among the pruned rows");
    }

    #[test]
    fn a_head_moved_back_is_named() {
        let key = AuditKey::new([1; 32]);
        let (start, rows) = chain(&key);
        let moved = Link { id: 14, mac: rows[3].mac.unwrap() };
        assert_eq!(check(&key, start, moved, &rows), Err(ChainBreak::Inserted { row: 15 }));
        let forged = Link { id: 15, mac: Mac([0; 32]) };
        assert_eq!(check(&key, start, forged, &rows), Err(ChainBreak::Head { row: 15 }));
    }

    #[test]
    fn an_incremental_check_starts_from_its_anchor() {
        let key = AuditKey::new([1; 32]);
        let (start, rows) = chain(&key);
        let anchor = Link { id: 13, mac: rows[2].mac.unwrap() };
        let run = |rows: &[StoredRow]| {
            let mut checker = Checker::new(&key, 5, start, head(rows)).after(anchor);
            rows.iter().filter(|r| r.id >= 13).try_for_each(|r| checker.push(r))?;
            checker.finish()
        };
        assert_eq!(run(&rows), Ok(head(&rows)));
        let (_, mut changed) = chain(&key);
        changed[2].mac = Some(Mac([5; 32]));
        assert_eq!(run(&changed), Err(ChainBreak::Changed { row: 13 }));
    }
}
