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
//!
//! When a pool's last handle is dropped nobody can acquire from it again, so its caches only hold memory; when its
//! retained cap is lowered below what is claimed, its caches' quotas must go. The thread doing either lets go of
//! its own cache for the pool at once; every other thread notices on its next acquire or release, for any pool,
//! because the number of such requests ([`RECHECKS`]) differs from the one it last saw: a load of one rarely
//! written word on the fast path, instead of a look at every cached pool.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::block::Block;
use super::cache_slot::CacheStats;
use super::class::{bump_owned, unbump_owned};
use super::inner::PoolInner;
use super::pool_ref::PoolRef;
use super::shared::shelve;

/// Reference units a cache takes from the shared count at a time, to lend blocks with.
const UNIT_BATCH: usize = 64;

/// Pools a thread keeps caches for. Past this, further pools take the shared path on this thread. Documented on
/// `BufPoolBuilder::thread_cache_bytes`: change both together.
const MAX_POOLS_PER_THREAD: usize = 8;

/// Times a pool asked every thread to recheck its cache for it, since the process started: its last handle was
/// dropped, or its retained cap was lowered below what is claimed. Bumped (with release ordering) after that change,
/// so a thread that sees the new number also sees the change.
static RECHECKS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CACHES: RefCell<Caches> = const {
        RefCell::new(Caches {
            rechecks_seen: 0,
            list: Vec::new(),
        })
    };
}

/// This thread's caches, and the value of [`RECHECKS`] when it last dropped the caches that were no longer wanted.
struct Caches {
    rechecks_seen: usize,
    list: Vec<ThreadCache>,
}

impl Caches {
    /// Whether a pool asked for a recheck since this thread last looked: then a cache here may be unwanted.
    #[inline]
    fn must_recheck(&self) -> bool {
        self.rechecks_seen != RECHECKS.load(Ordering::Relaxed)
    }

    /// Drops the caches of closed pools and of pools over their retained cap, handing their quotas and idle
    /// storage back (to be freed, unless the pool can still keep it).
    #[cold]
    #[inline(never)]
    fn drop_unwanted(&mut self) {
        // Acquire pairs with the release in `recheck_all`: the pool state read below is at least as new.
        self.rechecks_seen = RECHECKS.load(Ordering::Acquire);
        self.list.retain(|cache| cache.pool.get().wants_caches());
    }
}

/// Called after a pool closed or lowered its retained cap: every thread drops its caches that the pool no longer
/// wants on its next operation, and this thread at once.
pub(super) fn recheck_all() {
    RECHECKS.fetch_add(1, Ordering::Release);
    let _not_now = CACHES.try_with(|caches| {
        // Busy only if a cache's own drop ends up here, which it does not; the next operation catches up then.
        if let Ok(mut caches) = caches.try_borrow_mut() {
            caches.drop_unwanted();
        }
    });
}

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
    /// The counters of the pool's cache slot `slot`, held while this cache lives.
    stats: CacheStats,
    slot: usize,
}

/// A lent block of `class` from this thread's cache for `pool`, creating the cache if there is none yet.
///
/// `None` when there is no cache to use: the thread is shutting down, the quota or a cache slot cannot be claimed,
/// the thread caches too many pools, or this is a re-entrant call.
#[inline]
pub(super) fn take(pool: &PoolRef<PoolInner>, class: usize) -> Option<Box<Block>> {
    // The common case in a closure small enough to inline: no recheck asked for since this thread last looked, a cache
    // exists and its list for `class` is not empty.
    let idle = CACHES.try_with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        if caches.must_recheck() {
            return None;
        }
        let cache = caches
            .list
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
            if caches.must_recheck() {
                caches.drop_unwanted();
            }
            let caches = &mut caches.list;
            let index = match caches.iter().position(|c| c.pool.points_to(pool.as_ptr())) {
                Some(index) => index,
                None => create(caches, pool)?,
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
        // Also what keeps a closed pool's cache from taking blocks: it is dropped here first.
        if caches.must_recheck() {
            caches.drop_unwanted();
        }
        let cache = caches.list.iter_mut().find(|c| c.pool.points_to(key))?;
        cache.put(returning.take()?);
        Some(())
    });
    returning.map_or(Ok(()), Err)
}

#[cold]
#[inline(never)]
fn create(caches: &mut Vec<ThreadCache>, pool: &PoolRef<PoolInner>) -> Option<usize> {
    // Caches of pools nobody can acquire from any more only hold memory: drop them first.
    caches.retain(|cache| cache.pool.get().wants_caches());
    if caches.len() >= MAX_POOLS_PER_THREAD {
        return None;
    }
    let inner = pool.get();
    let quota = inner.thread_cache_bytes();
    if quota == 0 || !inner.claim_retained(quota) {
        return None;
    }
    let Some((slot, stats)) = inner.claim_cache_slot() else {
        inner.release_retained(quota);
        return None;
    };
    caches.push(ThreadCache {
        pool: pool.clone_one(),
        idle: (0..inner.class_count()).map(|_| Vec::new()).collect(),
        idle_bytes: 0,
        quota,
        stats,
        slot,
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

    /// Takes a returned block, with its unit, onto the local list. The caller has dropped this thread's caches of
    /// closed pools first, so this pool still had handles when last looked at.
    #[inline]
    pub(super) fn put(&mut self, block: Box<Block>) {
        let class = block.class();
        let counters = &self.stats[class];
        bump_owned(&counters.returned);
        if self.idle_bytes + block.capacity() <= self.quota {
            self.idle_bytes += block.capacity();
            self.idle[class].push(block);
        } else {
            unbump_owned(&counters.idle_offset); // returned, but not to the idle list
            put_overflow(block);
        }
    }
}

/// The quota is used up: the shared list takes the block, or it is freed.
#[cold]
#[inline(never)]
fn put_overflow(block: Box<Block>) {
    shelve(block);
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        let inner = self.pool.get();
        // Give up the quota, then offer the idle blocks to the shared lists under the ordinary cap (they are freed
        // if the pool is closed). The slot counts them as idle no more once it is released.
        inner.release_retained(self.quota);
        for blocks in self.idle.iter_mut() {
            for block in blocks.drain(..) {
                shelve(block);
            }
        }
        inner.release_cache_slot(self.slot);
        // `self.pool` drops after this, giving back its units (and freeing the pool if they were the last).
    }
}
