//! A snapshot of a queue set: its members added up.

/// A point-in-time view of a [`QueueSet`](super::QueueSet): its live members' queues added up, and counters that
/// include the members that are gone. Taken with [`QueueSet::metrics`](super::QueueSet::metrics).
///
/// The counters (`*_total` in the exposition) are the sums over every queue that ever joined, each counted from
/// its creation: a member's final counts are folded into the set when its queue is dropped, so an evicted
/// connection's eviction is still counted after it is gone. A member dropped while a snapshot is taken is counted
/// by the next one; a counter never goes back.
///
/// # Examples
///
/// ```
/// use tidegate::watermark::{self, Config, Limits, QueueSet};
///
/// let set = QueueSet::new(Limits::new(4, 8, 64));
/// let (tx, _rx) = watermark::channel(Config::default());
/// set.add(&tx);
/// tx.try_send(vec![0u8; 10]).unwrap(); // 10 > high: unwritable
/// let m = set.metrics();
/// assert_eq!((m.members, m.queued_bytes, m.unwritable), (1, 10, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueSetMetrics {
    /// Live member queues.
    pub members: usize,
    /// Bytes queued now, summed over the members.
    pub queued_bytes: usize,
    /// Members whose queue is unwritable now.
    pub unwritable: usize,
    /// The bytes queued now in the fullest member.
    pub largest_queued_bytes: usize,
    /// The most bytes any member (live or gone) ever held at once.
    pub peak_bytes: usize,
    /// Items delivered (handed out or fully written).
    pub delivered_items: u64,
    /// Sends refused by a member's hard cap or budget.
    pub refused: u64,
    /// Members whose writer evicted its peer.
    pub evicted: u64,
    /// Writability flips, in both directions.
    pub writability_flips: u64,
    /// Bytes the members' writers wrote.
    pub sent_bytes: u64,
    /// Write calls of the members' writers that made progress.
    pub writes: u64,
    /// Accepted items dropped without being delivered.
    pub undelivered_items: u64,
    /// The bytes of those items.
    pub undelivered_bytes: u64,
}
