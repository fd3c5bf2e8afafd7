//! A snapshot of a watermark queue's counters.

use std::time::Duration;

/// A point-in-time view of a watermark queue and, when it belongs to a
/// [`WatermarkWriter`](super::WatermarkWriter), of the writer. Taken with [`Sender::metrics`](super::Sender::metrics).
///
/// Counts are since the channel was created. `queued_*` include items the receiver has taken but not yet handed
/// out or written; `undelivered_*` count accepted items that were dropped (abort, I/O error, eviction, receiver
/// dropped), so `accepted = delivered + undelivered + queued` at every quiescent point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WatermarkMetrics {
    /// Bytes queued now.
    pub queued_bytes: usize,
    /// Items queued now.
    pub queued_items: u64,
    /// The highest `queued_bytes` seen.
    pub peak_bytes: usize,
    /// Items accepted by a send.
    pub accepted_items: u64,
    /// Items handed to the receiver's caller or fully written by the writer.
    pub delivered_items: u64,
    /// Sends refused because of the hard cap or the budget.
    pub refused: u64,
    /// Changes of writability, in both directions.
    pub writability_flips: u64,
    /// Whether the queue is writable now.
    pub writable: bool,
    /// Total time spent unwritable, including the current stretch.
    pub time_unwritable: Duration,
    /// Bytes the writer wrote to its stream.
    pub sent_bytes: u64,
    /// Write calls that made progress (with vectored writes, one per syscall).
    pub writes: u64,
    /// Whether the writer evicted its peer.
    pub evicted: bool,
    /// Accepted items that were dropped without being delivered.
    pub undelivered_items: u64,
    /// The bytes of those items.
    pub undelivered_bytes: u64,
}
