//! Refused connections, aggregated so that a flood cannot flood the audit
//! trail and the log: the first refusal of a source for a reason is written
//! in full, its repeats within the next [`WINDOW`] are only counted, and
//! one summary row says how many there were.
//!
//! ```text
//!  refusal ─► count(source, protocol, reason) ─ first in window? ─► audit row + warning
//!                                          └ repeat ──────────► counted
//!  every 5 s (and at shutdown) ─► windows over ─► "1,233 more connections from
//!                                                  203.0.113.9 refused in the last 60 s: banned"
//! ```
//!
//! Memory is bounded: past [`MAX_SOURCES`] sources at once, refusals of new
//! ones are counted together in one tally, summarised the same way.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

use super::source::Source;
use super::{Inner, Protocol};

/// How long repeats of a first refusal are only counted.
const WINDOW: Duration = Duration::from_secs(60);

/// How often windows that are over are summarised.
const SWEEP: Duration = Duration::from_secs(5);

/// Most (source, protocol, reason) tallies kept at once.
const MAX_SOURCES: usize = 10_000;

/// Which refusals one tally counts.
type Key = (Source, Protocol, String);

/// Repeats counted since a first refusal.
#[derive(Clone, Copy)]
struct Tally {
    since: Instant,
    repeats: u64,
}

/// The tallies of the windows under way.
#[derive(Default)]
pub(super) struct Refusals {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sources: HashMap<Key, Tally>,
    /// Refusals of sources past [`MAX_SOURCES`], all together.
    others: Option<Tally>,
}

/// What one window of repeats amounts to.
pub(super) struct Summary {
    /// The source; `None` for the sources past [`MAX_SOURCES`].
    pub(super) source: Option<Source>,
    /// The front-end; `None` for the sources past [`MAX_SOURCES`].
    pub(super) protocol: Option<Protocol>,
    /// The one-sentence summary, for the audit trail and the log.
    pub(super) text: String,
}

impl Refusals {
    /// Counts a refusal; `true` when it is the first of its source, protocol
    /// and reason in the window, and is to be written in full.
    pub(super) fn first(&self, source: Source, protocol: Protocol, reason: &str) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (source, protocol, reason.to_owned());
        if let Some(tally) = state.sources.get_mut(&key) {
            tally.repeats += 1;
            return false;
        }
        if state.sources.len() >= MAX_SOURCES {
            state.others.get_or_insert(Tally { since: now, repeats: 0 }).repeats += 1;
            return false;
        }
        state.sources.insert(key, Tally { since: now, repeats: 0 });
        true
    }

    /// Takes the windows that are over (every window when `all`: at
    /// shutdown) and returns the summaries of those that counted repeats.
    pub(super) fn take_summaries(&self, all: bool) -> Vec<Summary> {
        let now = Instant::now();
        let over = |tally: &Tally| all || now.duration_since(tally.since) >= WINDOW;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut summaries = Vec::new();
        state.sources.retain(|(source, protocol, reason), tally| {
            if !over(tally) {
                return true;
            }
            if tally.repeats > 0 {
                let text = format!(
                    "{} more connection{} from {source} refused in the last {} s: {reason}",
                    thousands(tally.repeats),
                    if tally.repeats == 1 { "" } else { "s" },
                    now.duration_since(tally.since).as_secs(),
                );
                summaries.push(Summary { source: Some(*source), protocol: Some(*protocol), text });
            }
            false
        });
        if let Some(tally) = state.others.take_if(|tally| over(tally)) {
            let text = format!(
                "{} connections from other addresses refused in the last {} s (more than {} addresses were \
                 refused at once)",
                thousands(tally.repeats),
                now.duration_since(tally.since).as_secs(),
                thousands(MAX_SOURCES as u64),
            );
            summaries.push(Summary { source: None, protocol: None, text });
        }
        summaries
    }
}

/// Writes the summaries of the windows that are over, every [`SWEEP`];
/// stops when the engine is gone.
pub(super) async fn summarise(engine: Weak<Inner>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Some(inner) = engine.upgrade() else { return };
        write(&inner, false);
    }
}

/// Writes the summaries of the windows that are over (all of them at
/// shutdown) to the log and the audit trail.
pub(super) fn write(inner: &Inner, all: bool) {
    for summary in inner.refusals.take_summaries(all) {
        warn!(peer = summary.source.map(|source| source.to_string()), "{}", summary.text);
        inner.audit.refusals(&summary);
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::source::Aggregation;

    #[test]
    fn repeats_are_counted_and_summarised_once() {
        let refusals = Refusals::default();
        let ip = Aggregation::new(64).source("203.0.113.9".parse().unwrap());
        assert!(refusals.first(ip, Protocol::Sftp, "banned"));
        for _ in 0..1233 {
            assert!(!refusals.first(ip, Protocol::Sftp, "banned"));
        }
        assert!(refusals.first(ip, Protocol::Ftps, "banned"), "another front-end is another tally");
        assert!(refusals.take_summaries(false).is_empty(), "the window is not over");
        let summaries = refusals.take_summaries(true);
        assert_eq!(summaries.len(), 1, "a first refusal alone needs no summary");
        assert_eq!(summaries[0].text, "1,233 more connections from 203.0.113.9 refused in the last 0 s: banned");
        assert!(refusals.first(ip, Protocol::Sftp, "banned"), "a new window starts with a row");
    }

    #[test]
    fn sources_past_the_cap_are_counted_together() {
        let refusals = Refusals::default();
        for n in 0..MAX_SOURCES as u32 + 5 {
            let source = Aggregation::new(64).source(std::net::IpAddr::from(n.to_be_bytes()));
            refusals.first(source, Protocol::Sftp, "too many connections");
        }
        let summaries = refusals.take_summaries(true);
        assert_eq!(summaries.len(), 1);
        assert!(summaries[0].text.starts_with("5 connections from other addresses"), "{}", summaries[0].text);
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
