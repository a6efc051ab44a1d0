//! Duplicate keys within one file (`mode = "upsert"`), in bounded memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use super::value::{Value, quote};
use crate::profile::Profile;

/// Remembers a 64-bit hash of each key and the line it was first seen on:
/// 16 bytes a row plus the map's overhead, whatever the key's size. Two
/// different keys share a hash with probability about n²/2⁶⁵ (3·10⁻⁸ for a
/// million rows); the message then names the first line, where the
/// operator sees the two keys differ.
pub(super) struct Keys {
    columns: Vec<usize>,
    names: Vec<String>,
    hasher: RandomState,
    seen: HashMap<u64, u64>,
}

impl Keys {
    /// `None` unless the profile has a key.
    pub(super) fn new(profile: &Profile) -> Option<Self> {
        if profile.key().is_empty() {
            return None;
        }
        let columns =
            profile.key().iter().filter_map(|k| profile.columns().iter().position(|c| c.name() == k)).collect();
        Some(Self { columns, names: profile.key().to_vec(), hasher: RandomState::new(), seen: HashMap::new() })
    }

    /// The index of the first key column, which duplicate errors are
    /// reported on.
    pub(super) fn column(&self) -> usize {
        self.columns[0]
    }

    /// Records the row's key; the message if it was seen before. Rows whose
    /// key columns did not all check out (left [`Value::Null`]; key columns
    /// are required) are skipped.
    pub(super) fn check(&mut self, values: &[Value], line: u64) -> Result<(), String> {
        if self.columns.iter().any(|&c| values[c] == Value::Null) {
            return Ok(());
        }
        let mut hasher = self.hasher.build_hasher();
        for &c in &self.columns {
            values[c].hash(&mut hasher);
        }
        let first = *self.seen.entry(hasher.finish()).or_insert(line);
        if first == line {
            return Ok(());
        }
        let key: Vec<String> =
            self.columns.iter().zip(&self.names).map(|(&c, name)| format!("{name}={}", render(&values[c]))).collect();
        Err(format!("duplicate key {}, first seen on line {first}", key.join(", ")))
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::Null => "(empty)".to_owned(),
        Value::Text(text) => quote(text),
        Value::Integer(n) => n.to_string(),
        Value::Decimal(d) => d.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Timestamp(t) => t.to_string(),
    }
}
