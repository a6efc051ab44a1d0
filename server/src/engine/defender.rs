//! The defender, shared by every front-end: a score per source (an IPv4
//! address or an IPv6 network, see `source`) for failed logins, exceeded
//! limits and protocol abuse, and bans for the sources whose score reaches
//! the threshold within the observation time.
//!
//! ```text
//!  offence ─► score (memory, per node) ─► threshold ─► ban (catalog) ──┐
//!                                                                        │
//!  accept ─► is_banned? ◄── bans (memory) ◄── changes read every 1 s,  ──┘
//!             (dropped, before any protocol work)  all bans every 60 s
//!                                                  (CLI, other nodes, restarts)
//! ```
//!
//! Bans are networks: the defender bans sources, an operator may ban any
//! network; an address is looked up at each prefix length in use. Each new
//! ban of a source lasts `ban_time_increment` percent longer than the
//! previous one, up to `max_ban_time`; the catalog keeps the count of
//! offences after a ban ends (`ban remove` forgets it). Addresses in
//! `safe_list` are never scored nor banned. Scores and bans in memory are
//! bounded by `entries_soft_limit`/`entries_hard_limit`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use passerelle_catalog::{Ban, Catalog, now_ms};
use passerelle_config::DefenderConfig;
use tracing::warn;

use super::source::{Aggregation, Capped, Source, parse_network};

/// How often the bans changed in the catalog are read: `ban remove` and the
/// bans of other nodes take effect within this time.
const REFRESH: Duration = Duration::from_secs(1);

/// Every this many reads of the changes, all the active bans are read
/// instead (bans dropped by the table's cap come back, expired ones go).
const FULL_READ_EVERY: u64 = 60;

/// How far before its previous read a read of the changes looks back: rows
/// are stamped by the writer's clock when written, and committed a little
/// later, maybe on another node whose clock is a little off.
const CHANGES_OVERLAP_MS: i64 = 10_000;

/// Bans that ended this long ago are deleted from the catalog (their
/// offences are forgotten).
const FORGET_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;

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
    aggregation: Aggregation,
    capped: Capped,
    /// Per source: (when, score) of each offence in the observation window.
    scores: Mutex<HashMap<Source, Vec<(Instant, u32)>>>,
    bans: Mutex<Bans>,
    /// Bumped whenever the set of bans may have grown, so that connections
    /// not yet logged in from a newly banned source can be cut.
    changed: tokio::sync::watch::Sender<u64>,
}

/// The bans in memory.
struct Bans {
    /// Network → end of its ban, Unix milliseconds.
    until: HashMap<IpNet, i64>,
    /// Banned here, not yet stored: kept across reads until stored.
    pending: HashSet<IpNet>,
    /// How many networks of `until` have each (IPv6?, prefix length): an
    /// address is looked up once per entry.
    lengths: BTreeMap<(bool, u8), usize>,
    /// When the catalog was last read (Unix milliseconds, this node's
    /// clock); `None` until the first read of all the bans.
    read_at: Option<i64>,
    capped: Capped,
}

impl Bans {
    fn new(capped: Capped) -> Self {
        Self { until: HashMap::new(), pending: HashSet::new(), lengths: BTreeMap::new(), read_at: None, capped }
    }

    /// When the ban covering `ip` ends, if any.
    fn end(&self, ip: IpAddr) -> Option<i64> {
        let v6 = ip.is_ipv6();
        self.lengths
            .keys()
            .filter(|(family, _)| *family == v6)
            .filter_map(|&(_, len)| IpNet::new(ip, len).ok())
            .filter_map(|net| self.until.get(&net.trunc()).copied())
            .max()
    }

    /// Bans `net` until `end`; `true` when it was not banned before.
    fn insert(&mut self, net: IpNet, end: i64) -> bool {
        if let Some(until) = self.until.get_mut(&net) {
            *until = end;
            return false;
        }
        let before = self.until.len();
        // The bans ending soonest make room first.
        self.capped.make_room(&mut self.until, |&until| until);
        if self.until.len() < before {
            self.count_lengths();
        }
        self.until.insert(net, end);
        *self.lengths.entry(key(net)).or_default() += 1;
        true
    }

    fn remove(&mut self, net: IpNet) {
        if self.until.remove(&net).is_some()
            && let Some(count) = self.lengths.get_mut(&key(net))
        {
            *count -= 1;
            if *count == 0 {
                self.lengths.remove(&key(net));
            }
        }
    }

    fn count_lengths(&mut self) {
        self.lengths.clear();
        for net in self.until.keys() {
            *self.lengths.entry(key(*net)).or_default() += 1;
        }
    }
}

fn key(net: IpNet) -> (bool, u8) {
    (matches!(net, IpNet::V6(_)), net.prefix_len())
}

/// A ban just decided, to be stored and audited.
pub(super) struct NewBan {
    pub(super) source: Source,
    pub(super) score: u32,
    pub(super) offence: Offence,
}

impl Defender {
    pub(super) fn new(config: DefenderConfig, catalog: Catalog) -> Arc<Self> {
        let capped = Capped::new(&config);
        let defender = Arc::new(Self {
            aggregation: Aggregation::new(config.ipv6_prefix),
            capped,
            config,
            catalog,
            scores: Mutex::default(),
            bans: Mutex::new(Bans::new(capped)),
            changed: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&defender)));
        defender
    }

    /// The source `ip` is counted as.
    pub(super) fn source(&self, ip: IpAddr) -> Source {
        self.aggregation.source(ip)
    }

    /// Whether `ip` is banned now (as an address or in a banned network).
    pub(super) fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.is_safe(ip) {
            return false;
        }
        let bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        bans.end(ip).is_some_and(|until| until > now_ms())
    }

    /// How many sources are banned now.
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

    /// Adds the offence's score to the source of `ip`; returns the ban when
    /// the threshold is reached (the source is then banned in memory at once).
    pub(super) fn score(&self, ip: IpAddr, offence: Offence) -> Option<NewBan> {
        let points = match offence {
            // The higher of the two: a different score for unknown logins
            // would tell, through the time a ban takes, which logins exist.
            Offence::FailedLogin => self.config.score_invalid_user.max(self.config.score_wrong_password),
            Offence::LimitExceeded => self.config.score_limit_exceeded,
            Offence::RefusedConnection => self.config.score_refused_connection,
            Offence::ProtocolAbuse => self.config.score_protocol_abuse,
        };
        let ip = ip.to_canonical();
        if !self.config.enabled || points == 0 || self.is_safe(ip) || self.is_banned(ip) {
            return None;
        }
        let source = self.source(ip);
        let total = self.add(source, points);
        if total < self.config.threshold {
            return None;
        }
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        bans.insert(source.network(), now_ms().saturating_add(millis(self.config.ban_time)));
        bans.pending.insert(source.network());
        drop(bans);
        self.changed.send_modify(|generation| *generation += 1);
        Some(NewBan { source, score: total, offence })
    }

    /// Adds `points` to the score of `source` in the observation window and
    /// returns its total (forgotten once it reaches the threshold).
    fn add(&self, source: Source, points: u32) -> u32 {
        let now = Instant::now();
        let window = self.config.observation_time;
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        if !scores.contains_key(&source) {
            // The sources that offended longest ago make room first.
            self.capped.make_room(&mut scores, |events| events.last().map(|(at, _)| *at));
        }
        let events = scores.entry(source).or_default();
        events.retain(|(at, _)| now.duration_since(*at) < window);
        events.push((now, points));
        let total: u32 = events.iter().map(|(_, p)| *p).sum();
        if total >= self.config.threshold {
            scores.remove(&source);
        }
        total
    }

    /// Stores a ban decided by [`Defender::score`], longer for a repeat
    /// offender, and returns it as stored.
    pub(super) async fn store(&self, ban: &NewBan) -> Result<Ban, passerelle_catalog::CatalogError> {
        let ip = ban.source.to_string();
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
        bans.pending.remove(&ban.source.network());
        if let Ok(record) = &stored {
            bans.insert(ban.source.network(), record.expires_at);
        }
        stored
    }

    /// Length in milliseconds of the `offences`-th ban of a source.
    fn ban_length(&self, offences: i64) -> i64 {
        let base = millis(self.config.ban_time) as f64;
        let growth = 1.0 + f64::from(self.config.ban_time_increment) / 100.0;
        let exponent = i32::try_from(offences.saturating_sub(1)).unwrap_or(i32::MAX);
        let length = base * growth.powi(exponent);
        let max = millis(self.config.max_ban_time);
        if length.is_finite() && length < max as f64 { length as i64 } else { max }
    }

    /// Replaces the bans in memory with the active ones in the catalog
    /// (plus the ones decided here and not stored yet).
    pub(super) async fn refresh(&self) -> Result<(), passerelle_catalog::CatalogError> {
        let read_at = now_ms();
        let active = self.catalog.active_bans(read_at).await?;
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: Vec<(IpNet, i64)> =
            bans.pending.iter().filter_map(|net| Some((*net, *bans.until.get(net)?))).collect();
        let before: HashSet<IpNet> = bans.until.drain().map(|(net, _)| net).collect();
        bans.lengths.clear();
        let mut grew = false;
        for (net, end) in active.iter().filter_map(|ban| Some((parse_network(&ban.ip)?, ban.expires_at))).chain(kept) {
            bans.insert(net, end);
            grew |= !before.contains(&net);
        }
        bans.read_at = Some(read_at);
        drop(bans);
        if grew {
            self.changed.send_modify(|generation| *generation += 1);
        }
        Ok(())
    }

    /// Applies the bans written (added, renewed, removed) since the
    /// previous read; reads them all when there was none.
    async fn refresh_changes(&self) -> Result<(), passerelle_catalog::CatalogError> {
        let previous = self.bans.lock().unwrap_or_else(PoisonError::into_inner).read_at;
        let Some(previous) = previous else { return self.refresh().await };
        let read_at = now_ms();
        let changes = self.catalog.bans_updated_since(previous.saturating_sub(CHANGES_OVERLAP_MS)).await?;
        let mut bans = self.bans.lock().unwrap_or_else(PoisonError::into_inner);
        let mut grew = false;
        for ban in &changes {
            let Some(net) = parse_network(&ban.ip) else { continue };
            if ban.expires_at > read_at {
                grew |= bans.insert(net, ban.expires_at);
            } else if !bans.pending.contains(&net) {
                bans.remove(net);
            }
        }
        bans.read_at = Some(read_at);
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
        ticks += 1;
        let read = if ticks.is_multiple_of(FULL_READ_EVERY) {
            defender.refresh().await
        } else {
            defender.refresh_changes().await
        };
        if let Err(e) = read {
            warn!(error = %e, "defender: cannot read the bans from the catalog");
        }
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
    async fn removed_bans_are_lifted_by_the_next_read_of_the_changes() {
        let (d, _dir) = defender(|c| c.threshold = 1).await;
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let ban = d.score(ip, Offence::FailedLogin).unwrap();
        let stored = d.store(&ban).await.unwrap();
        assert_eq!(stored.ip, "2001:db8::/64");
        d.refresh().await.unwrap();
        assert!(d.is_banned(ip));
        d.catalog.remove_ban("2001:db8::/64").await.unwrap();
        d.refresh_changes().await.unwrap();
        assert!(!d.is_banned(ip));
        d.catalog.upsert_ban(&Ban { ip: "198.51.100.0/24".into(), ..stored }).await.unwrap();
        d.refresh_changes().await.unwrap();
        assert!(d.is_banned("198.51.100.77".parse().unwrap()), "an operator's network ban covers its addresses");
        assert!(!d.is_banned("198.51.101.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn rotating_through_a_64_is_one_source() {
        let (d, _dir) = defender(|_| {}).await;
        let ban = (1..=15u16)
            .find_map(|n| d.score(IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, n]), Offence::FailedLogin))
            .expect("15 points over the /64 ban it");
        assert_eq!(ban.source.to_string(), "2001:db8:1:2::/64");
        assert!(d.is_banned("2001:db8:1:2:abcd::1".parse().unwrap()));
        assert!(!d.is_banned("2001:db8:1:3::1".parse().unwrap()), "another /64 is another source");
    }

    #[tokio::test]
    async fn scores_and_bans_in_memory_are_capped() {
        let (d, _dir) = defender(|c| {
            // Two failed logins: each scores 2 by default.
            c.threshold = 4;
            c.entries_soft_limit = 10;
            c.entries_hard_limit = 20;
        })
        .await;
        for n in 0..1000u32 {
            assert!(d.score(IpAddr::from(n.to_be_bytes()), Offence::FailedLogin).is_none());
        }
        assert!(d.scores.lock().unwrap().len() < 20);
        for n in 1000..2000u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            assert!(d.score(ip, Offence::FailedLogin).is_none());
            d.score(ip, Offence::FailedLogin).expect("the second point bans");
        }
        assert!(d.bans.lock().unwrap().until.len() < 20);
        assert!(d.is_banned(IpAddr::from(1999u32.to_be_bytes())), "the newest bans are kept");
    }
}
