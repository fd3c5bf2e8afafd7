//! The pool: size classes, the retained-bytes cap, the budget and the counters.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::budget::{BudgetError, MemoryBudget};
use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::block::Block;
use super::cache_slot::{CacheSlot, CacheStats, MAX_CACHED_THREADS};
use super::class::{bump_shared, Counts, SizeClass};
use super::leak::{LeakReport, LeakTracker, LeakTracking};
use super::metrics::{ClassMetrics, PoolMetrics, PoolTotals};
use super::pool_ref::{Counted, PoolRef};
use super::thread_cache;
use super::{PoolError, PooledBuf};

/// Size classes used when none are configured: a small message, a page, a large frame, a socket-sized read.
pub const DEFAULT_SIZE_CLASSES: [usize; 4] = [512, 4 * 1024, 16 * 1024, 64 * 1024];

/// Idle memory kept when `max_retained_bytes` is not configured: 4 MiB, enough for 64 of the largest default
/// class, small enough to forget about per process.
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 4 * 1024 * 1024;

/// Idle memory each thread may cache per pool when `thread_cache_bytes` is not configured: 256 KiB, claimed from
/// `max_retained_bytes`, so the default 4 MiB covers 16 busy threads.
pub const DEFAULT_THREAD_CACHE_BYTES: usize = 256 * 1024;

/// The class index that marks storage allocated outside every class.
pub(super) const UNPOOLED: usize = usize::MAX;

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
///     .build();
/// let mut buf = pool.try_acquire(2000).unwrap();
/// assert_eq!(buf.capacity(), 8192);
/// buf.put_slice(b"data");
/// drop(buf);
/// assert_eq!(pool.metrics().total.retained_bytes, 8192);
/// ```
pub struct BufPool {
    pool: PoolRef<PoolInner>,
}

pub(super) struct PoolInner {
    /// The reference count behind [`PoolRef`]: handles, thread caches and outstanding buffers.
    ref_units: AtomicUsize,
    /// `BufPool` handles alive. At zero nobody can acquire again, so caches stop keeping storage.
    handles: AtomicUsize,
    /// Sorted by size, smallest first.
    classes: Box<[SizeClass]>,
    /// Bytes counted against `max_retained_bytes`: blocks on the shared lists plus the quotas of thread caches.
    retained_claims: AtomicUsize,
    max_retained_bytes: AtomicUsize,
    thread_cache_bytes: usize,
    /// The counters of the thread caches, one slot per cache that may exist at once.
    cache_slots: Box<[CacheSlot]>,
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

impl Counted for PoolInner {
    fn ref_units(&self) -> &AtomicUsize {
        &self.ref_units
    }
}

impl BufPool {
    /// A pool with the default size classes ([`DEFAULT_SIZE_CLASSES`]), [`DEFAULT_MAX_RETAINED_BYTES`],
    /// [`DEFAULT_THREAD_CACHE_BYTES`], no budget and no leak tracking.
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
    /// let pool = tidegate::BufPool::builder().leak_tracking(LeakTracking::All).build();
    /// let held = pool.try_acquire(100).unwrap();
    /// let report = pool.leak_report(Duration::ZERO);
    /// assert_eq!(report.leaks.len(), 1);
    /// assert_eq!(report.leaks[0].location.file(), file!());
    /// # drop(held);
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
        let inner = self.inner();
        inner.max_retained_bytes.store(bytes, Ordering::Relaxed);
        // Trim the largest classes first: they free the most memory per block.
        for class in 0..inner.classes.len() {
            let class = inner.classes.len() - 1 - class;
            while inner.retained_claims.load(Ordering::Relaxed) > bytes {
                match inner.pop_shared(class) {
                    Some(block) => drop(block),
                    None => break,
                }
            }
        }
        if inner.retained_claims.load(Ordering::Relaxed) > bytes {
            thread_cache::recheck_all();
        }
    }

    /// The budget charged for outstanding buffers, if any.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.inner().budget.as_ref()
    }

    /// The configured size classes, smallest first.
    pub fn size_classes(&self) -> Vec<usize> {
        self.inner().classes.iter().map(SizeClass::size).collect()
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

impl PoolInner {
    /// The index and capacity of the smallest class that fits, or `UNPOOLED` and the request itself.
    #[inline]
    fn class_for(&self, capacity: usize) -> (usize, usize) {
        self.classes
            .iter()
            .position(|class| class.size() >= capacity)
            .map_or((UNPOOLED, capacity), |i| (i, self.classes[i].size()))
    }

    fn refuse(&self, capacity: usize, source: BudgetError) -> PoolError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        PoolError::Budget { capacity, source }
    }

    pub(super) fn class_count(&self) -> usize {
        self.classes.len()
    }

    #[inline]
    fn has_handles(&self) -> bool {
        self.handles.load(Ordering::Relaxed) > 0
    }

    /// Whether thread caches should keep storage for the pool: someone can still acquire from it, and the caches'
    /// quotas do not keep it over its retained cap.
    pub(super) fn wants_caches(&self) -> bool {
        self.has_handles()
            && self.retained_claims.load(Ordering::Relaxed)
                <= self.max_retained_bytes.load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn thread_cache_bytes(&self) -> usize {
        self.thread_cache_bytes
    }

    /// Storage for a thread without a cache: the shared list, or a fresh allocation. Counted in the shared set.
    fn take_uncached(&self, class: usize, size: usize) -> Box<Block> {
        if class == UNPOOLED {
            bump_shared(&self.unpooled.acquired);
            self.unpooled
                .outstanding_bytes
                .fetch_add(size, Ordering::Relaxed);
            self.note_peak();
            return Block::allocate(UNPOOLED, size);
        }
        let shared = &self.classes[class].shared;
        bump_shared(&shared.acquired);
        self.pop_shared(class).unwrap_or_else(|| {
            bump_shared(&shared.misses);
            self.note_peak();
            self.allocate(class)
        })
    }

    /// A fresh zeroed block of `class`: initialised once per allocation so that filling a buffer never needs
    /// `unsafe`.
    pub(super) fn allocate(&self, class: usize) -> Box<Block> {
        Block::allocate(class, self.classes[class].size())
    }

    /// An idle block from the shared list of `class`, releasing its claim on the retained cap.
    pub(super) fn pop_shared(&self, class: usize) -> Option<Box<Block>> {
        let block = self.classes[class].pop_idle()?;
        self.release_retained(block.capacity());
        Some(block)
    }

    /// Keeps `block` on the shared list if the retained cap allows and the pool can still be acquired from, frees
    /// it otherwise.
    fn push_shared_or_free(&self, block: Box<Block>) {
        let size = block.capacity();
        // A push racing with `close` may leave a block behind; it goes when the pool's last unit does.
        if self.has_handles() && self.claim_retained(size) {
            if let Err(block) = self.classes[block.class()].push_idle(block) {
                self.release_retained(size);
                drop(block);
            }
        }
    }

    /// Claims `bytes` of the retained cap; false if that would exceed it.
    pub(super) fn claim_retained(&self, bytes: usize) -> bool {
        let max = self.max_retained_bytes.load(Ordering::Relaxed);
        self.retained_claims
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |claimed| {
                claimed.checked_add(bytes).filter(|&after| after <= max)
            })
            .is_ok()
    }

    pub(super) fn release_retained(&self, bytes: usize) {
        self.retained_claims.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A free cache slot, its index and counters, for a new thread cache; `None` if every slot is taken.
    pub(super) fn claim_cache_slot(&self) -> Option<(usize, CacheStats)> {
        self.cache_slots
            .iter()
            .enumerate()
            .find_map(|(index, slot)| Some((index, slot.claim()?)))
    }

    /// Frees the slot of a retiring thread cache, which has handed back its idle blocks.
    pub(super) fn release_cache_slot(&self, index: usize) {
        self.cache_slots[index].release();
    }

    /// The last handle is gone: nobody can acquire again, so idle storage is only memory held. The shared lists
    /// are emptied now, blocks coming back later are freed, and thread caches let go on their next operation.
    #[cold]
    fn close(&self) {
        for class in 0..self.classes.len() {
            while let Some(block) = self.pop_shared(class) {
                drop(block);
            }
        }
        thread_cache::recheck_all();
    }

    /// Takes a returned block back: into this thread's cache if it has one, else the shared list or the allocator,
    /// and gives back its budget charge and leak record.
    #[inline]
    pub(super) fn give_back(mut block: Box<Block>) {
        let leak_id = block.take_leak_id();
        let Some(inner) = block.home() else {
            return debug_assert!(false, "a block given back that was not lent");
        };
        inner.leaks.untrack(leak_id);
        if let Some(budget) = &inner.budget {
            budget.release_detached(block.capacity());
        }
        let cached = block.class() != UNPOOLED && inner.thread_cache_bytes > 0;
        if !cached {
            return give_back_uncached(block);
        }
        if let Err(block) = thread_cache::put_back(block) {
            give_back_uncached(block);
        }
    }

    /// Raises the recorded peaks of outstanding bytes and buffers per class if they were just exceeded. Called on
    /// the slow paths (every allocation) and by `metrics`, because summing every thread's counters on each acquire
    /// would cost more than the acquire itself. Atomic loads only (and a store for a new peak): an allocation takes
    /// no lock and makes no snapshot for this.
    pub(super) fn note_peak(&self) {
        let mut outstanding = self.unpooled.outstanding_bytes.load(Ordering::Relaxed);
        for (index, class) in self.classes.iter().enumerate() {
            let counts = self.class_counts(index);
            let buffers = counts.acquired.saturating_sub(counts.returned);
            raise(&class.peak_outstanding, buffers);
            outstanding += buffers as usize * class.size();
        }
        if outstanding > self.peak_outstanding_bytes.load(Ordering::Relaxed) {
            self.peak_outstanding_bytes
                .fetch_max(outstanding, Ordering::Relaxed);
        }
    }

    /// The counts of `class`: the shared set plus every cache slot's.
    fn class_counts(&self, class: usize) -> Counts {
        let mut counts: Counts = self.classes[class].shared.load();
        for slot in self.cache_slots.iter() {
            counts += slot.load(class);
        }
        counts
    }

    fn metrics(&self) -> PoolMetrics {
        let classes: Vec<ClassMetrics> = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, class)| class_metrics(class, self.class_counts(i)))
            .collect();
        let unpooled_acquired = self.unpooled.acquired.load(Ordering::Relaxed);
        let unpooled_returned = self.unpooled.returned.load(Ordering::Relaxed);
        let mut total = PoolTotals {
            acquired: unpooled_acquired,
            returned: unpooled_returned,
            outstanding_buffers: unpooled_acquired.saturating_sub(unpooled_returned),
            outstanding_bytes: self.unpooled.outstanding_bytes.load(Ordering::Relaxed),
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
            total.retained_bytes += class.retained_bytes;
            total.hits += class.hits;
            total.misses += class.misses;
        }
        let peak = self
            .peak_outstanding_bytes
            .fetch_max(total.outstanding_bytes, Ordering::Relaxed);
        total.peak_outstanding_bytes = peak.max(total.outstanding_bytes);
        PoolMetrics { classes, total }
    }
}

/// A returned block for the shared list (or the allocator), or unpooled storage to free.
#[cold]
#[inline(never)]
fn give_back_uncached(block: Box<Block>) {
    if let Some(inner) = block.home() {
        if block.class() == UNPOOLED {
            inner
                .unpooled
                .outstanding_bytes
                .fetch_sub(block.capacity(), Ordering::Relaxed);
            bump_shared(&inner.unpooled.returned);
        } else {
            bump_shared(&inner.classes[block.class()].shared.returned);
        }
    }
    shelve(block);
}

/// Puts a block that still holds its unit on its pool's shared list, or frees it, then lets go of the unit: blocks
/// on a shared list hold none, or a pool would keep itself alive. Unpooled blocks are always freed.
pub(super) fn shelve(mut block: Box<Block>) {
    let Some(home) = block.come_home() else {
        return;
    };
    let inner = home.get();
    if block.class() != UNPOOLED {
        inner.push_shared_or_free(block);
    }
    // `home` drops here, after the pool is done with the block (it may have been the pool's last unit).
}

/// Raises a recorded peak to `now`, with no read-modify-write unless it is a new peak.
fn raise(peak: &AtomicU64, now: u64) {
    if now > peak.load(Ordering::Relaxed) {
        peak.fetch_max(now, Ordering::Relaxed);
    }
}

fn class_metrics(class: &SizeClass, counts: Counts) -> ClassMetrics {
    let outstanding = counts.acquired.saturating_sub(counts.returned);
    let peak = class
        .peak_outstanding
        .fetch_max(outstanding, Ordering::Relaxed)
        .max(outstanding);
    let retained = class.shared_idle() + counts.idle as usize;
    ClassMetrics {
        capacity: class.size(),
        acquired: counts.acquired,
        returned: counts.returned,
        outstanding_buffers: outstanding,
        outstanding_bytes: outstanding as usize * class.size(),
        retained_buffers: retained,
        retained_bytes: retained * class.size(),
        hits: counts.acquired.saturating_sub(counts.misses),
        misses: counts.misses,
        peak_outstanding_buffers: peak,
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
    thread_cache_bytes: usize,
    budget: Option<MemoryBudget>,
    leak_tracking: LeakTracking,
}

impl Default for BufPoolBuilder {
    fn default() -> Self {
        BufPoolBuilder {
            size_classes: DEFAULT_SIZE_CLASSES.to_vec(),
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            thread_cache_bytes: DEFAULT_THREAD_CACHE_BYTES,
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
    ///
    /// The cap counts buffer capacity. Each block of storage also carries a small header (40 bytes on 64-bit
    /// targets) that lets a two-word [`PooledBuf`] find its way home; it is not counted here or in the metrics.
    pub fn max_retained_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_retained_bytes = bytes;
        self
    }

    /// Idle memory each thread may keep for this pool, claimed from `max_retained_bytes` when the thread first
    /// acquires (a thread that cannot claim it uses the shared lists). Default: [`DEFAULT_THREAD_CACHE_BYTES`].
    /// `0` turns thread caches off: every acquire and release then goes through the shared lists and counters.
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
    ///     .build();
    /// drop(pool.try_acquire(4096).unwrap());
    /// assert_eq!(pool.metrics().total.retained_bytes, 4096); // idle in this thread's cache
    /// ```
    pub fn thread_cache_bytes(&mut self, bytes: usize) -> &mut Self {
        self.thread_cache_bytes = bytes;
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
        let classes: Box<[SizeClass]> = self
            .size_classes
            .iter()
            .map(|&size| SizeClass::new(size, self.max_retained_bytes / size))
            .collect();
        let cache_slots = self
            .max_retained_bytes
            .checked_div(self.thread_cache_bytes)
            .unwrap_or(0)
            .min(MAX_CACHED_THREADS);
        let cache_slots = (0..cache_slots)
            .map(|_| CacheSlot::new(classes.len()))
            .collect();
        BufPool {
            pool: PoolRef::new(PoolInner {
                ref_units: AtomicUsize::new(0),
                handles: AtomicUsize::new(1),
                classes,
                retained_claims: AtomicUsize::new(0),
                max_retained_bytes: AtomicUsize::new(self.max_retained_bytes),
                thread_cache_bytes: self.thread_cache_bytes,
                cache_slots,
                budget: self.budget.clone(),
                unpooled: Unpooled::default(),
                refused: AtomicU64::new(0),
                peak_outstanding_bytes: AtomicUsize::new(0),
                leaks: LeakTracker::new(self.leak_tracking),
            }),
        }
    }
}

/// Loom explores the shared return path (thread caches off, as loom threads are not OS threads): concurrent
/// returns never retain more than the cap, and the counters add up whatever the interleaving.
#[cfg(all(test, tidegate_loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_concurrent_returns_respect_the_retained_cap() {
        loom::model(|| {
            let pool = BufPool::builder()
                .size_classes([64])
                .max_retained_bytes(64)
                .thread_cache_bytes(0)
                .build();
            let a = pool.try_acquire(64).unwrap();
            let b = pool.try_acquire(64).unwrap();
            let t = loom::thread::spawn(move || drop(a));
            drop(b);
            t.join().unwrap();
            let m = pool.metrics().total;
            assert_eq!((m.acquired, m.returned, m.outstanding_buffers), (2, 2, 0));
            assert_eq!(m.retained_bytes, 64, "exactly one block fits under the cap");
        });
    }
}
