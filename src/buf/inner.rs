//! The state every handle, thread cache and outstanding buffer of one pool shares, and its acquire and return
//! paths outside the thread caches.

use crate::budget::{BudgetError, MemoryBudget};
use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::block::Block;
use super::cache_slot::{CacheSlot, CacheStats, MAX_CACHED_THREADS};
use super::class::{bump_shared, SizeClass};
use super::error::PoolError;
use super::leak::{LeakTracker, LeakTracking};
use super::pool_ref::Counted;
use super::shared::shelve;
use super::thread_cache;
use super::unpooled::{Unpooled, UNPOOLED};

pub(super) struct PoolInner {
    /// The reference count behind [`PoolRef`](super::pool_ref::PoolRef): handles, thread caches and outstanding
    /// buffers.
    ref_units: AtomicUsize,
    /// `BufPool` handles alive. At zero nobody can acquire again, so caches stop keeping storage.
    pub(super) handles: AtomicUsize,
    /// Sorted by size, smallest first.
    pub(super) classes: Box<[SizeClass]>,
    /// Bytes counted against `max_retained_bytes`: blocks on the shared lists plus the quotas of thread caches.
    pub(super) retained_claims: AtomicUsize,
    pub(super) max_retained_bytes: AtomicUsize,
    pub(super) thread_cache_bytes: usize,
    /// The counters of the thread caches, one slot per cache that may exist at once.
    pub(super) cache_slots: Box<[CacheSlot]>,
    pub(super) budget: Option<MemoryBudget>,
    pub(super) unpooled: Unpooled,
    pub(super) refused: AtomicU64,
    pub(super) peak_outstanding_bytes: AtomicUsize,
    pub(super) leaks: LeakTracker,
}

impl Counted for PoolInner {
    fn ref_units(&self) -> &AtomicUsize {
        &self.ref_units
    }
}

impl PoolInner {
    /// A pool's state with one handle. `size_classes` must be sorted, deduplicated and free of zeros.
    pub(super) fn new(
        size_classes: &[usize],
        max_retained_bytes: usize,
        thread_cache_bytes: usize,
        budget: Option<MemoryBudget>,
        leak_tracking: LeakTracking,
    ) -> Self {
        let classes: Box<[SizeClass]> = size_classes
            .iter()
            .map(|&size| SizeClass::new(size, max_retained_bytes / size))
            .collect();
        let cache_slots = max_retained_bytes
            .checked_div(thread_cache_bytes)
            .unwrap_or(0)
            .min(MAX_CACHED_THREADS);
        let cache_slots = (0..cache_slots)
            .map(|_| CacheSlot::new(classes.len()))
            .collect();
        PoolInner {
            ref_units: AtomicUsize::new(0),
            handles: AtomicUsize::new(1),
            classes,
            retained_claims: AtomicUsize::new(0),
            max_retained_bytes: AtomicUsize::new(max_retained_bytes),
            thread_cache_bytes,
            cache_slots,
            budget,
            unpooled: Unpooled::default(),
            refused: AtomicU64::new(0),
            peak_outstanding_bytes: AtomicUsize::new(0),
            leaks: LeakTracker::new(leak_tracking),
        }
    }

    /// The index and capacity of the smallest class that fits, or `UNPOOLED` and the request itself.
    #[inline]
    pub(super) fn class_for(&self, capacity: usize) -> (usize, usize) {
        self.classes
            .iter()
            .position(|class| class.size() >= capacity)
            .map_or((UNPOOLED, capacity), |i| (i, self.classes[i].size()))
    }

    pub(super) fn refuse(&self, capacity: usize, source: BudgetError) -> PoolError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        PoolError::Budget { capacity, source }
    }

    pub(super) fn class_count(&self) -> usize {
        self.classes.len()
    }

    #[inline]
    pub(super) fn has_handles(&self) -> bool {
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
    pub(super) fn take_uncached(&self, class: usize, size: usize) -> Box<Block> {
        if class == UNPOOLED {
            let block = self.unpooled.take(size);
            self.note_peak();
            return block;
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
    pub(super) fn close(&self) {
        self.free_shared();
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
}

/// A returned block for the shared list (or the allocator), or unpooled storage to free.
#[cold]
#[inline(never)]
fn give_back_uncached(block: Box<Block>) {
    if let Some(inner) = block.home() {
        if block.class() == UNPOOLED {
            inner.unpooled.put_back(block.capacity());
        } else {
            bump_shared(&inner.classes[block.class()].shared.returned);
        }
    }
    shelve(block);
}
