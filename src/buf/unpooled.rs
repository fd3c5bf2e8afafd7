//! Storage larger than the largest size class: allocated per request, freed on return, counted all the same.

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::block::Block;
use super::class::bump_shared;

/// The class index that marks storage allocated outside every class.
pub(super) const UNPOOLED: usize = usize::MAX;

/// The counters of the unpooled path. Every unpooled acquire and return updates them with shared atomics: such
/// requests allocate anyway, so the counters cost little next to them.
#[derive(Default)]
pub(super) struct Unpooled {
    pub(super) acquired: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) outstanding_bytes: AtomicUsize,
}

impl Unpooled {
    /// A fresh block of exactly `size` bytes, counted as outstanding.
    pub(super) fn take(&self, size: usize) -> Box<Block> {
        bump_shared(&self.acquired);
        self.outstanding_bytes.fetch_add(size, Ordering::Relaxed);
        Block::allocate(UNPOOLED, size)
    }

    /// Counts a block of `capacity` bytes back; the caller frees it.
    pub(super) fn put_back(&self, capacity: usize) {
        self.outstanding_bytes
            .fetch_sub(capacity, Ordering::Relaxed);
        bump_shared(&self.returned);
    }
}
