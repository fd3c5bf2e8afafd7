//! The receiving half of a watermark channel.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll};

use std::sync::Arc;

use super::shared::Shared;
use super::{CloseReason, WatermarkMetrics};

/// The receiving half of a [`channel`](super::channel).
///
/// Items stop counting against the queue's marks (and budget) when they are returned. Dropping the receiver closes
/// the queue with [`CloseReason::ReceiverDropped`] and counts what was still queued as undelivered.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, mut rx) = tidegate::watermark::channel(Default::default());
/// for i in 0..5u8 {
///     tx.try_send(vec![i; 10]).unwrap();
/// }
/// drop(tx);
/// let mut batch = Vec::new();
/// assert_eq!(rx.recv_many(&mut batch, 100, 25).await, 2); // at most 25 bytes
/// assert_eq!(rx.recv_many(&mut batch, 2, usize::MAX).await, 2); // at most 2 items
/// assert_eq!(rx.recv().await, Some(vec![4; 10]));
/// assert_eq!(rx.recv().await, None); // every sender is gone and the queue is empty
/// # }
/// ```
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Items taken from the shared queue in one lock, handed out one by one without it.
    stash: VecDeque<T>,
}

impl<T> Receiver<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        Receiver {
            shared,
            stash: VecDeque::new(),
        }
    }

    /// Polls for the next item; `Ready(None)` once the queue is closed and drained, or aborted.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            if self.drop_if_aborted() {
                return Poll::Ready(None);
            }
            if let Some(item) = self.stash.pop_front() {
                self.shared.release(1, self.shared.weigh(&item));
                return Poll::Ready(Some(item));
            }
            if !std::task::ready!(self.shared.poll_take(cx, &mut self.stash)) {
                return Poll::Ready(None);
            }
        }
    }

    /// Receives the next item, waiting for one; `None` once the queue is closed and drained, or aborted.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an item is removed only in the poll that returns it.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives an item if one is queued.
    ///
    /// # Errors
    ///
    /// The close reason once the queue is closed and drained (or aborted). `Ok(None)` means empty for now.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, mut rx) = tidegate::watermark::channel(Default::default());
    /// assert_eq!(rx.try_recv().unwrap(), None);
    /// tx.try_send(vec![1u8]).unwrap();
    /// assert_eq!(rx.try_recv().unwrap(), Some(vec![1]));
    /// tx.close();
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn try_recv(&mut self) -> Result<Option<T>, CloseReason> {
        if self.drop_if_aborted() {
            return Err(self.reason());
        }
        if self.stash.is_empty() && self.shared.try_take(&mut self.stash) == Some(false) {
            return Err(self.reason());
        }
        let item = self.stash.pop_front();
        if let Some(item) = &item {
            self.shared.release(1, self.shared.weigh(item));
        }
        Ok(item)
    }

    /// Waits for at least one item, then moves up to `max_items` items weighing up to `max_bytes` into `buf` (the
    /// first item is taken even if it alone is heavier). Returns how many were added; `0` once the queue is closed
    /// and drained (or aborted), or if `max_items` is 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: items are moved only in the poll that returns.
    pub async fn recv_many(
        &mut self,
        buf: &mut Vec<T>,
        max_items: usize,
        max_bytes: usize,
    ) -> usize {
        if max_items == 0 {
            return 0;
        }
        poll_fn(|cx| self.poll_recv_many(cx, buf, max_items, max_bytes)).await
    }

    fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        max_items: usize,
        max_bytes: usize,
    ) -> Poll<usize> {
        if self.drop_if_aborted() {
            return Poll::Ready(0);
        }
        if self.stash.is_empty() && !std::task::ready!(self.shared.poll_take(cx, &mut self.stash)) {
            return Poll::Ready(0);
        }
        let (mut count, mut bytes) = (0usize, 0usize);
        while count < max_items {
            let Some(front) = self.stash.front() else {
                break;
            };
            let weight = self.shared.weigh(front);
            if count > 0 && bytes + weight > max_bytes {
                break;
            }
            buf.extend(self.stash.pop_front());
            count += 1;
            bytes += weight;
        }
        self.shared.release(count as u64, bytes);
        Poll::Ready(count)
    }

    /// Stops accepting new items; those queued can still be received.
    pub fn close(&self) {
        self.shared.close(CloseReason::Closed, false);
    }

    /// Bytes queued now, including items this receiver holds but has not returned yet.
    pub fn pending_bytes(&self) -> usize {
        self.shared.level.bytes()
    }

    /// A snapshot of the queue's counters.
    pub fn metrics(&self) -> WatermarkMetrics {
        self.shared.metrics()
    }

    /// For the writer: moves queued items into `into` without releasing them; see [`Shared::poll_take`].
    pub(crate) fn poll_take(&mut self, cx: &mut Context<'_>, into: &mut VecDeque<T>) -> Poll<bool> {
        if !self.stash.is_empty() {
            into.append(&mut self.stash);
            return Poll::Ready(true);
        }
        self.shared.poll_take(cx, into)
    }

    pub(crate) fn shared(&self) -> &Shared<T> {
        &self.shared
    }

    /// The shared state as an `Arc`, for the registry's observer (which holds it weakly).
    pub(crate) fn shared_arc(&self) -> &Arc<Shared<T>> {
        &self.shared
    }

    fn reason(&self) -> CloseReason {
        self.shared.reason().unwrap_or(CloseReason::Closed)
    }

    /// After an abort, items already in the stash are dropped too (and counted), not handed out.
    fn drop_if_aborted(&mut self) -> bool {
        if !self.shared.is_aborted() {
            return false;
        }
        self.shared.discard(self.stash.drain(..));
        true
    }
}

// Items are moved in and out, never pinned.
impl<T> Unpin for Receiver<T> {}

/// The items in order, ending (`None`) once the queue is closed and drained, or aborted: [`poll_recv`](Receiver::poll_recv).
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = tidegate::watermark::channel(Default::default());
/// tx.try_send(vec![1u8]).unwrap();
/// tx.try_send(vec![2u8, 3]).unwrap();
/// drop(tx);
/// assert_eq!(rx.collect::<Vec<_>>().await, [vec![1], vec![2, 3]]);
/// # }
/// ```
impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.close(CloseReason::ReceiverDropped, true);
        self.shared.discard(self.stash.drain(..));
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("pending_bytes", &self.shared.level.bytes())
            .field("held", &self.stash.len())
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}
