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
    /// Items accepted by a send. A [`FramedSender`](super::FramedSender) dropped with a batch the queue refuses
    /// counts that batch here and in `undelivered_items`: it had accepted those frames.
    pub accepted_items: u64,
    /// Items handed to the receiver's caller or fully written by the writer.
    pub delivered_items: u64,
    /// Sends that ended refused because of the hard cap or the budget (`Full`, `TooLarge`, `OverBudget`), each
    /// counted once, whichever way it was made (`send`, `try_send`, a sink). A `send` that waited for room and then
    /// queued its item is not a refusal; neither is a closed queue.
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
    /// Accepted items that were dropped without being delivered (abort, I/O error, eviction, stall, the receiver
    /// or writer dropped, a dropped `FramedSender`'s refused batch).
    pub undelivered_items: u64,
    /// The bytes of those items.
    pub undelivered_bytes: u64,
}
