//! A snapshot of a group's counters.

/// A point-in-time view of a [`Group`](super::Group), from [`metrics`](super::Group::metrics).
///
/// Counts are since the group was created. Every member that joined has either left or is still here:
/// `members = added - removed - pruned`. Every member a broadcast met is counted once: in `sent`, in `skipped`, or
/// (its queue had closed) in `pruned`, which also counts the members [`prune`](super::Group::prune) removed.
/// The fields are read one after another while broadcasts may run, so under load the broadcast counters can lag
/// each other by one broadcast; after a workload they settle.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::conn::Group;
/// use tidegate::watermark;
///
/// let group = Group::new();
/// let (tx, _rx) = watermark::channel(Default::default());
/// group.add(tx);
/// group.broadcast(Bytes::from_static(b"tick"));
/// let m = group.metrics();
/// assert_eq!((m.members, m.broadcasts, m.sent, m.queued_bytes), (1, 1, 1, 4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GroupMetrics {
    /// Members now.
    pub members: usize,
    /// Members added.
    pub added: u64,
    /// Members taken out with [`remove`](super::Group::remove).
    pub removed: u64,
    /// Calls to [`broadcast`](super::Group::broadcast).
    pub broadcasts: u64,
    /// Frames queued to a member: one per member per broadcast that reached it.
    pub sent: u64,
    /// Times a broadcast passed over an open member, which missed that frame: it was unwritable, or (counted in
    /// `refused` too) writable but its queue refused the frame (hard cap or memory budget).
    pub skipped: u64,
    /// The part of `skipped` where the member was writable and its queue refused the frame.
    pub refused: u64,
    /// Members removed because their queue had closed (by [`broadcast`](super::Group::broadcast) or
    /// [`prune`](super::Group::prune)): `pruned_evicted + pruned_failed + pruned_closed`.
    pub pruned: u64,
    /// Pruned members whose writer evicted its peer for staying unwritable
    /// ([`CloseReason::Evicted`](crate::watermark::CloseReason::Evicted)).
    pub pruned_evicted: u64,
    /// Pruned members whose writer failed: a write error or a stalled write
    /// ([`CloseReason::Io`](crate::watermark::CloseReason::Io), [`Stalled`](crate::watermark::CloseReason::Stalled)).
    pub pruned_failed: u64,
    /// Pruned members whose queue was closed or aborted by a sender, or whose receiver (writer) was dropped.
    pub pruned_closed: u64,
    /// Bytes queued now, summed over the members.
    pub queued_bytes: usize,
    /// The largest member queue now, in bytes.
    pub max_queued_bytes: usize,
    /// Members whose queue is unwritable now.
    pub unwritable_members: usize,
}
