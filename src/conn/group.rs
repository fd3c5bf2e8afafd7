//! A fan-out group: one frame to many connections' write queues.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::RwLock;

use super::group_members::{MemberId, Members};
use super::{BroadcastReport, GroupMetrics};
use crate::watermark::{CloseReason, Offer, Sender};

/// Many connections' write handles, for pushing one frame to all of them: Netty's `ChannelGroup` with its
/// `isWritable()` check built in.
///
/// [`broadcast`](Self::broadcast) hands the same [`Bytes`] to every member whose queue is writable: each member
/// gets a clone (a reference-count increment, no copy), so a frame pushed to 100,000 fans is held in memory once
/// (a `Bytes` made from a `Vec` allocates its shared header at its first clone: once per frame, not per member).
/// A member whose queue is unwritable (over its high mark, not yet drained to its low mark) is **skipped and
/// misses that frame**: this is the push server's policy, where a slow subscriber loses updates instead of growing
/// its queue, and a subscriber that stays slow is disconnected by its writer's
/// [`evict_after`](crate::watermark::WatermarkWriterBuilder::evict_after). A writable member whose queue refuses
/// the frame (hard cap or memory budget) is skipped too, and counted as refused. A member whose queue has closed
/// (evicted, stalled, failed, aborted, closed, writer gone) is removed on the way: the group prunes itself, and
/// counts the pruned members by [`CloseReason`].
///
/// The frame is queued as it is, bytes for the wire: a member's queue is behind any encoder (a
/// [`Connection`](super::Connection)'s [`sender`](super::Connection::sender) too), so broadcast frames encoded
/// once, for example with the codec's `Encoder` into a `BytesMut`, not messages.
///
/// The group holds its own clone of each [`Sender`], which keeps that queue open: end a connection with
/// [`Sender::close`] or [`Sender::abort`] (the next broadcast, or [`prune`](Self::prune), then removes it), or
/// take it out with [`remove`](Self::remove). Members are not capped here: each one is a live connection, already
/// bounded by the server's connection limit; the group's own memory is about 60 bytes a member.
///
/// # Concurrency and cost
///
/// `Group` is a cheap [`Clone`] (an `Arc`) and `Send + Sync`: accept loops add members while producers broadcast.
/// The members live in one dense `Vec` behind a [`parking_lot::RwLock`]. A broadcast holds the read lock, so
/// broadcasts run in parallel with each other; it never waits while holding it (it only calls
/// [`try_send`](Sender::try_send)). Per member it does what a hand-written loop would (`is_writable`, then
/// `try_send` of a clone; for an unwritable member, a check whether it closed) and nothing more: no per-member
/// lock of the group, no per-member counter, no allocation. Its counters are added once per broadcast, and each
/// member's verdict comes back as one byte rather than a `Result` holding the refused frame. Over 1,000 members a
/// broadcast takes about 0.7x the time of that hand-written loop (`benches/conn.rs`, `group_broadcast_1k`). Closed members met on the way are noted in a fixed-size list on the
/// stack and removed afterwards under the write lock, only when there are some. [`add`](Self::add) and
/// [`remove`](Self::remove) take the write lock for O(1) work.
///
/// # Examples
///
/// A push loop:
///
/// ```
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use tidegate::conn::Group;
/// use tidegate::watermark::{Limits, WatermarkWriter};
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group = Group::new();
/// let mut fans = Vec::new();
/// let mut handles = Vec::new();
/// for _ in 0..3 {
///     // In a server: the write half of an accepted `TcpStream`.
///     let (stream, fan) = tokio::io::duplex(4096);
///     let (tx, writer) = WatermarkWriter::builder()
///         .limits(Limits::new(8 << 10, 32 << 10, 64 << 10))
///         .evict_after(Some(Duration::from_secs(5))) // a fan that stays slow is disconnected, then pruned
///         .build(stream);
///     writer.spawn();
///     handles.push(tx.clone()); // the connection's own handle, to end it
///     group.add(tx);
///     fans.push(fan);
/// }
///
/// // One shared frame per update; a slow fan misses updates instead of queueing them.
/// for seq in 0..10u32 {
///     let report = group.broadcast(Bytes::copy_from_slice(&seq.to_be_bytes()));
///     assert_eq!((report.sent, report.skipped), (3, 0));
/// }
/// let mut got = [0u8; 40];
/// fans[0].read_exact(&mut got).await.unwrap();
/// assert_eq!(got[36..], 9u32.to_be_bytes());
///
/// // A connection ends (its reader saw EOF): the next broadcast prunes it.
/// handles[1].abort();
/// let report = group.broadcast(Bytes::from_static(b"next"));
/// assert_eq!((report.sent, report.pruned), (2, 1));
/// assert_eq!(group.metrics().pruned_closed, 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Group {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    book: RwLock<Book>,
    /// Broadcast counters: added to under the read lock, by concurrent broadcasts.
    broadcasts: AtomicU64,
    sent: AtomicU64,
    skipped: AtomicU64,
    refused: AtomicU64,
}

/// The members and the counters that change only with them, under the write lock.
#[derive(Default)]
struct Book {
    members: Members,
    added: u64,
    removed: u64,
    pruned: Pruned,
}

#[derive(Default)]
struct Pruned {
    evicted: u64,
    failed: u64,
    closed: u64,
}

impl Pruned {
    fn count(&mut self, member: &Sender<Bytes>) {
        match member.close_reason() {
            Some(CloseReason::Evicted { .. }) => self.evicted += 1,
            Some(CloseReason::Stalled { .. } | CloseReason::Io(_)) => self.failed += 1,
            _ => self.closed += 1,
        }
    }

    fn total(&self) -> u64 {
        self.evicted + self.failed + self.closed
    }
}

/// Closed members met under the read lock, to remove under the write lock. It has a fixed size, so noting them
/// never allocates; when more close between two broadcasts, the write pass looks at every member instead.
struct Closed {
    ids: [Option<MemberId>; Closed::CAPACITY],
    len: usize,
    overflowed: bool,
}

impl Closed {
    const CAPACITY: usize = 16;

    fn new() -> Self {
        Closed {
            ids: [None; Closed::CAPACITY],
            len: 0,
            overflowed: false,
        }
    }

    fn push(&mut self, id: MemberId) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(id);
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Group {
    /// Creates an empty group.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = tidegate::conn::Group::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member: the write handle of one connection (a clone of it, if the connection keeps its own). A
    /// closed handle is accepted and pruned by the next broadcast.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = tidegate::conn::Group::new();
    /// let (tx, _rx) = tidegate::watermark::channel(Default::default());
    /// group.add(tx.clone());
    /// assert_eq!(group.len(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// If the group already holds `u32::MAX - 1` members (hundreds of GiB of queues).
    pub fn add(&self, member: Sender<Bytes>) -> MemberId {
        let mut book = self.inner.book.write();
        book.added += 1;
        book.members.insert(member)
    }

    /// Takes the member `id` out of the group and hands its handle back (dropping it closes the queue if it was
    /// the last handle); `None` if it is no longer a member (removed, or pruned after its queue closed).
    ///
    /// # Examples
    ///
    /// ```
    /// let group = tidegate::conn::Group::new();
    /// let (tx, _rx) = tidegate::watermark::channel(Default::default());
    /// let id = group.add(tx);
    /// let tx = group.remove(id).unwrap();
    /// tx.close();
    /// assert!(group.is_empty());
    /// ```
    pub fn remove(&self, id: MemberId) -> Option<Sender<Bytes>> {
        let mut book = self.inner.book.write();
        let member = book.members.remove(id)?;
        book.removed += 1;
        Some(member)
    }

    /// Queues a clone of `frame` to every writable member, skips (and counts) the others, and removes members
    /// whose queue has closed. A skipped member misses this frame; nothing is retried later.
    ///
    /// Each member is counted once in the report: `sent` (queued), `skipped` (unwritable, or writable but its queue
    /// refused the frame at its hard cap or memory budget: `refused`), or `pruned` (its queue had closed; it is no
    /// longer a member).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tidegate::conn::Group;
    /// use tidegate::watermark::{self, Config, Limits};
    ///
    /// let config = || Config::builder().limits(Limits::new(4, 8, 64)).build();
    /// let group = Group::new();
    /// let (fast, _fast_rx) = watermark::channel(config());
    /// let (slow, _slow_rx) = watermark::channel(config());
    /// group.add(fast);
    /// group.add(slow.clone());
    /// slow.try_send(Bytes::from_static(b"backlog!!")).unwrap(); // 9 > high: unwritable
    ///
    /// let report = group.broadcast(Bytes::from_static(b"tick"));
    /// assert_eq!((report.sent, report.skipped, report.pruned), (1, 1, 0));
    /// assert_eq!(slow.pending_bytes(), 9); // it missed "tick"
    /// ```
    pub fn broadcast(&self, frame: Bytes) -> BroadcastReport {
        let mut report = BroadcastReport::default();
        let mut closed = Closed::new();
        {
            let book = self.inner.book.read();
            for member in book.members.as_slice() {
                match member.sender.offer(&frame) {
                    Offer::Sent => report.sent += 1,
                    Offer::Unwritable => report.skipped += 1,
                    Offer::Refused => {
                        report.skipped += 1;
                        report.refused += 1;
                    }
                    Offer::Closed => closed.push(member.id),
                }
            }
        }
        report.pruned = self.remove_closed(&closed);
        self.count(&report);
        report
    }

    /// Removes the members whose queue has closed, without broadcasting; returns how many. A broadcast does this
    /// on its own: call it when the group may stay quiet for a while, so departed members go sooner.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = tidegate::conn::Group::new();
    /// let (tx, rx) = tidegate::watermark::channel(Default::default());
    /// group.add(tx);
    /// drop(rx);
    /// assert_eq!(group.prune(), 1);
    /// assert!(group.is_empty());
    /// ```
    pub fn prune(&self) -> usize {
        let mut closed = Closed::new();
        {
            let book = self.inner.book.read();
            for member in book.members.as_slice() {
                if member.sender.is_closed() {
                    closed.push(member.id);
                }
            }
        }
        self.remove_closed(&closed)
    }

    /// Removes the members noted in `closed` (all closed members if it overflowed); returns how many this call
    /// removed. A queue never reopens, so a member noted closed is still closed here.
    fn remove_closed(&self, closed: &Closed) -> usize {
        if closed.is_empty() {
            return 0;
        }
        let mut guard = self.inner.book.write();
        let Book {
            members, pruned, ..
        } = &mut *guard;
        let before = members.len();
        if closed.overflowed {
            members.remove_closed(|member| pruned.count(&member));
        } else {
            for id in closed.ids[..closed.len].iter().flatten() {
                // `None` when a concurrent call removed it first: that call counts it.
                if let Some(member) = members.remove(*id) {
                    debug_assert!(member.is_closed());
                    pruned.count(&member);
                }
            }
        }
        before - members.len()
    }

    fn count(&self, report: &BroadcastReport) {
        let inner = &*self.inner;
        inner.broadcasts.fetch_add(1, Ordering::Relaxed);
        for (counter, n) in [
            (&inner.sent, report.sent),
            (&inner.skipped, report.skipped),
            (&inner.refused, report.refused),
        ] {
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.inner.book.read().members.len()
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the group's counters, with the members' queued bytes read now (O(members)).
    ///
    /// # Examples
    ///
    /// See [`GroupMetrics`].
    pub fn metrics(&self) -> GroupMetrics {
        let inner = &*self.inner;
        let book = inner.book.read();
        let mut metrics = GroupMetrics {
            members: book.members.len(),
            added: book.added,
            removed: book.removed,
            broadcasts: inner.broadcasts.load(Ordering::Relaxed),
            sent: inner.sent.load(Ordering::Relaxed),
            skipped: inner.skipped.load(Ordering::Relaxed),
            refused: inner.refused.load(Ordering::Relaxed),
            pruned: book.pruned.total(),
            pruned_evicted: book.pruned.evicted,
            pruned_failed: book.pruned.failed,
            pruned_closed: book.pruned.closed,
            ..GroupMetrics::default()
        };
        for member in book.members.as_slice() {
            let bytes = member.sender.pending_bytes();
            metrics.queued_bytes += bytes;
            metrics.max_queued_bytes = metrics.max_queued_bytes.max(bytes);
            metrics.unwritable_members += usize::from(!member.sender.is_writable());
        }
        metrics
    }
}

/// A group held weakly, for the registry's observer: it must not keep the members' queues open.
pub(crate) struct WeakGroup(Weak<Inner>);

impl WeakGroup {
    pub(crate) fn upgrade(&self) -> Option<Group> {
        self.0.upgrade().map(|inner| Group { inner })
    }
}

impl Group {
    pub(crate) fn downgrade(&self) -> WeakGroup {
        WeakGroup(Arc::downgrade(&self.inner))
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("members", &self.len())
            .finish_non_exhaustive()
    }
}
