//! The pool handle: what users acquire buffers from, read metrics and leak reports from, and tune at run time.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::budget::MemoryBudget;
use crate::loom::atomic::Ordering;

use super::builder::{
    BufPoolBuilder, DEFAULT_MAX_RETAINED_BYTES, DEFAULT_SIZE_CLASSES, DEFAULT_THREAD_CACHE_BYTES,
};
use super::class::SizeClass;
use super::error::PoolError;
use super::inner::PoolInner;
use super::leak::{LeakReport, LeakTracking};
use super::metrics::PoolMetrics;
use super::pool_ref::PoolRef;
use super::pooled::PooledBuf;
use super::thread_cache;
use super::unpooled::UNPOOLED;

/// A pool of reusable buffers in size classes. Cheap to clone: clones share the same storage and counters.
///
/// See the [module docs](super) for an overview. Each thread that acquires from the pool keeps a small cache of
/// idle storage for it (see [`BufPoolBuilder::thread_cache_bytes`]), so the common acquire/drop cycle touches no
/// shared counter.
///
/// # Examples
///
/// ```
/// use bytes::BufMut;
///
/// let pool = tidegate::BufPool::builder()
///     .size_classes([1024, 8192])
///     .max_retained_bytes(64 * 1024)
///     .build()?;
/// let mut buf = pool.try_acquire(2000).unwrap();
/// assert_eq!(buf.capacity(), 8192);
/// buf.put_slice(b"data");
/// drop(buf);
/// assert_eq!(pool.metrics().total.retained_bytes, 8192);
/// # Ok::<(), tidegate::PoolError>(())
/// ```
pub struct BufPool {
    pool: PoolRef<PoolInner>,
    /// What registry observers hold weakly: it lives as long as some handle does (clones share it), and holds
    /// one unit of the pool so that an observer that upgraded it can read the pool. Apart from the hot path: an
    /// acquire never touches it.
    #[cfg_attr(all(test, tidegate_loom), allow(dead_code))]
    pub(super) link: std::sync::Arc<PoolLink>,
}

/// The observers' way to the pool (see [`BufPool`]'s `link`); the observers are compiled out under loom.
#[cfg_attr(all(test, tidegate_loom), allow(dead_code))]
pub(super) struct PoolLink(pub(super) PoolRef<PoolInner>);

impl BufPool {
    /// A pool with the default size classes ([`DEFAULT_SIZE_CLASSES`]), [`DEFAULT_MAX_RETAINED_BYTES`],
    /// [`DEFAULT_THREAD_CACHE_BYTES`], no budget and no leak tracking.
    pub fn new() -> Self {
        Self::from_inner(PoolInner::new(
            &DEFAULT_SIZE_CLASSES,
            DEFAULT_MAX_RETAINED_BYTES,
            DEFAULT_THREAD_CACHE_BYTES,
            None,
            LeakTracking::Off,
        ))
    }

    /// A builder to configure classes, caps, budget and leak tracking.
    pub fn builder() -> BufPoolBuilder {
        BufPoolBuilder::default()
    }

    /// A buffer of at least `capacity` bytes, now, or an error.
    ///
    /// The buffer comes from the smallest class that fits; a request larger than the largest class is allocated
    /// outside the pool (counted as unpooled) and freed on drop. When the pool has a budget, the buffer's full
    /// capacity is charged to it until the storage comes back.
    ///
    /// # Errors
    ///
    /// [`PoolError::Budget`] if the budget cannot cover the capacity; nothing is allocated then.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = tidegate::BufPool::builder()
    ///     .max_outstanding_bytes(1024)
    ///     .build()?;
    /// let a = pool.try_acquire(512).unwrap();
    /// let b = pool.try_acquire(512).unwrap();
    /// assert!(pool.try_acquire(512).is_err());
    /// assert_eq!(pool.metrics().total.refused, 1);
    /// # drop((a, b));
    /// # Ok::<(), tidegate::PoolError>(())
    /// ```
    #[track_caller]
    #[inline]
    pub fn try_acquire(&self, capacity: usize) -> Result<PooledBuf, PoolError> {
        let location = Location::caller();
        let (class, size) = self.inner().class_for(capacity);
        if let Some(budget) = &self.inner().budget {
            let charge = budget
                .try_reserve(size)
                .map_err(|source| self.inner().refuse(size, source))?;
            // The pool gives the bytes back when the storage comes home (see `give_back`).
            charge.detach();
        }
        Ok(self.hand_out(class, size, location))
    }

    /// A buffer of at least `capacity` bytes, waiting while the budget is exhausted.
    ///
    /// # Errors
    ///
    /// [`PoolError::Budget`] at once if the capacity is larger than the budget's limit, so waiting could never help.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes reserves and allocates nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = tidegate::BufPool::builder().max_outstanding_bytes(4096).build().unwrap();
    /// let held = pool.acquire(4096).await.unwrap();
    /// let waiter = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.acquire(4096).await.map(|b| b.capacity()) }
    /// });
    /// tokio::task::yield_now().await;
    /// drop(held); // lets the waiter in
    /// assert_eq!(waiter.await.unwrap(), Ok(4096));
    /// # }
    /// ```
    #[track_caller]
    pub fn acquire(
        &self,
        capacity: usize,
    ) -> impl Future<Output = Result<PooledBuf, PoolError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let (class, size) = self.inner().class_for(capacity);
            if let Some(budget) = &self.inner().budget {
                let charge = budget
                    .reserve(size)
                    .await
                    .map_err(|source| self.inner().refuse(size, source))?;
                charge.detach();
            }
            Ok(self.hand_out(class, size, location))
        }
    }

    /// A snapshot of the pool's counters, per size class and in total.
    pub fn metrics(&self) -> PoolMetrics {
        self.inner().metrics()
    }

    /// The tracked buffers outstanding for at least `older_than`, oldest first, with where they were acquired.
    ///
    /// Only buffers recorded by the pool's [`LeakTracking`] mode are listed; with tracking off this costs one
    /// snapshot of the counters and lists nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::buf::LeakTracking;
    ///
    /// let pool = tidegate::BufPool::builder().leak_tracking(LeakTracking::All).build()?;
    /// let held = pool.try_acquire(100).unwrap();
    /// let report = pool.leak_report(Duration::ZERO);
    /// assert_eq!(report.leaks.len(), 1);
    /// assert_eq!(report.leaks[0].location.file(), file!());
    /// # drop(held);
    /// # Ok::<(), tidegate::PoolError>(())
    /// ```
    pub fn leak_report(&self, older_than: Duration) -> LeakReport {
        let outstanding = self.inner().metrics().total.outstanding_buffers;
        self.inner().leaks.report(older_than, outstanding)
    }

    /// The cap on idle memory now.
    pub fn max_retained_bytes(&self) -> usize {
        self.inner().max_retained_bytes.load(Ordering::Relaxed)
    }

    /// Changes the cap on idle memory at run time. Lowering it frees idle storage on the shared lists at once until
    /// the pool is under the new cap. If thread caches' quotas still keep it over, this thread's cache for the pool
    /// is dropped at once and every other thread's on its next acquire or release (from any pool); their idle
    /// storage is freed, or kept on the shared lists if the new cap allows. The number of threads that may cache
    /// for the pool is fixed at build time (see [`BufPoolBuilder::thread_cache_bytes`]).
    /// Each class's shared list was sized from the cap given at build time, so raising the cap above that value
    /// lets other classes retain more but no class more than its list holds.
    pub fn set_max_retained_bytes(&self, bytes: usize) {
        self.inner().set_max_retained_bytes(bytes);
    }

    /// The budget charged for outstanding buffers, if any.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.inner().budget.as_ref()
    }

    /// The configured size classes, smallest first.
    pub fn size_classes(&self) -> Vec<usize> {
        self.inner().classes.iter().map(SizeClass::size).collect()
    }

    /// A handle to a pool built by [`BufPoolBuilder`].
    pub(super) fn from_inner(inner: PoolInner) -> Self {
        let pool = PoolRef::new(inner);
        let link = std::sync::Arc::new(PoolLink(pool.clone_one()));
        BufPool { pool, link }
    }

    #[inline]
    fn inner(&self) -> &PoolInner {
        self.pool.get()
    }

    #[inline]
    fn hand_out(
        &self,
        class: usize,
        size: usize,
        location: &'static Location<'static>,
    ) -> PooledBuf {
        let inner = self.inner();
        let cached = if class != UNPOOLED && inner.thread_cache_bytes > 0 {
            thread_cache::take(&self.pool, class)
        } else {
            None
        };
        let mut block = cached.unwrap_or_else(|| {
            let mut block = inner.take_uncached(class, size);
            block.lend(self.pool.clone_unit());
            block
        });
        let leak_id = inner.leaks.track(size, location);
        if leak_id != 0 {
            block.set_leak_id(leak_id);
        }
        PooledBuf::new(block)
    }
}

impl Clone for BufPool {
    fn clone(&self) -> Self {
        self.inner().handles.fetch_add(1, Ordering::Relaxed);
        BufPool {
            pool: self.pool.clone_one(),
            link: std::sync::Arc::clone(&self.link),
        }
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        if self.inner().handles.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.inner().close();
        }
    }
}

impl Default for BufPool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.inner().metrics().total;
        f.debug_struct("BufPool")
            .field("size_classes", &self.size_classes())
            .field("outstanding_buffers", &total.outstanding_buffers)
            .field("retained_bytes", &total.retained_bytes)
            .field("max_retained_bytes", &total.max_retained_bytes)
            .field("budget", &self.inner().budget)
            .finish()
    }
}
