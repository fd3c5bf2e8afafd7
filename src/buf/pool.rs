//! The pool: size classes, the retained-bytes cap, the budget and the counters.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::budget::{MemoryBudget, Reservation};
use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::Arc;

use super::class::SizeClass;
use super::leak::{LeakReport, LeakTracker, LeakTracking};
use super::metrics::{PoolMetrics, PoolTotals};
use super::{PoolError, PooledBuf};

/// Size classes used when none are configured: a small message, a page, a large frame, a socket-sized read.
pub const DEFAULT_SIZE_CLASSES: [usize; 4] = [512, 4 * 1024, 16 * 1024, 64 * 1024];

/// Idle memory kept when `max_retained_bytes` is not configured: 4 MiB, enough for 64 of the largest default
/// class, small enough to forget about per process.
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 4 * 1024 * 1024;

/// The class index that marks storage allocated outside every class.
const UNPOOLED: usize = usize::MAX;

/// A pool of reusable buffers in size classes. Cheap to clone: clones share the same storage and counters.
///
/// See the [module docs](super) for an overview.
///
/// # Examples
///
/// ```
/// use bytes::BufMut;
///
/// let pool = tidegate::BufPool::builder()
///     .size_classes([1024, 8192])
///     .max_retained_bytes(64 * 1024)
///     .build();
/// let mut buf = pool.try_acquire(2000).unwrap();
/// assert_eq!(buf.capacity(), 8192);
/// buf.put_slice(b"data");
/// drop(buf);
/// assert_eq!(pool.metrics().total.retained_bytes, 8192);
/// ```
#[derive(Clone)]
pub struct BufPool {
    inner: Arc<PoolInner>,
}

pub(super) struct PoolInner {
    /// Sorted by size, smallest first.
    classes: Box<[SizeClass]>,
    retained_bytes: AtomicUsize,
    max_retained_bytes: AtomicUsize,
    budget: Option<MemoryBudget>,
    unpooled: Unpooled,
    refused: AtomicU64,
    peak_outstanding_bytes: AtomicUsize,
    leaks: LeakTracker,
}

#[derive(Default)]
struct Unpooled {
    acquired: AtomicU64,
    returned: AtomicU64,
    outstanding_bytes: AtomicUsize,
}

impl BufPool {
    /// A pool with the default size classes ([`DEFAULT_SIZE_CLASSES`]), [`DEFAULT_MAX_RETAINED_BYTES`], no budget
    /// and no leak tracking.
    pub fn new() -> Self {
        Self::builder().build()
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
    ///     .build();
    /// let a = pool.try_acquire(512).unwrap();
    /// let b = pool.try_acquire(512).unwrap();
    /// assert!(pool.try_acquire(512).is_err());
    /// assert_eq!(pool.metrics().total.refused, 1);
    /// # drop((a, b));
    /// ```
    #[track_caller]
    pub fn try_acquire(&self, capacity: usize) -> Result<PooledBuf, PoolError> {
        let location = Location::caller();
        let (class, size) = self.inner.class_for(capacity);
        let reservation = match &self.inner.budget {
            None => None,
            Some(budget) => Some(
                budget
                    .try_reserve(size)
                    .map_err(|source| self.inner.refuse(size, source))?,
            ),
        };
        Ok(self.inner.hand_out(class, size, reservation, location))
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
    /// let pool = tidegate::BufPool::builder().max_outstanding_bytes(4096).build();
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
            let (class, size) = self.inner.class_for(capacity);
            let reservation = match &self.inner.budget {
                None => None,
                Some(budget) => Some(
                    budget
                        .reserve(size)
                        .await
                        .map_err(|source| self.inner.refuse(size, source))?,
                ),
            };
            Ok(self.inner.hand_out(class, size, reservation, location))
        }
    }

    /// A snapshot of the pool's counters, per size class and in total.
    pub fn metrics(&self) -> PoolMetrics {
        self.inner.metrics()
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
    /// let pool = tidegate::BufPool::builder().leak_tracking(LeakTracking::All).build();
    /// let held = pool.try_acquire(100).unwrap();
    /// let report = pool.leak_report(Duration::ZERO);
    /// assert_eq!(report.leaks.len(), 1);
    /// assert_eq!(report.leaks[0].location.file(), file!());
    /// # drop(held);
    /// ```
    pub fn leak_report(&self, older_than: Duration) -> LeakReport {
        let outstanding = self.inner.metrics().total.outstanding_buffers;
        self.inner.leaks.report(older_than, outstanding)
    }

    /// The cap on idle memory now.
    pub fn max_retained_bytes(&self) -> usize {
        self.inner.max_retained_bytes.load(Ordering::Relaxed)
    }

    /// Changes the cap on idle memory at run time. Lowering it frees idle storage at once until the pool is under
    /// the new cap. Each class's free list was sized from the cap given at build time, so raising the cap above
    /// that value lets other classes retain more but no class more than its list holds.
    pub fn set_max_retained_bytes(&self, bytes: usize) {
        let inner = &self.inner;
        inner.max_retained_bytes.store(bytes, Ordering::Relaxed);
        // Trim the largest classes first: they free the most memory per buffer.
        for class in inner.classes.iter().rev() {
            while inner.retained_bytes.load(Ordering::Relaxed) > bytes {
                match class.pop_idle() {
                    Some(block) => {
                        inner
                            .retained_bytes
                            .fetch_sub(block.len(), Ordering::Relaxed);
                    }
                    None => break,
                }
            }
        }
    }

    /// The budget charged for outstanding buffers, if any.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.inner.budget.as_ref()
    }

    /// The configured size classes, smallest first.
    pub fn size_classes(&self) -> Vec<usize> {
        self.inner.classes.iter().map(SizeClass::size).collect()
    }
}

impl Default for BufPool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.inner.metrics().total;
        f.debug_struct("BufPool")
            .field("size_classes", &self.size_classes())
            .field("outstanding_buffers", &total.outstanding_buffers)
            .field("retained_bytes", &total.retained_bytes)
            .field("max_retained_bytes", &total.max_retained_bytes)
            .field("budget", &self.inner.budget)
            .finish()
    }
}

impl PoolInner {
    /// The index and capacity of the smallest class that fits, or `UNPOOLED` and the request itself.
    fn class_for(&self, capacity: usize) -> (usize, usize) {
        self.classes
            .iter()
            .position(|class| class.size() >= capacity)
            .map_or((UNPOOLED, capacity), |i| (i, self.classes[i].size()))
    }

    fn refuse(&self, capacity: usize, source: crate::BudgetError) -> PoolError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        PoolError::Budget { capacity, source }
    }

    fn hand_out(
        self: &Arc<Self>,
        class: usize,
        size: usize,
        reservation: Option<Reservation>,
        location: &'static Location<'static>,
    ) -> PooledBuf {
        let storage = if class == UNPOOLED {
            self.unpooled.acquired.fetch_add(1, Ordering::Relaxed);
            self.unpooled
                .outstanding_bytes
                .fetch_add(size, Ordering::Relaxed);
            vec![0; size].into_boxed_slice()
        } else {
            let class = &self.classes[class];
            class.count_acquired();
            match class.pop_idle() {
                Some(block) => {
                    self.retained_bytes.fetch_sub(size, Ordering::Relaxed);
                    block
                }
                None => class.allocate(),
            }
        };
        self.note_peak();
        let leak_id = self.leaks.track(size, location);
        PooledBuf::new(storage, self.clone(), class, leak_id, reservation)
    }

    /// Raises the recorded peak of outstanding bytes if it was just exceeded. Plain loads on the common path.
    fn note_peak(&self) {
        let outstanding = self.outstanding_bytes();
        if outstanding > self.peak_outstanding_bytes.load(Ordering::Relaxed) {
            self.peak_outstanding_bytes
                .fetch_max(outstanding, Ordering::Relaxed);
        }
    }

    fn outstanding_bytes(&self) -> usize {
        let pooled: usize = self
            .classes
            .iter()
            .map(|class| class.outstanding() as usize * class.size())
            .sum();
        pooled + self.unpooled.outstanding_bytes.load(Ordering::Relaxed)
    }

    /// Takes storage back: keeps it idle if the retained cap allows, frees it otherwise.
    pub(super) fn give_back(&self, class: usize, storage: Box<[u8]>, leak_id: u64) {
        self.leaks.untrack(leak_id);
        if class == UNPOOLED {
            self.unpooled
                .outstanding_bytes
                .fetch_sub(storage.len(), Ordering::Relaxed);
            self.unpooled.returned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let class = &self.classes[class];
        let size = storage.len();
        if self.try_retain(size) {
            if let Err(block) = class.push_idle(storage) {
                self.retained_bytes.fetch_sub(size, Ordering::Relaxed);
                drop(block);
            }
        }
        class.count_returned();
    }

    /// Claims `size` bytes of the retained cap, or reports that keeping the block would exceed it.
    fn try_retain(&self, size: usize) -> bool {
        let max = self.max_retained_bytes.load(Ordering::Relaxed);
        self.retained_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |retained| {
                retained.checked_add(size).filter(|&after| after <= max)
            })
            .is_ok()
    }

    fn metrics(&self) -> PoolMetrics {
        let classes: Vec<_> = self.classes.iter().map(SizeClass::metrics).collect();
        let unpooled_acquired = self.unpooled.acquired.load(Ordering::Relaxed);
        let unpooled_returned = self.unpooled.returned.load(Ordering::Relaxed);
        let mut total = PoolTotals {
            acquired: unpooled_acquired,
            returned: unpooled_returned,
            outstanding_buffers: unpooled_acquired.saturating_sub(unpooled_returned),
            outstanding_bytes: self.unpooled.outstanding_bytes.load(Ordering::Relaxed),
            peak_outstanding_bytes: self.peak_outstanding_bytes.load(Ordering::Relaxed),
            retained_bytes: self.retained_bytes.load(Ordering::Relaxed),
            max_retained_bytes: self.max_retained_bytes.load(Ordering::Relaxed),
            unpooled: unpooled_acquired,
            refused: self.refused.load(Ordering::Relaxed),
            ..PoolTotals::default()
        };
        for class in &classes {
            total.acquired += class.acquired;
            total.returned += class.returned;
            total.outstanding_buffers += class.outstanding_buffers;
            total.outstanding_bytes += class.outstanding_bytes;
            total.hits += class.hits;
            total.misses += class.misses;
        }
        PoolMetrics { classes, total }
    }
}

/// Configures a [`BufPool`]. Every setting has a documented default.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use tidegate::buf::{BufPool, LeakTracking};
/// use tidegate::MemoryBudget;
///
/// let process = MemoryBudget::new(256 << 20);
/// let pool = BufPool::builder()
///     .size_classes([256, 2048, 32 * 1024])
///     .max_retained_bytes(8 << 20)
///     .budget(process.child(64 << 20))
///     .leak_tracking(LeakTracking::Sampled(NonZeroU32::new(1000).unwrap()))
///     .build();
/// assert_eq!(pool.size_classes(), vec![256, 2048, 32 * 1024]);
/// ```
#[derive(Debug, Clone)]
pub struct BufPoolBuilder {
    size_classes: Vec<usize>,
    max_retained_bytes: usize,
    budget: Option<MemoryBudget>,
    leak_tracking: LeakTracking,
}

impl Default for BufPoolBuilder {
    fn default() -> Self {
        BufPoolBuilder {
            size_classes: DEFAULT_SIZE_CLASSES.to_vec(),
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            budget: None,
            leak_tracking: LeakTracking::Off,
        }
    }
}

impl BufPoolBuilder {
    /// The capacities of the size classes (any order; duplicates are merged). Default: [`DEFAULT_SIZE_CLASSES`].
    ///
    /// # Panics
    ///
    /// If `sizes` is empty or contains 0.
    pub fn size_classes(&mut self, sizes: impl IntoIterator<Item = usize>) -> &mut Self {
        let mut sizes: Vec<usize> = sizes.into_iter().collect();
        assert!(
            !sizes.is_empty() && !sizes.contains(&0),
            "size classes must be non-empty and non-zero, got {sizes:?}"
        );
        sizes.sort_unstable();
        sizes.dedup();
        self.size_classes = sizes;
        self
    }

    /// The most idle memory the pool keeps for reuse; storage returned beyond it is freed.
    /// Default: [`DEFAULT_MAX_RETAINED_BYTES`]. `0` makes the pool a pass-through that still counts and budgets.
    pub fn max_retained_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_retained_bytes = bytes;
        self
    }

    /// Charges every outstanding buffer's capacity to `budget`. Default: no budget.
    pub fn budget(&mut self, budget: MemoryBudget) -> &mut Self {
        self.budget = Some(budget);
        self
    }

    /// Caps outstanding memory at `bytes`: shorthand for a budget of its own (a child of the configured budget, if
    /// one was set before this call).
    pub fn max_outstanding_bytes(&mut self, bytes: usize) -> &mut Self {
        let budget = match &self.budget {
            Some(parent) => parent.child(bytes),
            None => MemoryBudget::new(bytes),
        };
        self.budget = Some(budget);
        self
    }

    /// Which buffers to record for [`BufPool::leak_report`]. Default: [`LeakTracking::Off`].
    pub fn leak_tracking(&mut self, mode: LeakTracking) -> &mut Self {
        self.leak_tracking = mode;
        self
    }

    /// Builds the pool. No storage is allocated until buffers are acquired.
    pub fn build(&self) -> BufPool {
        let classes = self
            .size_classes
            .iter()
            .map(|&size| SizeClass::new(size, self.max_retained_bytes / size))
            .collect();
        BufPool {
            inner: Arc::new(PoolInner {
                classes,
                retained_bytes: AtomicUsize::new(0),
                max_retained_bytes: AtomicUsize::new(self.max_retained_bytes),
                budget: self.budget.clone(),
                unpooled: Unpooled::default(),
                refused: AtomicU64::new(0),
                peak_outstanding_bytes: AtomicUsize::new(0),
                leaks: LeakTracker::new(self.leak_tracking),
            }),
        }
    }
}
