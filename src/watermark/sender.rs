//! The sending half of a watermark channel.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::sync::watch;

use std::sync::Arc;

use super::bundle::Items;
use super::gate::Registration;
use super::set_core::SetCore;
use super::shared::Shared;
use super::{CloseReason, Limits, SendError, WatermarkMetrics, Weight};

/// The sending half of a [`channel`](super::channel); clone it for more producers.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::watermark::{self, Config, Limits};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, mut rx) = watermark::channel(Config::builder().limits(Limits::new(4, 8, 16)).build());
/// tx.send(Bytes::from_static(b"0123456789")).await.unwrap(); // 10 > high: now unwritable
/// assert!(!tx.is_writable());
/// assert!(tx.try_send(Bytes::from_static(b"0123456")).is_err()); // 17 > hard: refused, item returned
/// rx.recv().await.unwrap();
/// assert!(tx.is_writable()); // drained to <= low
/// # }
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    /// The `Sink` impl's (or a polled send's) registration with the writability gate, removed on drop.
    sink_key: Option<usize>,
    /// A polled send's registration with the room gate (see [`poll_send_from`](Self::poll_send_from)).
    space_key: Option<usize>,
}

impl<T: Weight> Sender<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        Sender {
            shared,
            sink_key: None,
            space_key: None,
        }
    }

    /// Queues `item` now, whatever the writability, if it fits under the hard cap and the budget.
    ///
    /// # Errors
    ///
    /// The item comes back in every error: [`SendError::Full`] (over the hard cap now), [`SendError::TooLarge`]
    /// (heavier than the hard cap), [`SendError::OverBudget`] or [`SendError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = tidegate::watermark::channel(Default::default());
    /// tx.try_send(vec![0u8; 100]).unwrap();
    /// assert_eq!(tx.pending_bytes(), 100);
    /// ```
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        self.push_uncounted(item)
            .inspect_err(|err| self.shared.count_refusal(err))
    }

    /// [`try_send`](Self::try_send) of an item or a bundle without counting a refusal, for callers that retry or
    /// account otherwise (a `FramedSender` being dropped counts a refused batch as lost, see [`lose`](Self::lose)).
    pub(crate) fn push_uncounted<I: Items<T>>(&self, item: I) -> Result<(), SendError<I>> {
        let weight = item.weigh(T::weight);
        let reservation = match &self.shared.budget {
            None => None,
            Some(budget) => match budget.try_reserve(weight) {
                Ok(reservation) => Some(reservation),
                Err(error) => return Err(SendError::OverBudget { item, error }),
            },
        };
        self.shared.try_push(item, weight, reservation)
    }

    /// Queues `item`, first waiting while the queue is unwritable (and, for an item heavier than `hard - high`,
    /// until it fits under the hard cap), and while the budget cannot grant its weight.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the queue closes first, [`SendError::TooLarge`] at once if the item can never fit,
    /// [`SendError::OverBudget`] if the budget's limit is below its weight. The item comes back in every error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the item is queued in one step at the end, so a dropped future has queued nothing (and the
    /// item is dropped with it). Its budget grant and wait registrations are released on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = tidegate::watermark::channel(Default::default());
    /// tx.send(bytes::Bytes::from_static(b"hello")).await.unwrap();
    /// assert_eq!(&rx.recv().await.unwrap()[..], b"hello");
    /// # }
    /// ```
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.send_from(&mut Some(item)).await
    }

    /// [`send`](Self::send) of the item (or bundle) in `slot`, which stays there until the moment it is queued: a
    /// caller that owns the slot keeps it if this future is dropped, or if it ends with an error (they are in the error
    /// then). An empty slot sends nothing.
    ///
    /// Only a final outcome counts as a refusal: losing the room to a racing sender between the wait and the push
    /// is not one; the items wait again.
    pub(crate) async fn send_from<I: Items<T>>(
        &self,
        slot: &mut Option<I>,
    ) -> Result<(), SendError<I>> {
        let result = self.send_from_uncounted(slot).await;
        if let Err(err) = &result {
            self.shared.count_refusal(err);
        }
        result
    }

    async fn send_from_uncounted<I: Items<T>>(
        &self,
        slot: &mut Option<I>,
    ) -> Result<(), SendError<I>> {
        let Some(weight) = slot.as_ref().map(|item| item.weigh(T::weight)) else {
            return Ok(());
        };
        loop {
            let hard = self.shared.limits().hard();
            if weight > hard {
                let item = take(slot);
                return Err(SendError::TooLarge { item, weight, hard });
            }
            // Any wait happens while the item is still in the caller's slot. A grant taken before a lost race went
            // back to the budget with the `Full` error, so it is taken again on every round.
            let reservation = match &self.shared.budget {
                None => None,
                Some(budget) => match budget.reserve(weight).await {
                    Ok(reservation) => Some(reservation),
                    Err(error) => {
                        let item = take(slot);
                        return Err(SendError::OverBudget { item, error });
                    }
                },
            };
            if !self.has_room_for(weight) {
                self.room_for(weight).await;
            }
            match self.shared.try_push(take(slot), weight, reservation) {
                // Another sender took the room first (or the limits changed): back into the slot, wait again.
                Err(SendError::Full { item: back, .. }) => *slot = Some(back),
                Ok(()) => {
                    self.write_if_due();
                    return Ok(());
                }
                other => return other,
            }
        }
    }

    /// Polls a send of the item (or bundle) in `slot` without waiting for the budget (a budget that cannot grant
    /// its weight now refuses it): `Ready(Ok)` once it is queued (or the slot is empty), `Pending` while the queue is
    /// unwritable or has no room for it under the hard cap, with the items left in the slot. Errors carry the
    /// items and are counted as refusals.
    pub(crate) fn poll_send_from<I: Items<T>>(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<I>,
    ) -> Poll<Result<(), SendError<I>>> {
        while let Some(item) = slot.take() {
            let weight = item.weigh(T::weight);
            let hard = self.shared.limits().hard();
            if weight > hard {
                return Poll::Ready(Err(self.refused(SendError::TooLarge {
                    item,
                    weight,
                    hard,
                })));
            }
            if !self.has_room_for(weight) {
                *slot = Some(item);
                std::task::ready!(self.poll_room(cx, weight));
                continue;
            }
            match self.push_uncounted(item) {
                // Lost the room to a racing sender: keep the item and wait again.
                Err(SendError::Full { item, .. }) => *slot = Some(item),
                Err(err) => return Poll::Ready(Err(self.refused(err))),
                Ok(()) => self.write_if_due(),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Once the queue holds its low mark's worth, a sender writes it itself while the queue's writer is idle (see
    /// [`WatermarkWriter::spawn`](super::WatermarkWriter::spawn)): a stream that keeps up then takes the queue in
    /// writes of about the low mark, and the queue never turns unwritable, with no trip through the scheduler to the
    /// writer task and back.
    #[inline]
    fn write_if_due(&self) {
        let shared = &*self.shared;
        // A queue without a spawned writer pays one load here, not the marks' read.
        if shared.has_direct_writer() && shared.level.bytes() >= shared.limits().low() {
            shared.write_directly();
        }
    }

    fn refused<U>(&self, err: SendError<U>) -> SendError<U> {
        self.shared.count_refusal(&err);
        err
    }

    /// Whether a send of `weight` can go ahead now (or fail at once because the queue is closed).
    fn has_room_for(&self, weight: usize) -> bool {
        let shared = &*self.shared;
        shared.is_closed()
            || (shared.level.is_writable()
                && shared.level.bytes() + weight <= shared.limits().hard())
    }

    /// Waits until the queue is writable with room for `weight` under the hard cap, or closed.
    async fn room_for(&self, weight: usize) {
        let shared = &*self.shared;
        if shared.write_directly() && self.has_room_for(weight) {
            return;
        }
        let mut writable = Registration::new(&shared.writable);
        let mut space = Registration::new(&shared.space);
        poll_fn(|cx| {
            if shared.is_closed() {
                return Poll::Ready(());
            }
            if !shared.level.is_writable() {
                return writable.poll(cx, || shared.is_closed() || shared.level.is_writable());
            }
            let fits =
                || shared.is_closed() || shared.level.bytes() + weight <= shared.limits().hard();
            space.poll(cx, fits)
        })
        .await;
        writable.forget();
        space.forget();
    }

    /// [`room_for`](Self::room_for) as a poll, with registrations kept in the sender (and removed on drop).
    fn poll_room(&mut self, cx: &mut Context<'_>, weight: usize) -> Poll<()> {
        let shared = &*self.shared;
        if shared.is_closed() || (shared.write_directly() && self.has_room_for(weight)) {
            shared.writable.forget(&mut self.sink_key);
            shared.space.forget(&mut self.space_key);
            return Poll::Ready(());
        }
        if !shared.level.is_writable() {
            let writable = || shared.is_closed() || shared.level.is_writable();
            std::task::ready!(shared.writable.poll_wait(cx, &mut self.sink_key, writable));
        }
        let fits = || shared.is_closed() || shared.level.bytes() + weight <= shared.limits().hard();
        let ready = shared.space.poll_wait(cx, &mut self.space_key, fits);
        if ready.is_ready() {
            shared.writable.forget(&mut self.sink_key);
        }
        ready
    }

    /// Whether the queue is writable: it has not passed the high mark, or has drained to the low mark since.
    pub fn is_writable(&self) -> bool {
        self.shared.level.is_writable()
    }

    /// Waits until the queue is writable or closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it queues nothing. While the queue's writer is idle it may write queued items for it (see
    /// [`WatermarkWriter::spawn`](super::WatermarkWriter::spawn)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, _rx) = tidegate::watermark::channel::<Vec<u8>>(Default::default());
    /// tx.writable().await; // a fresh queue is writable
    /// # }
    /// ```
    pub async fn writable(&self) {
        let shared = &*self.shared;
        if !shared.level.is_writable() {
            shared.write_directly();
        }
        let mut registration = Registration::new(&shared.writable);
        poll_fn(|cx| registration.poll(cx, || shared.is_closed() || shared.level.is_writable()))
            .await;
    }

    /// Bytes queued now (including items the receiver has taken but not yet delivered).
    pub fn pending_bytes(&self) -> usize {
        self.shared.level.bytes()
    }

    /// A watch of the writability: its value is `true` while writable, and `changed().await` wakes on every
    /// flip. Flips closer together than the watcher polls are coalesced, but the value always settles on the
    /// queue's current writability.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::watermark::{self, Config, Limits};
    ///
    /// let (tx, _rx) = watermark::channel(Config::builder().limits(Limits::new(0, 1, 10)).build());
    /// let watch = tx.watch_writability();
    /// tx.try_send(vec![0u8; 2]).unwrap();
    /// assert!(!*watch.borrow());
    /// ```
    pub fn watch_writability(&self) -> watch::Receiver<bool> {
        self.shared.subscribe_writability()
    }

    /// Stops accepting items; queued items are still delivered, then the receiver sees the end (a writer flushes
    /// and shuts its stream down). Senders learn [`CloseReason::Closed`].
    pub fn close(&self) {
        self.shared.close(CloseReason::Closed, false);
    }

    /// Stops accepting items and drops what is queued, counting it in
    /// [`WatermarkMetrics::undelivered_items`]; a writer stops without flushing.
    pub fn abort(&self) {
        self.shared.close(CloseReason::Aborted, true);
    }

    /// Whether the queue no longer accepts items.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Waits until the queue stops accepting items and returns why.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; it only observes.
    pub async fn closed(&self) -> CloseReason {
        self.shared.closed().await
    }

    /// The current marks (the set's, for a member of a [`QueueSet`](super::QueueSet)).
    pub fn limits(&self) -> Limits {
        self.shared.limits().get()
    }

    /// Changes the marks at run time, for every sender of this queue, in one step: a reader of the marks sees all
    /// the old ones or all the new ones. Writability is re-decided at once; items already queued above a lowered
    /// hard cap stay queued. For a member of a [`QueueSet`](super::QueueSet) the marks are the set's: this changes
    /// them for every member.
    pub fn set_limits(&self, limits: Limits) {
        self.shared.set_limits(limits);
    }

    /// A snapshot of the queue's (and its writer's) counters.
    pub fn metrics(&self) -> WatermarkMetrics {
        self.shared.metrics()
    }
}

impl<T> Sender<T> {
    /// The `Sink` impl's wait for writability; its registration lives in the sender and goes with it.
    pub(crate) fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &*self.shared;
        if !shared.level.is_writable() {
            shared.write_directly();
        }
        shared.writable.poll_wait(cx, &mut self.sink_key, || {
            shared.is_closed() || shared.level.is_writable()
        })
    }
}

impl<T> Sender<T> {
    /// Joins `set`; see [`QueueSet::add`](super::QueueSet::add).
    pub(crate) fn join(&self, set: &Arc<SetCore>) -> bool
    where
        T: Send + 'static,
    {
        self.shared.join(set)
    }

    /// The shared state, for the registry's observer (which holds it weakly).
    pub(crate) fn shared(&self) -> &Arc<Shared<T>> {
        &self.shared
    }
}

impl<T> Sender<T> {
    /// Counts `item` as accepted and then lost; see [`Shared::lose`].
    pub(crate) fn lose(&self, item: impl Items<T>) {
        self.shared.lose(item);
    }
}

impl<T> Sender<T> {
    /// Why the queue closed, or `None` while it is open: [`closed`](Self::closed) without waiting, for a
    /// [`Group`](crate::conn::Group) counting the members it prunes by reason.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.shared.reason()
    }

    /// For fan-out: queues a clone of `item` if the queue is writable, and says what happened without handing the
    /// clone back. The verdict is a one-byte value: a caller that matched the full `Result` of
    /// [`try_send`](Self::try_send) (a large `SendError` returned through memory) paid a store-forwarding stall per
    /// member, 15% of a [`Group`](crate::conn::Group) broadcast.
    pub(crate) fn offer(&self, item: &T) -> Offer
    where
        T: Weight + Clone,
    {
        if !self.is_writable() {
            return match self.is_closed() {
                true => Offer::Closed,
                false => Offer::Unwritable,
            };
        }
        let item = item.clone();
        let weight = item.weigh(T::weight);
        let reservation = match &self.shared.budget {
            None => None,
            Some(budget) => match budget.try_reserve(weight) {
                Ok(reservation) => Some(reservation),
                Err(_) => {
                    self.shared.note_refused();
                    return Offer::Refused;
                }
            },
        };
        self.shared.offer_push(item, weight, reservation)
    }
}

/// What [`Sender::offer`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued.
    Sent,
    /// Not offered: the queue is over its high mark (and not yet back under its low mark).
    Unwritable,
    /// Writable, but the hard cap or the budget refused the item.
    Refused,
    /// The queue is closed.
    Closed,
}

/// Moves the item out of `slot` for the push or the error: `send_from` puts it back after every lost race, so it
/// is there whenever this is called.
fn take<I>(slot: &mut Option<I>) -> I {
    slot.take()
        .expect("the slot holds the item until it is queued or handed back")
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
            sink_key: None,
            space_key: None,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.writable.forget(&mut self.sink_key);
        self.shared.space.forget(&mut self.space_key);
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close_from_last_sender();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("pending_bytes", &self.shared.level.bytes())
            .field("writable", &self.shared.level.is_writable())
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}
