//! One size class: a bounded shared free list of equally sized blocks, and its counters.

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::loom::FreeList;

/// Counters of one class. The pool keeps one shared set (updated with atomic read-modify-writes on the slow paths)
/// and every thread cache keeps its own (written only by its thread, with plain stores); metrics add them up.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) acquired: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) misses: AtomicU64,
    /// Idle blocks held; only thread caches keep this (the shared list knows its own length).
    pub(super) idle: AtomicU64,
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
    pub(super) fn load(&self) -> Counts {
        Counts {
            acquired: self.acquired.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            idle: self.idle.load(Ordering::Relaxed),
        }
    }

    /// Folds a retiring thread cache's counts into the shared set (idle blocks are handed back separately).
    pub(super) fn fold(&self, counts: Counts) {
        self.acquired.fetch_add(counts.acquired, Ordering::Relaxed);
        self.returned.fetch_add(counts.returned, Ordering::Relaxed);
        self.misses.fetch_add(counts.misses, Ordering::Relaxed);
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
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Adds one to a counter that any thread may write.
pub(super) fn bump_shared(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) struct SizeClass {
    size: usize,
    free: FreeList<Box<[u8]>>,
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
    pub(super) fn pop_idle(&self) -> Option<Box<[u8]>> {
        self.free.pop()
    }

    /// Keeps `block` on the shared list, or hands it back when the list is full.
    pub(super) fn push_idle(&self, block: Box<[u8]>) -> Result<(), Box<[u8]>> {
        self.free.push(block)
    }

    pub(super) fn shared_idle(&self) -> usize {
        self.free.len()
    }

    /// Zeroed storage: initialised once per allocation so that filling a buffer never needs `unsafe`.
    pub(super) fn allocate(&self) -> Box<[u8]> {
        vec![0; self.size].into_boxed_slice()
    }
}
