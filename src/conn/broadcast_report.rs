//! What one broadcast did.

/// What one [`broadcast`](super::Group::broadcast) did with its frame.
///
/// Every member the broadcast met is counted once: in `sent`, in `skipped`, or in `pruned`. A member found closed
/// that a concurrent call removed first is counted by that call only.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::conn::Group;
/// use tidegate::watermark;
///
/// let group = Group::new();
/// let (open, _rx) = watermark::channel(Default::default());
/// let (gone, rx) = watermark::channel(Default::default());
/// group.add(open);
/// group.add(gone);
/// drop(rx); // that member's writer is gone
/// let report = group.broadcast(Bytes::from_static(b"tick"));
/// assert_eq!((report.sent, report.skipped, report.pruned), (1, 0, 1));
/// assert_eq!(group.len(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Members the frame was queued to.
    pub sent: usize,
    /// Open members that missed the frame: unwritable, or refused by their queue (see `refused`).
    pub skipped: usize,
    /// The part of `skipped` where the member was writable but its queue refused the frame (hard cap or memory
    /// budget).
    pub refused: usize,
    /// Members removed because their queue had closed.
    pub pruned: usize,
}
