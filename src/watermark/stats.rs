//! The counters behind `WatermarkMetrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::level::Level;
use super::WatermarkMetrics;

/// Counters; those written only by the receiving side use load + store instead of read-modify-write.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) peak: AtomicUsize,
    pub(crate) refused: AtomicU64,
    pub(crate) flips: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) evicted: AtomicBool,
    pub(crate) undelivered_items: AtomicU64,
    pub(crate) undelivered_bytes: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
    }
}

impl Stats {
    pub(crate) fn snapshot(
        &self,
        level: &Level,
        accepted: u64,
        time_unwritable: Duration,
    ) -> WatermarkMetrics {
        let delivered = self.delivered.load(Ordering::Relaxed);
        let undelivered_items = self.undelivered_items.load(Ordering::Relaxed);
        WatermarkMetrics {
            queued_bytes: level.bytes(),
            queued_items: accepted.saturating_sub(delivered + undelivered_items),
            peak_bytes: self.peak.load(Ordering::Relaxed),
            accepted_items: accepted,
            delivered_items: delivered,
            refused: self.refused.load(Ordering::Relaxed),
            writability_flips: self.flips.load(Ordering::Relaxed),
            writable: level.is_writable(),
            time_unwritable,
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            undelivered_items,
            undelivered_bytes: self.undelivered_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The counters a [`QueueSet`](super::QueueSet) adds up over its members, read without the queue's lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) peak: usize,
    pub(crate) refused: u64,
    pub(crate) flips: u64,
    pub(crate) delivered: u64,
    pub(crate) sent_bytes: u64,
    pub(crate) writes: u64,
    pub(crate) evicted: u64,
    pub(crate) undelivered_items: u64,
    pub(crate) undelivered_bytes: u64,
}

impl Stats {
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            peak: self.peak.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            flips: self.flips.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            evicted: u64::from(self.evicted.load(Ordering::Relaxed)),
            undelivered_items: self.undelivered_items.load(Ordering::Relaxed),
            undelivered_bytes: self.undelivered_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    /// Adds `other`'s counters; the peak is the larger one (peaks of different queues do not add up).
    pub(crate) fn add(&mut self, other: &Counts) {
        self.combine(other, |a, b| a + b);
    }

    /// Keeps the larger value of every field.
    pub(crate) fn max(&mut self, other: &Counts) {
        self.combine(other, u64::max);
    }

    fn combine(&mut self, other: &Counts, op: fn(u64, u64) -> u64) {
        self.peak = self.peak.max(other.peak);
        for (mine, theirs) in [
            (&mut self.refused, other.refused),
            (&mut self.flips, other.flips),
            (&mut self.delivered, other.delivered),
            (&mut self.sent_bytes, other.sent_bytes),
            (&mut self.writes, other.writes),
            (&mut self.evicted, other.evicted),
            (&mut self.undelivered_items, other.undelivered_items),
            (&mut self.undelivered_bytes, other.undelivered_bytes),
        ] {
            *mine = op(*mine, theirs);
        }
    }
}
