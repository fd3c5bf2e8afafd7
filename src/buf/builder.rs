//! Configuration of a pool, with the defaults.

use crate::budget::MemoryBudget;

use super::error::PoolError;
use super::inner::PoolInner;
use super::leak::LeakTracking;
use super::pool::BufPool;

/// Size classes used when none are configured: a small message, a page, a large frame, a socket-sized read.
pub const DEFAULT_SIZE_CLASSES: [usize; 4] = [512, 4 * 1024, 16 * 1024, 64 * 1024];

/// Idle memory kept when `max_retained_bytes` is not configured: 4 MiB, enough for 64 of the largest default
/// class, small enough to forget about per process.
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 4 * 1024 * 1024;

/// Idle memory each thread may cache per pool when `thread_cache_bytes` is not configured: 256 KiB, claimed from
/// `max_retained_bytes`, so the default 4 MiB covers 16 busy threads.
pub const DEFAULT_THREAD_CACHE_BYTES: usize = 256 * 1024;

/// Configures a [`BufPool`], from [`BufPool::builder`]. Every setting has a documented default.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use tidegate::buf::{BufPool, LeakTracking};
/// use tidegate::budget::MemoryBudget;
///
/// let process = MemoryBudget::new(256 << 20);
/// let pool = BufPool::builder()
///     .size_classes([256, 2048, 32 * 1024])
///     .max_retained_bytes(8 << 20)
///     .budget(Some(process.child(64 << 20)))
///     .leak_tracking(LeakTracking::Sampled(NonZeroU32::new(1000).unwrap()))
///     .build()?;
/// assert_eq!(pool.size_classes(), vec![256, 2048, 32 * 1024]);
/// # Ok::<(), tidegate::buf::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BufPoolBuilder {
    size_classes: Vec<usize>,
    max_retained_bytes: usize,
    /// `None` until set: the default shrinks to nothing under a small retained cap, an explicit value may not.
    thread_cache_bytes: Option<usize>,
    budget: Option<MemoryBudget>,
    leak_tracking: LeakTracking,
}

impl Default for BufPoolBuilder {
    fn default() -> Self {
        BufPoolBuilder {
            size_classes: DEFAULT_SIZE_CLASSES.to_vec(),
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            thread_cache_bytes: None,
            budget: None,
            leak_tracking: LeakTracking::Off,
        }
    }
}

impl BufPoolBuilder {
    /// The capacities of the size classes (any order; duplicates are merged). Default: [`DEFAULT_SIZE_CLASSES`].
    ///
    /// An empty list, or a class of 0 bytes, makes [`build`](Self::build) fail.
    pub fn size_classes(&mut self, sizes: impl IntoIterator<Item = usize>) -> &mut Self {
        self.size_classes = sizes.into_iter().collect();
        self
    }

    /// The most idle memory the pool keeps for reuse; storage returned beyond it is freed.
    /// Default: [`DEFAULT_MAX_RETAINED_BYTES`]. `0` makes the pool a pass-through that still counts and budgets.
    ///
    /// The cap counts buffer capacity. Each block of storage also carries a small header (40 bytes on 64-bit
    /// targets) that lets a two-word [`PooledBuf`](super::PooledBuf) find its way home; it is not counted here or
    /// in the metrics.
    pub fn max_retained_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_retained_bytes = bytes;
        self
    }

    /// Idle memory each thread may keep for this pool, claimed from `max_retained_bytes` when the thread first
    /// acquires (a thread that cannot claim it uses the shared lists). Default: [`DEFAULT_THREAD_CACHE_BYTES`]
    /// (no cache at all if `max_retained_bytes` is smaller). `0` turns thread caches off: every acquire and release
    /// then goes through the shared lists and counters. A value larger than `max_retained_bytes` makes
    /// [`build`](Self::build) fail, as no thread could ever claim it.
    ///
    /// # Limits
    ///
    /// A thread cache makes acquiring and releasing lock-free and allocation-free, but not every thread gets one:
    ///
    /// * **Threads per pool:** at most `max_retained_bytes / thread_cache_bytes` threads hold a cache for the pool
    ///   at once, and never more than 64. With the defaults (4 MiB and 256 KiB) that is 16 threads, enough for a
    ///   tokio runtime on a 16-core machine. The figure is fixed when the pool is built: raising
    ///   [`BufPool::set_max_retained_bytes`] later does not add caches.
    /// * **Pools per thread:** a thread keeps caches for at most 8 pools. Caches of pools whose last handle is
    ///   dropped do not count: the dropping thread frees its own at once, other threads on their next acquire or
    ///   release from any pool.
    /// * **Beyond either limit** the thread still works, through the shared lists and counters: one atomic
    ///   operation or two more per acquire and release, and contention if many threads do it. Its storage is
    ///   reused all the same.
    /// * **Idle storage in a cache** stays until the thread acquires or releases again: up to `thread_cache_bytes`
    ///   per cache, always inside `max_retained_bytes`. It is handed back when the thread exits, or on the thread's
    ///   next use of any pool once the pool is closed or its cap is lowered below what the caches claim.
    ///
    /// # Examples
    ///
    /// ```
    /// // Up to 32 threads with a 128 KiB cache each, inside a 4 MiB cap.
    /// let pool = tidegate::BufPool::builder()
    ///     .max_retained_bytes(4 << 20)
    ///     .thread_cache_bytes(128 << 10)
    ///     .build()?;
    /// drop(pool.try_acquire(4096).unwrap());
    /// assert_eq!(pool.metrics().total.retained_bytes, 4096); // idle in this thread's cache
    /// # Ok::<(), tidegate::PoolError>(())
    /// ```
    pub fn thread_cache_bytes(&mut self, bytes: usize) -> &mut Self {
        self.thread_cache_bytes = Some(bytes);
        self
    }

    /// Charges every outstanding buffer's capacity to `budget`; `None` removes a budget set before.
    /// Default: `None`.
    pub fn budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.budget = budget;
        self
    }

    /// Caps outstanding memory at `bytes`: shorthand for a budget of its own (a child of the configured budget, if
    /// one was set before this call). Default: no cap beyond the configured budget.
    pub fn max_outstanding_bytes(&mut self, bytes: usize) -> &mut Self {
        let budget = match &self.budget {
            Some(parent) => parent.child(bytes),
            None => MemoryBudget::new(bytes),
        };
        self.budget = Some(budget);
        self
    }

    /// Which buffers to record for [`BufPool::leak_report`]; [`LeakTracking::Off`] turns tracking off.
    /// Default: [`LeakTracking::Off`].
    pub fn leak_tracking(&mut self, mode: LeakTracking) -> &mut Self {
        self.leak_tracking = mode;
        self
    }

    /// Builds the pool. No storage is allocated until buffers are acquired.
    ///
    /// # Errors
    ///
    /// * [`PoolError::NoSizeClasses`] if the size classes are empty;
    /// * [`PoolError::ZeroSizeClass`] if one of them is 0;
    /// * [`PoolError::ThreadCacheExceedsRetained`] if `thread_cache_bytes` was set above `max_retained_bytes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::buf::{BufPool, PoolError};
    ///
    /// assert_eq!(BufPool::builder().size_classes([]).build().unwrap_err(), PoolError::NoSizeClasses);
    /// let err = BufPool::builder().max_retained_bytes(1024).thread_cache_bytes(4096).build();
    /// assert!(matches!(err, Err(PoolError::ThreadCacheExceedsRetained { .. })));
    /// ```
    pub fn build(&self) -> Result<BufPool, PoolError> {
        let mut sizes = self.size_classes.clone();
        if sizes.is_empty() {
            return Err(PoolError::NoSizeClasses);
        }
        if sizes.contains(&0) {
            return Err(PoolError::ZeroSizeClass);
        }
        sizes.sort_unstable();
        sizes.dedup();
        let thread_cache_bytes = match self.thread_cache_bytes {
            Some(bytes) if bytes > self.max_retained_bytes => {
                return Err(PoolError::ThreadCacheExceedsRetained {
                    thread_cache_bytes: bytes,
                    max_retained_bytes: self.max_retained_bytes,
                })
            }
            Some(bytes) => bytes,
            None => DEFAULT_THREAD_CACHE_BYTES,
        };
        Ok(BufPool::from_inner(PoolInner::new(
            &sizes,
            self.max_retained_bytes,
            thread_cache_bytes,
            self.budget.clone(),
            self.leak_tracking,
        )))
    }
}
