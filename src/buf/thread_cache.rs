//! Per-thread caches: the allocation-free, lock-free fast path of a pool.
//!
//! A thread that acquires from a pool gets a small cache for it: idle blocks per class, a batch of the pool's
//! reference units ([`PoolRef`]) and counters that only this thread writes. Acquiring and dropping a buffer on such
//! a thread is a `Vec` pop and push plus plain stores; no locked instruction on the common path. The cache's memory
//! is claimed from the pool's `max_retained_bytes` up front (its quota), so the retained cap holds across threads.
//!
//! A buffer dropped on a thread without a cache for its pool goes back through the shared free lists, so storage
//! acquired on one thread and released on another is reused all the same.

use std::cell::RefCell;

use crate::loom::atomic::Ordering;
use std::sync::Arc;

use super::class::{bump_owned, Counters};
use super::pool::PoolInner;
use super::pool_ref::{PoolRef, Unit};

/// Reference units a cache takes from the shared count at a time; it gives back a batch once it holds two.
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
    idle: Box<[Vec<Box<[u8]>>]>,
    idle_bytes: usize,
    quota: usize,
    stats: CacheStats,
}

/// Runs `f` with this thread's cache for `pool`, creating the cache if there is none yet.
///
/// `None` when there is no cache to use: caching is off, the thread is shutting down, the quota cannot be claimed,
/// the thread caches too many pools, or this is a re-entrant call.
pub(super) fn with_cache<R>(
    pool: &PoolRef<PoolInner>,
    f: impl FnOnce(&mut ThreadCache) -> R,
) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let index = match caches.iter().position(|c| c.pool.same_target(pool)) {
                Some(index) => index,
                None => create(&mut caches, pool)?,
            };
            Some(f(&mut caches[index]))
        })
        .ok()
        .flatten()
}

/// Hands a buffer's block and unit to this thread's cache for their pool, or gives them back if the thread has no
/// cache for it. Never creates a cache, so that threads which only release buffers (writer tasks, say) do not
/// hoard idle storage.
#[inline]
pub(super) fn put_back(
    class: usize,
    block: Box<[u8]>,
    unit: Unit<PoolInner>,
) -> Result<(), (Box<[u8]>, Unit<PoolInner>)> {
    let key = unit.as_ptr();
    let mut returning = Some((block, unit));
    let _no_cache_here = CACHES.try_with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        let cache = caches.iter_mut().find(|c| c.pool.points_to(key))?;
        let (block, unit) = returning.take()?;
        cache.put(class, block, unit);
        Some(())
    });
    returning.map_or(Ok(()), Err)
}

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
    /// A block of `class` and the reference unit the buffer will carry.
    #[inline]
    pub(super) fn take(&mut self, class: usize) -> (Box<[u8]>, Unit<PoolInner>) {
        let counters = &self.stats[class];
        bump_owned(&counters.acquired);
        let block = match self.idle[class].pop() {
            Some(block) => {
                self.idle_bytes -= block.len();
                counters
                    .idle
                    .store(self.idle[class].len() as u64, Ordering::Relaxed);
                block
            }
            None => match self.pool.get().pop_shared(class) {
                Some(block) => block,
                None => {
                    bump_owned(&counters.misses);
                    let block = self.pool.get().classes()[class].allocate();
                    self.pool.get().note_peak();
                    block
                }
            },
        };
        (block, self.pool.split_unit(UNIT_BATCH))
    }

    /// Takes a buffer's block and reference unit back.
    #[inline]
    pub(super) fn put(&mut self, class: usize, block: Box<[u8]>, unit: Unit<PoolInner>) {
        let counters = &self.stats[class];
        bump_owned(&counters.returned);
        self.pool.absorb(unit);
        self.pool.release_above(2 * UNIT_BATCH);
        let inner = self.pool.get();
        if !inner.has_handles() {
            return; // nobody can acquire from this pool again: free the block now
        }
        if self.idle_bytes + block.len() <= self.quota {
            self.idle_bytes += block.len();
            self.idle[class].push(block);
            counters
                .idle
                .store(self.idle[class].len() as u64, Ordering::Relaxed);
        } else {
            inner.push_shared_or_free(class, block);
        }
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        let inner = self.pool.get();
        // Give up the quota, then offer the idle blocks to the shared lists under the ordinary cap.
        inner.release_retained(self.quota);
        for (class, blocks) in self.idle.iter_mut().enumerate() {
            for block in blocks.drain(..) {
                inner.push_shared_or_free(class, block);
            }
        }
        inner.retire_cache(&self.stats);
        // `self.pool` drops after this, giving back its units (and freeing the pool if they were the last).
    }
}
