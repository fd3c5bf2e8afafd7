//! Per-thread caches: the allocation-free, lock-free fast path of a pool.
//!
//! A thread that acquires from a pool gets a small cache for it: idle blocks per class, a batch of the pool's
//! reference units ([`PoolRef`]) and counters that only this thread writes. Acquiring and dropping a buffer on such
//! a thread is a `Vec` pop and push and one counter store; no locked instruction on the common path. Idle blocks in
//! a cache keep the reference unit they were lent with, so the fast path moves no units either. The cache's memory
//! is claimed from the pool's `max_retained_bytes` up front (its quota), so the retained cap holds across threads.
//!
//! Every store on the fast path counts: the atomic reference-count updates that `Bytes` clones and drops make
//! right after an acquire wait for earlier stores to drain, so fewer stores here make `freeze` and `clone` cheaper
//! too (see `benches/pool.rs`).
//!
//! A buffer dropped on a thread without a cache for its pool goes back through the shared free lists, so storage
//! acquired on one thread and released on another is reused all the same.

use std::cell::RefCell;

use std::sync::Arc;

use super::block::Block;
use super::class::{bump_owned, unbump_owned, Counters};
use super::pool::{shelve, PoolInner};
use super::pool_ref::PoolRef;

/// Reference units a cache takes from the shared count at a time, to lend blocks with.
const UNIT_BATCH: usize = 64;

/// Pools a thread keeps caches for. Past this, further pools take the shared path on this thread.
const MAX_POOLS_PER_THREAD: usize = 8;

thread_local! {
    static CACHES: RefCell<Vec<ThreadCache>> = const { RefCell::new(Vec::new()) };
}

/// The per-class counters of one cache, readable by `metrics()` from any thread.
pub(super) type CacheStats = Arc<[Counters]>;

pub(super) struct ThreadCache {
    pool: PoolRef<PoolInner>,
    /// Boxed blocks: a buffer holds its block by pointer, so lending one out moves a pointer, not the header.
    #[expect(
        clippy::vec_box,
        reason = "blocks move between lists and buffers by pointer"
    )]
    idle: Box<[Vec<Box<Block>>]>,
    idle_bytes: usize,
    quota: usize,
    stats: CacheStats,
}

/// A lent block of `class` from this thread's cache for `pool`, creating the cache if there is none yet.
///
/// `None` when there is no cache to use: the thread is shutting down, the quota cannot be claimed, the thread
/// caches too many pools, or this is a re-entrant call.
#[inline]
pub(super) fn take(pool: &PoolRef<PoolInner>, class: usize) -> Option<Box<Block>> {
    // The common case in a closure small enough to inline: a cache exists and its list for `class` is not empty.
    let idle = CACHES.try_with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        let cache = caches
            .iter_mut()
            .find(|c| c.pool.points_to(pool.as_ptr()))?;
        cache.take_idle(class)
    });
    match idle {
        Ok(Some(taken)) => Some(taken),
        _ => take_missed(pool, class),
    }
}

/// The slow half of [`take`]: creates the cache, or refills from the shared list or the allocator.
#[cold]
#[inline(never)]
fn take_missed(pool: &PoolRef<PoolInner>, class: usize) -> Option<Box<Block>> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let index = match caches.iter().position(|c| c.pool.points_to(pool.as_ptr())) {
                Some(index) => index,
                None => create(&mut caches, pool)?,
            };
            Some(caches[index].take_missed(class))
        })
        .ok()
        .flatten()
}

/// Hands a returned block (still holding its unit) to this thread's cache for its pool, or gives it back if the
/// thread has no cache for it. Never creates a cache, so that threads which only release buffers (writer tasks,
/// say) do not hoard idle storage.
#[inline]
pub(super) fn put_back(block: Box<Block>) -> Result<(), Box<Block>> {
    let key = block.pool();
    let mut returning = Some(block);
    let _no_cache_here = CACHES.try_with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        let cache = caches.iter_mut().find(|c| c.pool.points_to(key))?;
        cache.put(returning.take()?);
        Some(())
    });
    returning.map_or(Ok(()), Err)
}

#[cold]
#[inline(never)]
fn create(caches: &mut Vec<ThreadCache>, pool: &PoolRef<PoolInner>) -> Option<usize> {
    // Caches of pools nobody can acquire from any more only hold memory: drop them first.
    caches.retain(|cache| cache.pool.get().has_handles());
    if caches.len() >= MAX_POOLS_PER_THREAD {
        return None;
    }
    let inner = pool.get();
    let quota = inner.thread_cache_bytes();
    if quota == 0 || !inner.claim_retained(quota) {
        return None;
    }
    let stats: CacheStats = (0..inner.class_count())
        .map(|_| Counters::default())
        .collect();
    inner.register_cache(stats.clone());
    caches.push(ThreadCache {
        pool: pool.clone_one(),
        idle: (0..inner.class_count()).map(|_| Vec::new()).collect(),
        idle_bytes: 0,
        quota,
        stats,
    });
    Some(caches.len() - 1)
}

impl ThreadCache {
    /// A block of `class` from the local list; it still holds the unit it was first lent with.
    #[inline]
    fn take_idle(&mut self, class: usize) -> Option<Box<Block>> {
        let block = self.idle[class].pop()?;
        bump_owned(&self.stats[class].acquired);
        self.idle_bytes -= block.capacity();
        Some(block)
    }

    /// A block of `class` when the local list is empty: the shared list, or a fresh allocation.
    fn take_missed(&mut self, class: usize) -> Box<Block> {
        if let Some(block) = self.take_idle(class) {
            return block; // another path refilled the list since the fast path looked
        }
        let inner = self.pool.get();
        let counters = &self.stats[class];
        bump_owned(&counters.acquired);
        bump_owned(&counters.idle_offset); // acquired, but not from the idle list
        let mut block = inner.pop_shared(class).unwrap_or_else(|| {
            bump_owned(&counters.misses);
            let block = inner.allocate(class);
            inner.note_peak();
            block
        });
        block.lend(self.pool.split_unit(UNIT_BATCH));
        block
    }

    /// Takes a returned block, with its unit, onto the local list.
    #[inline]
    pub(super) fn put(&mut self, block: Box<Block>) {
        let class = block.class();
        let counters = &self.stats[class];
        bump_owned(&counters.returned);
        if self.idle_bytes + block.capacity() <= self.quota && self.pool.get().has_handles() {
            self.idle_bytes += block.capacity();
            self.idle[class].push(block);
        } else {
            unbump_owned(&counters.idle_offset); // returned, but not to the idle list
            self.put_overflow(block);
        }
    }

    /// The quota is used up, or nobody can acquire from the pool again (then the block is freed now).
    #[cold]
    #[inline(never)]
    fn put_overflow(&mut self, block: Box<Block>) {
        if self.pool.get().has_handles() {
            shelve(block);
        }
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        let inner = self.pool.get();
        // Give up the quota, then offer the idle blocks to the shared lists under the ordinary cap.
        inner.release_retained(self.quota);
        for blocks in self.idle.iter_mut() {
            for block in blocks.drain(..) {
                shelve(block);
            }
        }
        inner.retire_cache(&self.stats);
        // `self.pool` drops after this, giving back its units (and freeing the pool if they were the last).
    }
}
