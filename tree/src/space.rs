//! Free space on the filesystem holding the data directory, against the
//! reserve kept for the catalog and the import pipeline
//! (`uploads.min_free_space`).
//!
//! Uploads ask before every write, so asking costs no system call: the
//! figure is an atomic estimate that every admitted write lowers, measured
//! again (`statvfs`) at most once a second. A write the estimate would
//! refuse is measured again first: a refusal always rests on a fresh
//! figure, so an estimate that lags behind deleted files never refuses
//! anyone, and one that lags behind other writers costs at most a second of
//! their writes out of the reserve.
//!
//! ```text
//!  admit(len) ──► estimate − len ≥ reserve and measured < 1 s ago ──► yes
//!             └─► otherwise statvfs ──► free − len ≥ reserve ──► yes | LowSpace
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How often the estimate is measured again, at most, while writes fit.
const MEASURE_EVERY_MS: u64 = 1000;

/// The data directory's free space and its reserve; cheap to clone (every
/// clone shares the same figure).
#[derive(Clone, Debug)]
pub struct DiskSpace {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    reserve: u64,
    /// Bytes free as last measured, less what was admitted since.
    free: AtomicU64,
    /// When `free` was last measured, in ms since `origin`.
    measured_at: AtomicU64,
    origin: Instant,
}

/// Free space below the reserve: what a refused write or a waiting import
/// is told, and what `/healthz` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowSpace {
    /// Bytes free on the filesystem.
    pub free: u64,
    /// The reserve, in bytes.
    pub reserve: u64,
}

impl fmt::Display for LowSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "low on disk space ({} free, reserve {})", human(self.free), human(self.reserve))
    }
}

impl DiskSpace {
    /// The free space of the filesystem holding `path`, kept above `reserve`
    /// bytes (0: no reserve, every write is admitted).
    pub fn new(path: impl Into<PathBuf>, reserve: u64) -> Self {
        let path = path.into();
        let free = measure(&path).unwrap_or(u64::MAX);
        let inner =
            Inner { path, reserve, free: AtomicU64::new(free), measured_at: AtomicU64::new(0), origin: Instant::now() };
        Self { inner: Arc::new(inner) }
    }

    /// The reserve, in bytes.
    pub fn reserve(&self) -> u64 {
        self.inner.reserve
    }

    /// Whether `len` more bytes may be written: refused when they would
    /// leave less than the reserve free. Cheap enough for every write.
    pub fn admit(&self, len: u64) -> Result<(), LowSpace> {
        let inner = &*self.inner;
        if inner.reserve == 0 {
            return Ok(());
        }
        let now = inner.elapsed_ms();
        let fresh = now.saturating_sub(inner.measured_at.load(Ordering::Relaxed)) < MEASURE_EVERY_MS;
        let before = inner
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |free| Some(free.saturating_sub(len)))
            .unwrap_or_else(|free| free);
        if fresh && before.saturating_sub(len) >= inner.reserve {
            return Ok(());
        }
        let free = self.measure_now(now);
        if free.saturating_sub(len) >= inner.reserve {
            let _ = inner.free.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| Some(f.saturating_sub(len)));
            Ok(())
        } else {
            Err(LowSpace { free, reserve: inner.reserve })
        }
    }

    /// Measures now: the bytes free, or [`LowSpace`] when they are below
    /// the reserve. For callers off the write path (health checks, imports).
    pub fn check(&self) -> Result<u64, LowSpace> {
        let free = self.measure_now(self.inner.elapsed_ms());
        if self.inner.reserve > 0 && free < self.inner.reserve {
            Err(LowSpace { free, reserve: self.inner.reserve })
        } else {
            Ok(free)
        }
    }

    /// Measures the free space and makes it the estimate; an unmeasurable
    /// filesystem (logged) keeps the last estimate.
    fn measure_now(&self, now: u64) -> u64 {
        let inner = &*self.inner;
        inner.measured_at.store(now, Ordering::Relaxed);
        match measure(&inner.path) {
            Some(free) => {
                inner.free.store(free, Ordering::Relaxed);
                free
            }
            None => inner.free.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Bytes available to the server on the filesystem holding `path`.
fn measure(path: &Path) -> Option<u64> {
    match rustix::fs::statvfs(path) {
        Ok(vfs) => Some(vfs.f_bavail.saturating_mul(vfs.f_frsize)),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot measure the free disk space");
            None
        }
    }
}

/// Whether an I/O error means the filesystem (or a quota on it) is full:
/// waiting for space may help, retrying at once may not.
pub fn is_storage_full(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// A size for people: exact binary units when they fit (`256 MiB`), else
/// one decimal (`12.5 MiB`), else bytes.
fn human(bytes: u64) -> String {
    for (unit, factor) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor {
            let whole = bytes / factor;
            let tenths = (bytes % factor) * 10 / factor;
            return if tenths == 0 { format!("{whole} {unit}") } else { format!("{whole}.{tenths} {unit}") };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(256 << 20), "256 MiB");
        assert_eq!(human((12 << 20) + (1 << 19)), "12.5 MiB");
        assert_eq!(human(100), "100 bytes");
        let low = LowSpace { free: 12 << 20, reserve: 256 << 20 };
        assert_eq!(low.to_string(), "low on disk space (12 MiB free, reserve 256 MiB)");
    }

    #[test]
    fn without_a_reserve_everything_is_admitted() {
        let space = DiskSpace::new(std::env::temp_dir(), 0);
        assert_eq!(space.admit(u64::MAX), Ok(()));
        assert!(space.check().is_ok());
    }

    #[test]
    fn writes_that_would_cross_the_reserve_are_refused() {
        let space = DiskSpace::new(std::env::temp_dir(), 1);
        let free = space.check().expect("the temporary directory has room");
        assert_eq!(space.admit(free / 2), Ok(()));
        let refused = space.admit(free.saturating_add(1 << 30)).expect_err("more than is free");
        assert_eq!(refused.reserve, 1);
        assert!(DiskSpace::new(std::env::temp_dir(), u64::MAX).check().is_err());
    }

    #[test]
    fn full_filesystems_and_quotas_are_recognised() {
        assert!(is_storage_full(&io::Error::from_raw_os_error(28)));
        assert!(is_storage_full(&io::Error::from_raw_os_error(122)));
        assert!(!is_storage_full(&io::Error::from_raw_os_error(5)));
    }
}
