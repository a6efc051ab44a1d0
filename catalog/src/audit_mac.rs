//! The MACs of the audit chain: HMAC-SHA-256 over a canonical encoding of
//! each row (every column, lengths included, the row's id and the MAC of the
//! row before it), and over the checkpoint the chain starts from.
//!
//! Encoding (all integers big-endian): a domain label (its length first), then
//! each field as a tag byte (0 absent, 1 present) followed, when present, by
//! the 8-byte integer or the 8-byte length and the UTF-8 bytes of the text. No
//! two different rows encode the same: a field cannot spill into the next.

use std::fmt;

use aws_lc_rs::hmac;

use crate::audit::AuditEvent;

/// Domain label of a row's MAC (versioned: a new encoding gets a new label).
const ROW_LABEL: &[u8] = b"passerelle audit row v1";
/// Domain label of the checkpoint's MAC.
const CHECKPOINT_LABEL: &[u8] = b"passerelle audit checkpoint v1";

/// The key of the audit chain (derived from the master key, purpose
/// `audit-chain`). Never printed.
#[derive(Clone)]
pub struct AuditKey(hmac::Key);

impl AuditKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// A MAC of the chain.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mac(pub(crate) [u8; 32]);

impl Mac {
    /// The MAC before the first row of a chain that starts from nothing.
    pub(crate) const GENESIS: Self = Self([0; 32]);

    /// As stored in the catalog: lowercase hex.
    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// From the catalog's text; `None` when it is not 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A row of the chain, as far as the next row is concerned: its id and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    /// The row's id (or, for a checkpoint, the id of the last row pruned).
    pub(crate) id: i64,
    /// The row's MAC.
    pub(crate) mac: Mac,
}

/// Where the chain starts: rows up to `legacy_until` predate the chain
/// (never chained), and the first chained row follows `after` (the last row
/// pruned, or nothing yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Rows with an id up to this one were written before the chain existed.
    pub(crate) legacy_until: i64,
    /// The link the first chained row still present follows.
    pub(crate) after: Link,
}

/// Builds the canonical encoding of a MAC'ed value.
struct Encoder(hmac::Context);

impl Encoder {
    fn new(key: &AuditKey, label: &[u8]) -> Self {
        let mut encoder = Self(hmac::Context::with_key(&key.0));
        encoder.bytes(label);
        encoder
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn integer(&mut self, value: i64) {
        self.0.update(&value.to_be_bytes());
    }

    fn text(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update(&[0]),
            Some(text) => {
                self.0.update(&[1]);
                self.bytes(text.as_bytes());
            }
        }
    }

    fn optional(&mut self, value: Option<i64>) {
        match value {
            None => self.0.update(&[0]),
            Some(n) => {
                self.0.update(&[1]);
                self.integer(n);
            }
        }
    }

    fn finish(self) -> Mac {
        let tag = self.0.sign();
        let mut mac = [0; 32];
        mac.copy_from_slice(tag.as_ref());
        Mac(mac)
    }
}

/// The MAC of the row `id` holding `event` (stamped: `at` set), chained to `previous`.
pub(crate) fn row_mac(key: &AuditKey, previous: Mac, id: i64, at: i64, event: &AuditEvent) -> Mac {
    let mut e = Encoder::new(key, ROW_LABEL);
    e.integer(id);
    e.bytes(&previous.0);
    e.integer(at);
    e.text(Some(&event.actor));
    e.text(event.tenant.as_deref());
    e.text(event.login.as_deref());
    e.text(event.ip.as_deref());
    e.text(Some(&event.protocol));
    e.text(Some(&event.action));
    e.text(Some(&event.outcome));
    e.text(event.path.as_deref());
    e.optional(event.bytes);
    e.optional(event.duration_ms);
    e.text(event.detail.as_deref());
    e.finish()
}

/// The MAC sealing a checkpoint.
pub(crate) fn checkpoint_mac(key: &AuditKey, checkpoint: &Checkpoint) -> Mac {
    let mut e = Encoder::new(key, CHECKPOINT_LABEL);
    e.integer(checkpoint.legacy_until);
    e.integer(checkpoint.after.id);
    e.bytes(&checkpoint.after.mac.0);
    e.finish()
}

/// Compares two MACs in constant time.
pub(crate) fn same(a: Mac, b: Mac) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(&a.0, &b.0).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            actor: "alice".into(),
            tenant: Some("acme".into()),
            protocol: "sftp".into(),
            action: "upload".into(),
            outcome: "ok".into(),
            path: Some("/inbox/a.csv".into()),
            bytes: Some(12),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn every_field_the_id_and_the_previous_mac_count() {
        let key = AuditKey::new([7; 32]);
        let base = row_mac(&key, Mac::GENESIS, 5, 1000, &event());
        assert_eq!(base, row_mac(&key, Mac::GENESIS, 5, 1000, &event()));
        assert_ne!(base, row_mac(&key, Mac::GENESIS, 6, 1000, &event()), "id");
        assert_ne!(base, row_mac(&key, Mac([1; 32]), 5, 1000, &event()), "previous MAC");
        assert_ne!(base, row_mac(&key, Mac::GENESIS, 5, 1001, &event()), "time");
        assert_ne!(base, row_mac(&AuditKey::new([8; 32]), Mac::GENESIS, 5, 1000, &event()), "key");
        let changes: [fn(&mut AuditEvent); 7] = [
            |e| e.actor.push('x'),
            |e| e.tenant = None,
            |e| e.login = Some(String::new()),
            |e| e.path = Some("/inbox/b.csv".into()),
            |e| e.bytes = None,
            |e| e.duration_ms = Some(0),
            |e| e.detail = Some(String::new()),
        ];
        for change in changes {
            let mut changed = event();
            change(&mut changed);
            assert_ne!(base, row_mac(&key, Mac::GENESIS, 5, 1000, &changed), "{changed:?}");
        }
    }

    #[test]
    fn text_cannot_spill_into_the_next_field() {
        let key = AuditKey::new([7; 32]);
        let mut a = event();
        (a.protocol, a.action) = ("sftpu".into(), "pload".into());
        assert_ne!(row_mac(&key, Mac::GENESIS, 5, 1000, &a), row_mac(&key, Mac::GENESIS, 5, 1000, &event()));
    }

    #[test]
    fn macs_round_trip_through_hex_and_refuse_garbage() {
        let mac = row_mac(&AuditKey::new([7; 32]), Mac::GENESIS, 1, 1, &event());
        assert_eq!(Mac::from_hex(&mac.to_hex()), Some(mac));
        assert_eq!(Mac::from_hex("zz"), None);
        assert_eq!(Mac::from_hex(""), None);
        assert!(!format!("{:?}", AuditKey::new([7; 32])).contains('7'));
    }
}
