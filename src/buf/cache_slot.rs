//! The counters of the thread caches, in slots the pool owns, so that reading them takes no lock.
//!
//! A pool has a fixed number of slots, one per thread cache it can have at once. A thread claims a free slot when
//! it creates its cache and writes the slot's counters with plain stores while it holds it; on retirement the slot
//! keeps its counts (they are history: buffers acquired and returned) with its idle count set to zero, and the
//! next cache to claim it carries on from there. So a snapshot, or the peak sampled on an allocation, is a sum of
//! atomic loads over every slot: no lock, no allocation, and no cache counted twice or missed while it retires.

use std::sync::Arc;

use crate::loom::atomic::{AtomicBool, Ordering};

use super::class::{Counters, Counts};

/// Slots a pool makes at most: the threads that can cache for it at once. Each costs a few hundred bytes, made
/// when the pool is built. Documented on `BufPoolBuilder::thread_cache_bytes`: change both together.
pub(super) const MAX_CACHED_THREADS: usize = 64;

/// The counters of one size class for each class, shared by the slot and the cache that holds it.
pub(super) type CacheStats = Arc<[Counters]>;

pub(super) struct CacheSlot {
    taken: AtomicBool,
    stats: CacheStats,
}

impl CacheSlot {
    pub(super) fn new(class_count: usize) -> Self {
        CacheSlot {
            taken: AtomicBool::new(false),
            stats: (0..class_count).map(|_| Counters::default()).collect(),
        }
    }

    /// The slot's counters if it was free, now held by the caller until [`release`](Self::release).
    pub(super) fn claim(&self) -> Option<CacheStats> {
        // A plain load first: threads beyond the slots scan them on every acquire, and should not write to them.
        if self.taken.load(Ordering::Relaxed) {
            return None;
        }
        // Acquire: the previous holder's last counter stores happen before this holder's first loads.
        self.taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(self.stats.clone())
    }

    /// Gives the slot up. The caller has handed back its idle blocks, so the slot's idle count becomes zero.
    pub(super) fn release(&self) {
        for counters in self.stats.iter() {
            counters.forget_idle();
        }
        self.taken.store(false, Ordering::Release);
    }

    /// The counts of `class`, with the idle blocks of the cache holding the slot, if any.
    pub(super) fn load(&self, class: usize) -> Counts {
        self.stats[class].load_cached()
    }
}

/// Loom explores two threads claiming, writing and releasing one slot: one holder at a time, and each holder sees
/// the previous one's counts, so plain-store counters lose nothing.
#[cfg(all(test, tidegate_loom))]
mod loom_tests {
    use super::*;
    use crate::buf::class::bump_owned;
    use crate::loom::Arc;

    #[test]
    fn loom_one_holder_at_a_time_and_counts_carry_over() {
        loom::model(|| {
            let slot = Arc::new(CacheSlot::new(1));
            let use_once = |slot: &CacheSlot| match slot.claim() {
                Some(stats) => {
                    bump_owned(&stats[0].acquired);
                    bump_owned(&stats[0].idle_offset);
                    slot.release();
                    1
                }
                None => 0,
            };
            let other = {
                let slot = slot.clone();
                loom::thread::spawn(move || use_once(&slot))
            };
            let claims = use_once(&slot) + other.join().unwrap();
            let counts = slot.load(0);
            assert!(claims >= 1);
            assert_eq!((counts.acquired, counts.idle), (claims, 0));
        });
    }
}
