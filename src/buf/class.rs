//! One size class: a bounded free list of equally sized storage blocks, and its counters.

use crate::loom::atomic::{AtomicU64, Ordering};
use crate::loom::FreeList;

use super::metrics::ClassMetrics;

pub(super) struct SizeClass {
    size: usize,
    free: FreeList<Box<[u8]>>,
    acquired: AtomicU64,
    returned: AtomicU64,
    misses: AtomicU64,
    peak_outstanding: AtomicU64,
}

impl SizeClass {
    /// A class of `size`-byte blocks that can keep at most `max_idle` of them.
    pub(super) fn new(size: usize, max_idle: usize) -> Self {
        SizeClass {
            size,
            free: FreeList::new(max_idle.max(1)),
            acquired: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            peak_outstanding: AtomicU64::new(0),
        }
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// An idle block, if there is one. The caller owns the retained-bytes accounting.
    pub(super) fn pop_idle(&self) -> Option<Box<[u8]>> {
        self.free.pop()
    }

    /// Keeps `block` idle, or hands it back when the free list is full.
    pub(super) fn push_idle(&self, block: Box<[u8]>) -> Result<(), Box<[u8]>> {
        self.free.push(block)
    }

    /// Zeroed storage: initialised once per allocation so that filling a buffer never needs `unsafe`.
    pub(super) fn allocate(&self) -> Box<[u8]> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        vec![0; self.size].into_boxed_slice()
    }

    /// Counts a buffer handed out. Returns how many of this class are outstanding now.
    pub(super) fn count_acquired(&self) -> u64 {
        let acquired = self.acquired.fetch_add(1, Ordering::Relaxed) + 1;
        let outstanding = acquired.saturating_sub(self.returned.load(Ordering::Relaxed));
        // A plain load first: the read-modify-write only happens when a new peak is set.
        if outstanding > self.peak_outstanding.load(Ordering::Relaxed) {
            self.peak_outstanding
                .fetch_max(outstanding, Ordering::Relaxed);
        }
        outstanding
    }

    pub(super) fn count_returned(&self) {
        self.returned.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn outstanding(&self) -> u64 {
        let returned = self.returned.load(Ordering::Relaxed);
        self.acquired
            .load(Ordering::Relaxed)
            .saturating_sub(returned)
    }

    pub(super) fn metrics(&self) -> ClassMetrics {
        let returned = self.returned.load(Ordering::Relaxed);
        let acquired = self.acquired.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let outstanding = acquired.saturating_sub(returned);
        let retained = self.free.len();
        ClassMetrics {
            capacity: self.size,
            acquired,
            returned,
            outstanding_buffers: outstanding,
            outstanding_bytes: outstanding as usize * self.size,
            retained_buffers: retained,
            retained_bytes: retained * self.size,
            hits: acquired.saturating_sub(misses),
            misses,
            peak_outstanding_buffers: self.peak_outstanding.load(Ordering::Relaxed),
        }
    }
}
