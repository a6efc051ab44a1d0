//! The defender, shared by every front-end: a score per source address for
//! failed logins, exceeded limits and protocol abuse, and bans for the
//! addresses whose score reaches the threshold within the observation time.
//!
//! ```text
//!  offence ─► score (memory, per node) ─► threshold ─► ban (catalog) ──┐
//!                                                                        │
//!  accept ─► is_banned? ◄── active bans (memory) ◄── refreshed every 1 s ┘
//!             (dropped, before any protocol work)       (CLI, other nodes, restarts)
//! ```
//!
//! Each new ban of an address lasts `ban_time_increment` percent longer than
//! the previous one, up to `max_ban_time`; the catalog keeps the count of
//! offences after a ban ends (`ban remove` forgets it). Addresses in
//! `safe_list` are never scored.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use passerelle_catalog::{Ban, Catalog, now_ms};
use passerelle_config::DefenderConfig;
use tracing::warn;

/// How often the active bans are read from the catalog: `ban remove` and
/// the bans of other nodes take effect within this time.
const REFRESH: Duration = Duration::from_secs(1);

/// Bans that ended this long ago are deleted from the catalog (their
/// offences are forgotten).
const FORGET_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;

/// Most addresses scored at once; past it, the stalest are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// What an address did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offence {
    /// A failed login, whether the user exists or not.
    FailedLogin,
    /// A connection or session refused by a limit.
    LimitExceeded,
    /// A connection turned away at connect by `limits.max_startups` or
    /// `limits.max_connections`.
    RefusedConnection,
    /// A protocol violation before login.
    ProtocolAbuse,
}

impl Offence {
    fn as_str(self) -> &'static str {
        match self {
            Self::FailedLogin => "failed login",
            Self::LimitExceeded => "limit exceeded",
            Self::RefusedConnection => "refused connection",
            Self::ProtocolAbuse => "protocol abuse",
        }
    }
}

/// Set by the layers under a protocol session (stream adapters, timers)
/// when the client misbehaved; read by the front-end when the connection ends.
#[derive(Clone, Default)]
pub(crate) struct Tripwire(Arc<OnceLock<&'static str>>);

impl Tripwire {
    /// Records the first misbehaviour.
    pub(crate) fn trip(&self, what: &'static str) {
        let _ = self.0.set(what);
    }

    /// The misbehaviour recorded, if any.
    pub(crate) fn tripped(&self) -> Option<&'static str> {
        self.0.get().copied()
    }
}

/// Scores in memory and the bans in force.
pub(super) struct Defender {
    config: DefenderConfig,
    catalog: Catalog,
    /// Per address: (when, score) of each offence in the observation window.
    scores: Mutex<HashMap<IpAddr, Vec<(Instant, u32)>>>,
    bans: Mutex<Bans>,
    /// Bumped whenever the set of bans may have grown, so that connections
    /// not yet logged in from a newly banned address can be cut.
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Bans {
    /// Address → end of its ban, Unix milliseconds.
    until: HashMap<IpAddr, i64>,
    /// Banned here, not yet stored: kept across refreshes until stored.
    pending: HashSet<IpAddr>,
}

/// A ban just decided, to be stored and audited.
pub(super) struct NewBan {
    pub(super) ip: IpAddr,
    pub(super) score: u32,
    pub(super) offence: Offence,
}

impl Defender {
    pub(super) fn new(config: DefenderConfig, catalog: Catalog) -> Arc<Self> {
        let defender = Arc::new(Self {
            config,
            catalog,
            scores: Mutex::default(),
            bans: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&defender)));
        defender
    }

    /// Whether `ip` is banned now.
    pub(super) fn is_banned(&self, ip: IpAddr) -> bool {
        let bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        bans.until.get(&ip).is_some_and(|&until| until > now_ms())
    }

    /// How many addresses are banned now.
    pub(super) fn active_bans(&self) -> usize {
        let now = now_ms();
        let bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        bans.until.values().filter(|&&until| until > now).count()
    }

    /// Resolves once `ip` is banned.
    pub(super) async fn banned(&self, ip: IpAddr) {
        let mut changed = self.changed.subscribe();
        while !self.is_banned(ip) {
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn is_safe(&self, ip: IpAddr) -> bool {
        self.config.safe_list.iter().any(|net| net.contains(&ip))
    }

    /// Adds the offence's score to `ip`; returns the ban when the threshold
    /// is reached (the address is then banned in memory at once).
    pub(super) fn score(&self, ip: IpAddr, offence: Offence) -> Option<NewBan> {
        let points = match offence {
            // The higher of the two: a different score for unknown logins
            // would tell, through the time a ban takes, which logins exist.
            Offence::FailedLogin => self.config.score_invalid_user.max(self.config.score_wrong_password),
            Offence::LimitExceeded => self.config.score_limit_exceeded,
            Offence::RefusedConnection => self.config.score_refused_connection,
            Offence::ProtocolAbuse => self.config.score_protocol_abuse,
        };
        if !self.config.enabled || points == 0 || self.is_safe(ip) || self.is_banned(ip) {
            return None;
        }
        let now = Instant::now();
        let window = self.config.observation_time;
        let total = {
            let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
            if scores.len() >= MAX_TRACKED && !scores.contains_key(&ip) {
                scores.retain(|_, events| events.last().is_some_and(|(at, _)| now.duration_since(*at) < window));
                if scores.len() >= MAX_TRACKED {
                    let stalest =
                        scores.iter().min_by_key(|(_, events)| events.last().map(|(at, _)| *at)).map(|(k, _)| *k);
                    if let Some(stalest) = stalest {
                        scores.remove(&stalest);
                    }
                }
            }
            let events = scores.entry(ip).or_default();
            events.retain(|(at, _)| now.duration_since(*at) < window);
            events.push((now, points));
            let total: u32 = events.iter().map(|(_, p)| *p).sum();
            if total >= self.config.threshold {
                scores.remove(&ip);
            }
            total
        };
        if total < self.config.threshold {
            return None;
        }
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        let until = now_ms().saturating_add(millis(self.config.ban_time));
        bans.until.insert(ip, until);
        bans.pending.insert(ip);
        drop(bans);
        self.changed.send_modify(|generation| *generation += 1);
        Some(NewBan { ip, score: total, offence })
    }

    /// Stores a ban decided by [`Defender::score`], longer for a repeat
    /// offender, and returns it as stored.
    pub(super) async fn store(&self, ban: &NewBan) -> Result<Ban, passerelle_catalog::CatalogError> {
        let ip = ban.ip.to_string();
        let stored = async {
            let offences = self.catalog.ban_offences(&ip).await?.saturating_add(1);
            let now = now_ms();
            let record = Ban {
                ip: ip.clone(),
                banned_at: now,
                expires_at: now.saturating_add(self.ban_length(offences)),
                offences,
                reason: format!("score {} reached {} ({})", ban.score, self.config.threshold, ban.offence.as_str()),
            };
            self.catalog.upsert_ban(&record).await?;
            Ok(record)
        }
        .await;
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        bans.pending.remove(&ban.ip);
        if let Ok(record) = &stored {
            bans.until.insert(ban.ip, record.expires_at);
        }
        stored
    }

    /// Length in milliseconds of the `offences`-th ban of an address.
    fn ban_length(&self, offences: i64) -> i64 {
        let base = millis(self.config.ban_time) as f64;
        let growth = 1.0 + f64::from(self.config.ban_time_increment) / 100.0;
        let exponent = i32::try_from(offences.saturating_sub(1)).unwrap_or(i32::MAX);
        let length = base * growth.powi(exponent);
        let max = millis(self.config.max_ban_time);
        if length.is_finite() && length < max as f64 { length as i64 } else { max }
    }

    /// Replaces the bans in memory with those in the catalog (plus the ones
    /// decided here and not stored yet).
    pub(super) async fn refresh(&self) -> Result<(), passerelle_catalog::CatalogError> {
        let active = self.catalog.active_bans(now_ms()).await?;
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        let mut until: HashMap<IpAddr, i64> =
            active.iter().filter_map(|ban| Some((ban.ip.parse().ok()?, ban.expires_at))).collect();
        for ip in &bans.pending {
            if let Some(&end) = bans.until.get(ip) {
                until.insert(*ip, end);
            }
        }
        let grew = until.keys().any(|ip| !bans.until.contains_key(ip));
        bans.until = until;
        drop(bans);
        if grew {
            self.changed.send_modify(|generation| *generation += 1);
        }
        Ok(())
    }
}

async fn refresh_loop(defender: Weak<Defender>) {
    let mut ticks: u64 = 0;
    loop {
        tokio::time::sleep(REFRESH).await;
        let Some(defender) = defender.upgrade() else { return };
        if let Err(e) = defender.refresh().await {
            warn!(error = %e, "defender: cannot read the bans from the catalog");
        }
        ticks += 1;
        if ticks.is_multiple_of(3600)
            && let Err(e) = defender.catalog.prune_bans(now_ms().saturating_sub(FORGET_AFTER_MS)).await
        {
            warn!(error = %e, "defender: cannot forget old bans");
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn defender(config: impl FnOnce(&mut DefenderConfig)) -> (Arc<Defender>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&format!("sqlite://{}/c.db", dir.path().display())).await.unwrap();
        let mut c = passerelle_config::Config::load(Default::default()).unwrap().defender;
        config(&mut c);
        (Defender::new(c, catalog), dir)
    }

    #[tokio::test]
    async fn the_threshold_bans_and_repeat_offences_ban_longer() {
        let (d, _dir) = defender(|_| {}).await;
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..7 {
            assert!(d.score(ip, Offence::FailedLogin).is_none());
        }
        let ban = d.score(ip, Offence::FailedLogin).expect("8th failed login, 16th point, bans");
        assert!(d.is_banned(ip));
        let first = d.store(&ban).await.unwrap();
        assert_eq!(first.offences, 1);
        assert_eq!(first.expires_at - first.banned_at, 30 * 60 * 1000);
        let second = d.store(&ban).await.unwrap();
        assert_eq!(second.expires_at - second.banned_at, 45 * 60 * 1000);
        assert_eq!(d.ban_length(100), 24 * 3600 * 1000);
    }

    #[tokio::test]
    async fn safe_addresses_are_never_scored() {
        let (d, _dir) = defender(|c| c.safe_list = vec!["192.0.2.0/24".parse().unwrap()]).await;
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..100 {
            assert!(d.score(ip, Offence::ProtocolAbuse).is_none());
        }
        assert!(!d.is_banned(ip));
    }

    #[tokio::test]
    async fn removed_bans_are_lifted_by_the_refresh() {
        let (d, _dir) = defender(|c| c.threshold = 1).await;
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let ban = d.score(ip, Offence::FailedLogin).unwrap();
        d.store(&ban).await.unwrap();
        d.refresh().await.unwrap();
        assert!(d.is_banned(ip));
        d.catalog.remove_ban("2001:db8::1").await.unwrap();
        d.refresh().await.unwrap();
        assert!(!d.is_banned(ip));
    }
}
