//! Per-tenant quotas on bytes and files, enforced while uploads run.
//!
//! ```text
//!  first use ──► catalog override (else [quotas]) + usage::tenant_usage  (blocking pool)
//!  OPEN/STOR ──► reserve one file          ┐
//!  each WRITE ──► reserve up to its end     ├─ atomics only: no syscall, no catalog query
//!  commit    ──► reservation becomes stored ┘  (drop: the reservation is released)
//!  every 2 s ──► overrides re-read from the catalog (one query for every tenant)
//!  every 30 s ─► usage re-measured, catching what the import pipeline changed
//!                (only for tenants with a limit: an unlimited one is never walked)
//! ```
//!
//! A tenant's usage is what its files take (settled, from the last
//! measure and the engine's own changes since) plus what its uploads in
//! progress have reserved: an upload reserves its file when it starts and
//! bytes as its file grows (its highest offset written, the file's apparent
//! size), so a write is refused the moment it would go over, not at the end.
//!
//! Between measures the numbers can drift (the pipeline writes receipts,
//! archives and deletes; a measure taken while an upload commits may count
//! it twice); the next measure corrects them. Not a hard guarantee to the
//! byte, by design: the write path stays a few atomic operations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use passerelle_catalog::{Catalog, TenantName, TenantQuota};
use passerelle_config::{ByteSize, QuotasConfig};
use tokio::sync::OnceCell;
use tracing::warn;

use super::fs::{FsError, FsStats};
use crate::data_dir::DataDir;
use crate::usage;

/// How often quota overrides are re-read from the catalog: `tenant quota`
/// takes effect on a running server within this time.
const REREAD_EVERY: Duration = Duration::from_secs(2);

/// How often the usage of every tenant in use is measured again.
const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// "No limit" in a limit field.
const UNLIMITED: u64 = u64::MAX;

/// The trackers of the tenants in use since the server started.
pub(super) struct Quotas {
    catalog: Catalog,
    data_dir: DataDir,
    defaults: QuotasConfig,
    tenants: Mutex<HashMap<String, Arc<TenantUsage>>>,
}

impl Quotas {
    /// The trackers, refreshed by a task that ends when they are dropped.
    pub(super) fn new(catalog: Catalog, data_dir: DataDir, defaults: QuotasConfig) -> Arc<Self> {
        let quotas = Arc::new(Self { catalog, data_dir, defaults, tenants: Mutex::default() });
        tokio::spawn(refresh_loop(Arc::downgrade(&quotas)));
        quotas
    }

    /// The tracker of `tenant`, measured: the first call for a tenant reads
    /// its quota and measures its usage (on the blocking pool); a failure is
    /// returned and the next call tries again.
    pub(super) async fn tenant(&self, tenant: &TenantName) -> Result<Arc<TenantUsage>, FsError> {
        let usage = Arc::clone(
            self.tenants
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(TenantUsage::new(tenant.clone()))),
        );
        usage
            .measured
            .get_or_try_init(|| async {
                let quota = self
                    .catalog
                    .tenant(tenant)
                    .await
                    .map_err(|e| FsError::Io(std::io::Error::other(e)))?
                    .map(|t| t.quota);
                usage.set_limits(quota.unwrap_or_default(), self.defaults);
                // Without a limit nothing reads the usage: the walk waits
                // until a quota is set (see `reread`).
                if usage.is_limited() { self.measure(&usage).await } else { Ok(()) }
            })
            .await?;
        Ok(usage)
    }

    /// The tracker of `tenant` if some session measured it already (no
    /// measure is started for a lookup).
    pub(super) fn measured(&self, tenant: &TenantName) -> Option<Arc<TenantUsage>> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant.as_str()).filter(|usage| usage.measured.initialized()).cloned()
    }

    /// Measures a tenant's usage again and makes it the settled usage,
    /// keeping the engine's own changes made while the walk ran.
    async fn measure(&self, usage: &TenantUsage) -> Result<(), FsError> {
        let before = usage.settled.lock().unwrap_or_else(PoisonError::into_inner).applied;
        let data_dir = self.data_dir.clone();
        let tenant = usage.tenant.clone();
        let measured = tokio::task::spawn_blocking(move || usage::tenant_usage(&data_dir, &tenant)).await??;
        let (bytes, files) = measured.settled();
        let mut settled = usage.settled.lock().unwrap_or_else(PoisonError::into_inner);
        let since = settled.applied.since(before);
        settled.bytes = since.bytes.apply(bytes);
        settled.files = since.files.apply(files);
        usage.publish(&settled);
        Ok(())
    }

    /// Re-reads every override; drops the trackers of removed tenants, and
    /// measures at once a tenant that just got its first limit.
    async fn reread(&self) -> Result<(), passerelle_catalog::CatalogError> {
        let overrides: HashMap<String, TenantQuota> = self.catalog.tenant_quotas().await?.into_iter().collect();
        let newly_limited: Vec<Arc<TenantUsage>> = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            tenants.retain(|name, _| overrides.contains_key(name));
            tenants
                .iter()
                .filter(|(name, usage)| {
                    let was_limited = usage.is_limited();
                    usage.set_limits(overrides.get(*name).copied().unwrap_or_default(), self.defaults);
                    !was_limited && usage.is_limited() && usage.measured.initialized()
                })
                .map(|(_, usage)| Arc::clone(usage))
                .collect()
        };
        for usage in newly_limited {
            if let Err(err) = self.measure(&usage).await {
                warn!(tenant = %usage.tenant, error = %err, "quota: cannot measure the tenant's usage");
            }
        }
        Ok(())
    }

    /// Measures every tenant in use again, one after the other.
    async fn measure_all(&self) {
        let tenants: Vec<Arc<TenantUsage>> =
            self.tenants.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        // A tenant without a limit is not walked: nothing reads its usage.
        for usage in tenants.iter().filter(|u| u.measured.initialized() && u.is_limited()) {
            if let Err(err) = self.measure(usage).await {
                warn!(tenant = %usage.tenant, error = %err, "quota: cannot measure the tenant's usage");
            }
        }
    }
}

/// Re-reads the overrides every [`REREAD_EVERY`] and measures every
/// [`MEASURE_EVERY`], until the trackers are dropped.
async fn refresh_loop(quotas: Weak<Quotas>) {
    let mut reread = tokio::time::interval(REREAD_EVERY);
    let mut measure = tokio::time::interval(MEASURE_EVERY);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    measure.tick().await;
    loop {
        let measuring = tokio::select! {
            _ = reread.tick() => false,
            _ = measure.tick() => true,
        };
        let Some(quotas) = quotas.upgrade() else { return };
        if measuring {
            quotas.measure_all().await;
        } else if let Err(err) = quotas.reread().await {
            warn!(error = %err, "quota: cannot read the tenants' quotas from the catalog");
        }
    }
}

/// Net changes the engine made to a tenant's files, counted since the
/// server started: what a measure keeps of the changes made while it ran.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    bytes: Delta,
    files: Delta,
}

impl Applied {
    /// What changed between `before` and now.
    fn since(self, before: Self) -> Self {
        Self { bytes: self.bytes.since(before.bytes), files: self.files.since(before.files) }
    }
}

/// Amounts added and removed, kept apart so that neither can overflow
/// into the other's sign.
#[derive(Clone, Copy, Debug, Default)]
struct Delta {
    added: u64,
    removed: u64,
}

impl Delta {
    fn since(self, before: Self) -> Self {
        Self { added: self.added.wrapping_sub(before.added), removed: self.removed.wrapping_sub(before.removed) }
    }

    fn apply(self, to: u64) -> u64 {
        to.saturating_add(self.added).saturating_sub(self.removed)
    }
}

/// The settled part of a tenant's usage, changed under its lock only.
#[derive(Debug, Default)]
struct Settled {
    bytes: u64,
    files: u64,
    applied: Applied,
}

/// One tenant's limits and usage.
pub(super) struct TenantUsage {
    tenant: TenantName,
    /// Set once the quota was read and the usage measured.
    measured: OnceCell<()>,
    settled: Mutex<Settled>,
    /// Copies of the settled usage, read by the write path without a lock.
    settled_bytes: AtomicU64,
    settled_files: AtomicU64,
    /// What the uploads in progress hold.
    reserved_bytes: AtomicU64,
    reserved_files: AtomicU64,
    /// The limits in force ([`UNLIMITED`]: none).
    limit_bytes: AtomicU64,
    limit_files: AtomicU64,
}

impl TenantUsage {
    fn new(tenant: TenantName) -> Self {
        Self {
            tenant,
            measured: OnceCell::new(),
            settled: Mutex::default(),
            settled_bytes: AtomicU64::new(0),
            settled_files: AtomicU64::new(0),
            reserved_bytes: AtomicU64::new(0),
            reserved_files: AtomicU64::new(0),
            limit_bytes: AtomicU64::new(UNLIMITED),
            limit_files: AtomicU64::new(UNLIMITED),
        }
    }

    /// The tenant's override where it has one, the configured default otherwise.
    fn set_limits(&self, quota: TenantQuota, defaults: QuotasConfig) {
        let bytes = quota.bytes.or(defaults.bytes.map(ByteSize::bytes)).unwrap_or(UNLIMITED);
        self.limit_bytes.store(bytes, Ordering::Relaxed);
        self.limit_files.store(quota.files.or(defaults.files).unwrap_or(UNLIMITED), Ordering::Relaxed);
    }

    fn publish(&self, settled: &Settled) {
        self.settled_bytes.store(settled.bytes, Ordering::Relaxed);
        self.settled_files.store(settled.files, Ordering::Relaxed);
    }

    /// Whether a byte or file limit applies: only then does the engine pay
    /// for the lookups that keep the settled usage exact between measures.
    pub(super) fn is_limited(&self) -> bool {
        self.limit_bytes.load(Ordering::Relaxed) != UNLIMITED || self.limit_files.load(Ordering::Relaxed) != UNLIMITED
    }

    /// Records a change the engine made: `added` bytes in `new_files` files
    /// appeared, `removed` bytes in `gone_files` files went.
    pub(super) fn apply(&self, added: u64, new_files: u64, removed: u64, gone_files: u64) {
        let mut settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
        settled.bytes = settled.bytes.saturating_add(added).saturating_sub(removed);
        settled.files = settled.files.saturating_add(new_files).saturating_sub(gone_files);
        let applied = &mut settled.applied;
        applied.bytes.added = applied.bytes.added.wrapping_add(added);
        applied.bytes.removed = applied.bytes.removed.wrapping_add(removed);
        applied.files.added = applied.files.added.wrapping_add(new_files);
        applied.files.removed = applied.files.removed.wrapping_add(gone_files);
        self.publish(&settled);
    }

    /// Bytes and files in use now, uploads in progress included.
    fn used(&self) -> (u64, u64) {
        let bytes =
            self.settled_bytes.load(Ordering::Relaxed).saturating_add(self.reserved_bytes.load(Ordering::Relaxed));
        let files =
            self.settled_files.load(Ordering::Relaxed).saturating_add(self.reserved_files.load(Ordering::Relaxed));
        (bytes, files)
    }

    /// Reserves one more file for an upload about to start, unless the
    /// tenant is at its file limit.
    pub(super) fn reserve_file(self: &Arc<Self>) -> Result<Reservation, FsError> {
        let limit = self.limit_files.load(Ordering::Relaxed);
        let held = self.reserved_files.fetch_add(1, Ordering::Relaxed);
        let files = self.settled_files.load(Ordering::Relaxed).saturating_add(held);
        if limit != UNLIMITED && files >= limit {
            self.reserved_files.fetch_sub(1, Ordering::Relaxed);
            return Err(FsError::QuotaExceeded(format!(
                "quota exceeded: tenant {} has {files} of {limit} files",
                self.tenant
            )));
        }
        Ok(Reservation { usage: Arc::clone(self), files: 1, bytes: AtomicU64::new(0) })
    }

    /// Reserves no file: for an upload that replaces an existing one.
    pub(super) fn reserve_replacement(self: &Arc<Self>) -> Reservation {
        Reservation { usage: Arc::clone(self), files: 0, bytes: AtomicU64::new(0) }
    }

    /// Reserves `grow` more bytes, unless that goes over the byte limit.
    fn reserve_bytes(&self, grow: u64) -> Result<(), FsError> {
        let limit = self.limit_bytes.load(Ordering::Relaxed);
        let held = self.reserved_bytes.fetch_add(grow, Ordering::Relaxed);
        if limit == UNLIMITED {
            return Ok(());
        }
        let used = self.settled_bytes.load(Ordering::Relaxed).saturating_add(held);
        if used.saturating_add(grow) > limit {
            self.reserved_bytes.fetch_sub(grow, Ordering::Relaxed);
            return Err(FsError::QuotaExceeded(format!(
                "quota exceeded: tenant {} uses {} of {}",
                self.tenant,
                ByteSize::human(used),
                ByteSize::human(limit)
            )));
        }
        Ok(())
    }

    /// The quota as a filesystem for `df` (statvfs@openssh.com): its size
    /// is the byte limit, its free space what is left of it (never more than
    /// the disk has), and likewise for files; without a limit, the disk.
    pub(super) fn as_filesystem(&self, mut disk: FsStats) -> FsStats {
        let (bytes, files) = self.used();
        let limit_bytes = self.limit_bytes.load(Ordering::Relaxed);
        if limit_bytes != UNLIMITED && disk.block_size > 0 {
            let left = limit_bytes.saturating_sub(bytes) / disk.block_size;
            disk.blocks = limit_bytes / disk.block_size;
            disk.blocks_free = left.min(disk.blocks_free);
            disk.blocks_available = left.min(disk.blocks_available);
        }
        let limit_files = self.limit_files.load(Ordering::Relaxed);
        if limit_files != UNLIMITED {
            let left = limit_files.saturating_sub(files);
            // A filesystem without an inode table (btrfs) reports none at all.
            disk.files_free = if disk.files == 0 { left } else { left.min(disk.files_free) };
            disk.files = limit_files;
        }
        disk
    }
}

/// What one upload holds of its tenant's quota: one file (none when it
/// replaces a file) and the bytes up to its highest offset written.
/// Dropped without [`Reservation::commit`], it gives them back.
pub(crate) struct Reservation {
    usage: Arc<TenantUsage>,
    files: u64,
    bytes: AtomicU64,
}

impl Reservation {
    /// Makes sure the file may grow to `end` bytes (one atomic load when it
    /// is already that large).
    pub(super) fn grow_to(&self, end: u64) -> Result<(), FsError> {
        let mut held = self.bytes.load(Ordering::Relaxed);
        while end > held {
            let grow = end - held;
            self.usage.reserve_bytes(grow)?;
            match self.bytes.compare_exchange_weak(held, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => {
                    // Another write moved the end first: give back and retry.
                    self.usage.reserved_bytes.fetch_sub(grow, Ordering::Relaxed);
                    held = now;
                }
            }
        }
        Ok(())
    }

    /// The tenant's tracker.
    pub(super) fn usage(&self) -> &Arc<TenantUsage> {
        &self.usage
    }

    /// The upload is in place with `size` bytes, replacing a file of
    /// `replaced` bytes if there was one: what it held becomes settled.
    pub(super) fn commit(self, size: u64, replaced: Option<u64>) {
        self.usage.apply(size, u64::from(replaced.is_none()), replaced.unwrap_or(0), 0);
        // Drop gives back what was reserved.
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.usage.reserved_bytes.fetch_sub(*self.bytes.get_mut(), Ordering::Relaxed);
        self.usage.reserved_files.fetch_sub(self.files, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(bytes: Option<u64>, files: Option<u64>) -> Arc<TenantUsage> {
        let usage = Arc::new(TenantUsage::new(TenantName::parse("acme").unwrap()));
        usage.set_limits(TenantQuota { bytes, files }, QuotasConfig::default());
        usage
    }

    #[test]
    fn writes_reserve_as_the_file_grows_and_stop_at_the_limit() {
        let usage = tracker(Some(10 << 30), None);
        usage.apply((10 << 30) - 300 * (1 << 20), 1, 0, 0);
        let upload = usage.reserve_file().unwrap();
        upload.grow_to(100 << 20).unwrap();
        upload.grow_to(50 << 20).unwrap();
        upload.grow_to(300 << 20).unwrap();
        let refused = upload.grow_to((300 << 20) + 1).unwrap_err();
        assert_eq!(refused.to_string(), "quota exceeded: tenant acme uses 10 GiB of 10 GiB");
        drop(upload);
        assert_eq!(usage.used(), ((10 << 30) - 300 * (1 << 20), 1), "an abandoned upload gives back what it held");
        let refused = usage.reserve_file().unwrap().grow_to(301 << 20).unwrap_err();
        assert_eq!(refused.to_string(), "quota exceeded: tenant acme uses 9.7 GiB of 10 GiB");
    }

    #[test]
    fn files_are_counted_when_uploads_start_and_commit() {
        let usage = tracker(None, Some(2));
        let first = usage.reserve_file().unwrap();
        let second = usage.reserve_file().unwrap();
        let refused = usage.reserve_file().err().unwrap();
        assert_eq!(refused.to_string(), "quota exceeded: tenant acme has 2 of 2 files");
        first.grow_to(10).unwrap();
        first.commit(10, None);
        second.commit(0, Some(5));
        assert_eq!(usage.used(), (5, 1), "a replacement takes the place of the file it replaced");
        usage.reserve_replacement().grow_to(1 << 40).unwrap();
    }

    fn disk_of(block_size: u64) -> FsStats {
        FsStats {
            block_size,
            blocks: 1 << 20,
            blocks_free: 1 << 10,
            blocks_available: 1 << 10,
            files: 1 << 20,
            files_free: 1 << 19,
            name_max: 255,
        }
    }

    #[test]
    fn df_shows_the_quota_but_never_more_than_the_disk() {
        let disk = disk_of(4096);
        assert_eq!(tracker(None, None).as_filesystem(disk.clone()).blocks, 1 << 20, "no quota: the disk");
        let usage = tracker(Some(4096 * 100), Some(10));
        usage.apply(4096 * 40, 3, 0, 0);
        let df = usage.as_filesystem(disk.clone());
        assert_eq!((df.blocks, df.blocks_free, df.blocks_available), (100, 60, 60));
        assert_eq!((df.files, df.files_free), (10, 7));
        let roomy = tracker(Some(1 << 40), None).as_filesystem(disk);
        assert_eq!((roomy.blocks, roomy.blocks_free), ((1 << 40) / 4096, 1 << 10));
        let no_inode_table = FsStats { files: 0, files_free: 0, ..disk_of(4096) };
        assert_eq!(tracker(None, Some(10)).as_filesystem(no_inode_table).files_free, 10);
    }
}
