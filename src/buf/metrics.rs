//! A pool's counters: the snapshot types and how a snapshot adds up the shared counters and every thread cache's.

use crate::loom::atomic::{AtomicU64, Ordering};

use super::class::{Counts, SizeClass};
use super::inner::PoolInner;

/// Counters of one size class, from [`BufPool::metrics`](super::BufPool::metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClassMetrics {
    /// The capacity of every buffer in this class.
    pub capacity: usize,
    /// Buffers handed out.
    pub acquired: u64,
    /// Buffers whose storage came back (dropped, or the last `Bytes` of a frozen one dropped).
    pub returned: u64,
    /// Buffers handed out and not yet back.
    pub outstanding_buffers: u64,
    /// `outstanding_buffers * capacity`.
    pub outstanding_bytes: usize,
    /// Idle buffers kept for reuse.
    pub retained_buffers: usize,
    /// `retained_buffers * capacity`.
    pub retained_bytes: usize,
    /// Acquisitions served from idle storage.
    pub hits: u64,
    /// Acquisitions that had to allocate.
    pub misses: u64,
    /// The most buffers of this class seen outstanding at once. Sampled, not tracked per acquire (that would put
    /// a shared counter on the fast path): updated at every allocation and every snapshot, so growth served from
    /// idle storage between two samples is not seen. Use a budget's `peak` for an exact high-water mark in bytes.
    pub peak_outstanding_buffers: u64,
}

/// Pool-wide counters, from [`BufPool::metrics`](super::BufPool::metrics). Unpooled buffers (larger than the
/// largest class) are included in the acquired, returned and outstanding figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolTotals {
    /// Buffers handed out.
    pub acquired: u64,
    /// Buffers whose storage came back.
    pub returned: u64,
    /// Buffers handed out and not yet back.
    pub outstanding_buffers: u64,
    /// Capacity of the outstanding buffers, in bytes.
    pub outstanding_bytes: usize,
    /// The most bytes seen outstanding at once, sampled at every allocation and every snapshot. Growth served from
    /// idle storage between two samples is not seen; a budget's `peak` is exact.
    pub peak_outstanding_bytes: usize,
    /// Idle bytes kept for reuse.
    pub retained_bytes: usize,
    /// The current cap on `retained_bytes`.
    pub max_retained_bytes: usize,
    /// Acquisitions served from idle storage.
    pub hits: u64,
    /// Pooled acquisitions that had to allocate.
    pub misses: u64,
    /// Acquisitions larger than the largest class, allocated and freed outside the pool.
    pub unpooled: u64,
    /// Acquisitions refused by the memory budget.
    pub refused: u64,
}

/// A snapshot of a pool's counters: one entry per size class, smallest first, and the totals.
///
/// # Examples
///
/// ```
/// let pool = tidegate::BufPool::new();
/// drop(pool.try_acquire(100).unwrap());
/// let m = pool.metrics();
/// assert_eq!(m.classes[0].capacity, 512);
/// assert_eq!((m.classes[0].acquired, m.classes[0].returned), (1, 1));
/// assert_eq!(m.total.outstanding_buffers, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// Per size class, smallest first.
    pub classes: Vec<ClassMetrics>,
    /// The whole pool.
    pub total: PoolTotals,
}

impl PoolInner {
    /// Raises the recorded peaks of outstanding bytes and buffers per class if they were just exceeded. Called on
    /// the slow paths (every allocation) and by `metrics`, because summing every thread's counters on each acquire
    /// would cost more than the acquire itself. Atomic loads only (and a store for a new peak): an allocation takes
    /// no lock and makes no snapshot for this.
    pub(super) fn note_peak(&self) {
        let mut outstanding = self.unpooled.outstanding_bytes.load(Ordering::Relaxed);
        for (index, class) in self.classes.iter().enumerate() {
            let counts = self.class_counts(index);
            let buffers = counts.acquired.saturating_sub(counts.returned);
            raise(&class.peak_outstanding, buffers);
            outstanding += buffers as usize * class.size();
        }
        if outstanding > self.peak_outstanding_bytes.load(Ordering::Relaxed) {
            self.peak_outstanding_bytes
                .fetch_max(outstanding, Ordering::Relaxed);
        }
    }

    /// The counts of `class`: the shared set plus every cache slot's.
    fn class_counts(&self, class: usize) -> Counts {
        let mut counts: Counts = self.classes[class].shared.load();
        for slot in self.cache_slots.iter() {
            counts += slot.load(class);
        }
        counts
    }

    pub(super) fn metrics(&self) -> PoolMetrics {
        let classes: Vec<ClassMetrics> = self
            .classes
            .iter()
            .enumerate()
            .map(|(i, class)| class_metrics(class, self.class_counts(i)))
            .collect();
        let unpooled_acquired = self.unpooled.acquired.load(Ordering::Relaxed);
        let unpooled_returned = self.unpooled.returned.load(Ordering::Relaxed);
        let mut total = PoolTotals {
            acquired: unpooled_acquired,
            returned: unpooled_returned,
            outstanding_buffers: unpooled_acquired.saturating_sub(unpooled_returned),
            outstanding_bytes: self.unpooled.outstanding_bytes.load(Ordering::Relaxed),
            max_retained_bytes: self.max_retained_bytes.load(Ordering::Relaxed),
            unpooled: unpooled_acquired,
            refused: self.refused.load(Ordering::Relaxed),
            ..PoolTotals::default()
        };
        for class in &classes {
            total.acquired += class.acquired;
            total.returned += class.returned;
            total.outstanding_buffers += class.outstanding_buffers;
            total.outstanding_bytes += class.outstanding_bytes;
            total.retained_bytes += class.retained_bytes;
            total.hits += class.hits;
            total.misses += class.misses;
        }
        let peak = self
            .peak_outstanding_bytes
            .fetch_max(total.outstanding_bytes, Ordering::Relaxed);
        total.peak_outstanding_bytes = peak.max(total.outstanding_bytes);
        PoolMetrics { classes, total }
    }
}

/// Raises a recorded peak to `now`, with no read-modify-write unless it is a new peak.
fn raise(peak: &AtomicU64, now: u64) {
    if now > peak.load(Ordering::Relaxed) {
        peak.fetch_max(now, Ordering::Relaxed);
    }
}

fn class_metrics(class: &SizeClass, counts: Counts) -> ClassMetrics {
    let outstanding = counts.acquired.saturating_sub(counts.returned);
    let peak = class
        .peak_outstanding
        .fetch_max(outstanding, Ordering::Relaxed)
        .max(outstanding);
    let retained = class.shared_idle() + counts.idle as usize;
    ClassMetrics {
        capacity: class.size(),
        acquired: counts.acquired,
        returned: counts.returned,
        outstanding_buffers: outstanding,
        outstanding_bytes: outstanding as usize * class.size(),
        retained_buffers: retained,
        retained_bytes: retained * class.size(),
        hits: counts.acquired.saturating_sub(counts.misses),
        misses: counts.misses,
        peak_outstanding_buffers: peak,
    }
}
