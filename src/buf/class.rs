//! One size class: a bounded shared free list of equally sized blocks, and its counters.

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::loom::FreeList;

use super::block::Block;

/// Counters of one class. The pool keeps one shared set (updated with atomic read-modify-writes on the slow paths)
/// and one in each cache slot (written only by the thread whose cache holds the slot, with plain stores); metrics
/// add them up.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) acquired: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) misses: AtomicU64,
    /// Thread caches only (the shared list knows its own length): the acquires that did not take from the idle
    /// list minus the returns that did not go onto it, so that idle blocks = returned + idle_offset - acquired
    /// (wrapping) while each fast acquire or release bumps just one counter.
    pub(super) idle_offset: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub(super) acquired: u64,
    pub(super) returned: u64,
    pub(super) misses: u64,
    pub(super) idle: u64,
}

impl Counters {
    /// The counts of the shared set (which keeps no idle count).
    pub(super) fn load(&self) -> Counts {
        Counts {
            acquired: self.acquired.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            idle: 0,
        }
    }

    /// The counts of a thread cache's set, with its idle blocks. Read from another thread while the owner updates
    /// them, the three counters may be a few operations apart: the idle count is clamped to be non-negative.
    pub(super) fn load_cached(&self) -> Counts {
        let mut counts = self.load();
        let idle_offset = self.idle_offset.load(Ordering::Relaxed);
        let idle = counts
            .returned
            .wrapping_add(idle_offset)
            .wrapping_sub(counts.acquired) as i64;
        counts.idle = idle.max(0) as u64;
        counts
    }

    /// Makes a thread cache's set count no idle blocks, when its cache hands them back. Only the thread that
    /// writes the set may call this.
    pub(super) fn forget_idle(&self) {
        let acquired = self.acquired.load(Ordering::Relaxed);
        let returned = self.returned.load(Ordering::Relaxed);
        self.idle_offset
            .store(acquired.wrapping_sub(returned), Ordering::Relaxed);
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.acquired += other.acquired;
        self.returned += other.returned;
        self.misses += other.misses;
        self.idle += other.idle;
    }
}

/// Adds one to a counter that only the calling thread writes: a load and a store, no locked instruction.
#[inline]
pub(super) fn bump_owned(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Takes one from a counter that only the calling thread writes (wrapping: offsets may go below zero).
#[inline]
pub(super) fn unbump_owned(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_sub(1),
        Ordering::Relaxed,
    );
}

/// Adds one to a counter that any thread may write.
pub(super) fn bump_shared(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) struct SizeClass {
    size: usize,
    free: FreeList<Box<Block>>,
    pub(super) shared: Counters,
    pub(super) peak_outstanding: AtomicU64,
}

impl SizeClass {
    /// A class of `size`-byte blocks whose shared list keeps at most `max_idle` of them.
    pub(super) fn new(size: usize, max_idle: usize) -> Self {
        SizeClass {
            size,
            free: FreeList::new(max_idle.max(1)),
            shared: Counters::default(),
            peak_outstanding: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// An idle block from the shared list. The caller owns the retained-bytes accounting.
    pub(super) fn pop_idle(&self) -> Option<Box<Block>> {
        self.free.pop()
    }

    /// Keeps `block` on the shared list, or hands it back when the list is full.
    pub(super) fn push_idle(&self, block: Box<Block>) -> Result<(), Box<Block>> {
        self.free.push(block)
    }

    pub(super) fn shared_idle(&self) -> usize {
        self.free.len()
    }
}
