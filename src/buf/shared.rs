//! The shared free lists and the retained-bytes cap they and the thread caches share.
//!
//! Every idle byte a pool keeps is claimed from `max_retained_bytes` first: a block on a shared list claims its
//! capacity, a thread cache claims its whole quota up front. A block that cannot be claimed for is freed, so the
//! cap holds whichever thread returns storage and whatever the interleaving.

use crate::loom::atomic::Ordering;

use super::block::Block;
use super::inner::PoolInner;
use super::thread_cache;
use super::unpooled::UNPOOLED;

impl PoolInner {
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

    /// Sets the retained cap and frees idle storage on the shared lists until the pool is under it; if the thread
    /// caches' quotas still keep it over, asks every thread to recheck its caches.
    pub(super) fn set_max_retained_bytes(&self, bytes: usize) {
        self.max_retained_bytes.store(bytes, Ordering::Relaxed);
        // Trim the largest classes first: they free the most memory per block.
        for class in (0..self.classes.len()).rev() {
            while self.retained_claims.load(Ordering::Relaxed) > bytes {
                match self.pop_shared(class) {
                    Some(block) => drop(block),
                    None => break,
                }
            }
        }
        if self.retained_claims.load(Ordering::Relaxed) > bytes {
            thread_cache::recheck_all();
        }
    }

    /// Empties the shared lists, for a pool whose last handle is gone.
    pub(super) fn free_shared(&self) {
        for class in 0..self.classes.len() {
            while let Some(block) = self.pop_shared(class) {
                drop(block);
            }
        }
    }
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

/// Loom explores the shared return path (thread caches off, as loom threads are not OS threads): concurrent
/// returns never retain more than the cap, and the counters add up whatever the interleaving.
#[cfg(all(test, tidegate_loom))]
mod loom_tests {
    #[test]
    fn loom_concurrent_returns_respect_the_retained_cap() {
        loom::model(|| {
            let pool = crate::buf::BufPool::builder()
                .size_classes([64])
                .max_retained_bytes(64)
                .thread_cache_bytes(0)
                .build()
                .unwrap();
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
