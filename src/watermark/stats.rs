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
