//! The state one channel's senders and receiver share.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::budget::{MemoryBudget, Reservation};

use super::bundle::Items;
use super::direct_write::DirectWrite;
use super::gate::Gate;
use super::level::{Change, Level};
use super::live_limits::LiveLimits;
use super::sender::Offer;
use super::set_core::{Member, Membership, Sample, SetCore};
use super::stats::Stats;
use super::{CloseReason, Limits, SendError, WatermarkMetrics, Weight};

pub(crate) struct Shared<T> {
    pub(crate) level: Level,
    /// The queue's own marks, until it joins a set: then it reads the set's (see [`limits`](Self::limits)).
    own_limits: LiveLimits,
    membership: OnceLock<Membership>,
    /// Senders waiting for the queue to turn writable (or close).
    pub(crate) writable: Gate,
    /// Senders of items too large to fit under `hard` right now, waiting for any release.
    pub(crate) space: Gate,
    pub(crate) budget: Option<MemoryBudget>,
    pub(crate) senders: AtomicUsize,
    queue: crate::loom::Mutex<Queue<T>>,
    /// Mirrors `queue.reason.is_some()` so refusing a closed queue needs no lock.
    closed: AtomicBool,
    aborted: AtomicBool,
    /// Made on the first `watch_writability`: a watch channel costs ~350 bytes, and every queue pays for what it
    /// holds for its whole life.
    observe: OnceLock<watch::Sender<bool>>,
    /// Notified when the queue closes or aborts (the reason is in `queue.reason`).
    pub(crate) closing: Notify,
    /// Notified on every writability flip (the writer's watchdog moves its eviction deadline).
    pub(crate) flipped: Notify,
    clock: parking_lot::Mutex<Clock>,
    /// Owned here: the writer reports through [`record_write`](Self::record_write) and [`close`](Self::close).
    stats: Stats,
    /// `T::weight`, kept so that code without a `T: Weight` bound (such as `Drop` impls) can count items.
    weigh: fn(&T) -> usize,
    /// The spawned writer draining this queue, which senders may write for while it is idle (see
    /// [`write_directly`](Self::write_directly)).
    direct: OnceLock<Weak<dyn DirectWrite>>,
}

struct Queue<T> {
    items: VecDeque<T>,
    receiver: Option<Waker>,
    reason: Option<CloseReason>,
    /// The budget's grant for every queued byte; grows on push, shrinks on release.
    reservation: Option<Reservation>,
    accepted: u64,
}

#[derive(Default)]
struct Clock {
    since: Option<Instant>,
    total: Duration,
}

impl<T> Shared<T> {
    pub(crate) fn new(limits: Limits, budget: Option<MemoryBudget>) -> Self
    where
        T: Weight,
    {
        Shared {
            weigh: T::weight,
            level: Level::new(),
            own_limits: LiveLimits::new(limits),
            membership: OnceLock::new(),
            writable: Gate::new(),
            space: Gate::new(),
            budget,
            senders: AtomicUsize::new(1),
            queue: crate::loom::Mutex::new(Queue {
                items: VecDeque::new(),
                receiver: None,
                reason: None,
                reservation: None,
                accepted: 0,
            }),
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            observe: OnceLock::new(),
            closing: Notify::new(),
            flipped: Notify::new(),
            clock: parking_lot::Mutex::new(Clock::default()),
            stats: Stats::default(),
            direct: OnceLock::new(),
        }
    }

    /// The marks in force: the set's once the queue joined one, its own before.
    #[inline]
    pub(crate) fn limits(&self) -> &LiveLimits {
        match self.membership.get() {
            Some(membership) => &membership.set.limits,
            None => &self.own_limits,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    pub(crate) fn reason(&self) -> Option<CloseReason> {
        self.queue.lock().reason.clone()
    }

    pub(crate) fn closed_error<U>(&self, item: U) -> SendError<U> {
        let reason = self.reason().unwrap_or(CloseReason::Closed);
        SendError::Closed { item, reason }
    }

    /// Queues the items of `item` (in one step) if they fit under the hard cap. `reservation` holds the budget's
    /// grant for their `weight`.
    ///
    /// A refusal is not counted here: only the caller knows whether it is final (a `send` that lost a race for
    /// the room waits and tries again). Count final ones with [`count_refusal`](Self::count_refusal).
    pub(crate) fn try_push<I: Items<T>>(
        &self,
        item: I,
        weight: usize,
        reservation: Option<Reservation>,
    ) -> Result<(), SendError<I>> {
        self.push_with(item, weight, reservation, |_, err| Err(err), Ok(()))
    }

    /// [`try_push`](Self::try_push) for [`Sender::offer`](super::Sender::offer): the refusal is counted and the
    /// item dropped here, and the verdict is one byte. A fan-out calls this once per member; returning the whole
    /// `Result` (item included) from an outlined `try_push` made every call read it back from the stack right after
    /// it was written, a store-forwarding stall that cost more than the push itself.
    pub(crate) fn offer_push(
        &self,
        item: T,
        weight: usize,
        reservation: Option<Reservation>,
    ) -> Offer {
        self.push_with(
            item,
            weight,
            reservation,
            |shared, err| {
                shared.count_refusal(&err);
                match err.is_closed() {
                    true => Offer::Closed,
                    false => Offer::Refused,
                }
            },
            Offer::Sent,
        )
    }

    /// The push itself, shared by `try_push` and `offer_push`: `refused` turns a refusal into the caller's
    /// answer, `pushed` is the answer on success.
    #[inline(always)]
    fn push_with<I: Items<T>, R>(
        &self,
        item: I,
        weight: usize,
        reservation: Option<Reservation>,
        refused: impl FnOnce(&Self, SendError<I>) -> R,
        pushed: R,
    ) -> R {
        if self.is_closed() {
            return refused(self, self.closed_error(item));
        }
        let limits = self.limits().get();
        let change = match self.level.try_add(weight, &limits) {
            Ok(change) => change,
            Err(queued) => {
                let hard = limits.hard();
                let err = if weight > hard {
                    SendError::TooLarge { item, weight, hard }
                } else {
                    SendError::Full {
                        item,
                        weight,
                        queued,
                        hard,
                    }
                };
                return refused(self, err);
            }
        };
        let mut queue = self.queue.lock();
        if let Some(reason) = &queue.reason {
            let reason = reason.clone();
            drop(queue);
            // Undo the weight. The add may have flipped the queue unwritable and the hysteresis may keep it so
            // after the undo: record that flip, or the flip count, the unwritable clock and the watch would all
            // miss a state the queue is in.
            if change.flipped {
                self.on_flip();
            }
            self.after_change(self.level.sub(weight, limits.low()));
            return refused(self, SendError::Closed { item, reason });
        }
        queue.accepted += item.count();
        item.push_into(&mut queue.items);
        if let Some(granted) = reservation {
            match &mut queue.reservation {
                Some(held) => held.merge(granted),
                slot @ None => *slot = Some(granted),
            }
        }
        let receiver = queue.receiver.take();
        drop(queue);
        if let Some(waker) = receiver {
            waker.wake();
        }
        if change.bytes > self.stats.peak.load(Ordering::Relaxed) {
            self.stats.peak.fetch_max(change.bytes, Ordering::Relaxed);
        }
        if change.flipped {
            self.on_flip();
        }
        pushed
    }

    /// Moves queued items into `into` (which the receiving side drains first). `Ready(false)` once the queue is
    /// closed and empty. The items still count as queued until [`release`](Self::release)d.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<T>) -> Poll<bool> {
        let mut queue = self.queue.lock();
        if let Some(more) = Self::take_locked(&mut queue, into) {
            return Poll::Ready(more);
        }
        match &queue.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => queue.receiver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Lets senders write for `writer`; see [`write_directly`](Self::write_directly).
    pub(crate) fn set_direct_writer(&self, writer: Weak<dyn DirectWrite>) {
        // A queue has one writer, which sets this once.
        let _ = self.direct.set(writer);
    }

    /// Whether a spawned writer drains this queue (and senders may write for it).
    #[inline]
    pub(crate) fn has_direct_writer(&self) -> bool {
        self.direct.get().is_some()
    }

    /// For a sender that found the queue at its low mark, or is about to wait for room: writes queued items to the
    /// stream itself if the queue's writer is idle (see [`DirectWrite`]). Returns whether anything was written.
    pub(crate) fn write_directly(&self) -> bool {
        match self.direct.get().and_then(Weak::upgrade) {
            Some(writer) => writer.write_queued(),
            None => false,
        }
    }

    /// [`poll_take`](Self::poll_take) without waiting: `None` if the queue is empty but open.
    pub(crate) fn try_take(&self, into: &mut VecDeque<T>) -> Option<bool> {
        Self::take_locked(&mut self.queue.lock(), into)
    }

    fn take_locked(queue: &mut Queue<T>, into: &mut VecDeque<T>) -> Option<bool> {
        if !queue.items.is_empty() {
            if into.is_empty() {
                // Swapping hands the receiver the whole batch and keeps both allocations alive: no per-item work.
                std::mem::swap(&mut queue.items, into);
            } else {
                into.append(&mut queue.items);
            }
            return Some(true);
        }
        queue.reason.is_some().then_some(false)
    }

    /// Removes `items` items weighing `bytes` from the accounting after they were delivered. Called only by the
    /// receiving side, which is unique (a sender writing for the writer holds the writer's lock), so the delivered
    /// counter needs no read-modify-write.
    pub(crate) fn release(&self, items: u64, bytes: usize) {
        Stats::bump(&self.stats.delivered, items);
        self.uncount(bytes);
    }

    fn uncount(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let change = self.level.sub(bytes, self.limits().low());
        if self.budget.is_some() {
            let mut queue = self.queue.lock();
            if let Some(held) = &mut queue.reservation {
                held.shrink_to(held.bytes().saturating_sub(bytes));
            }
        }
        self.after_change(change);
    }

    fn after_change(&self, change: Change) {
        if change.flipped {
            self.on_flip();
            self.writable.wake_all();
        }
        self.space.wake_all();
    }

    /// Drops accepted items without delivering them, counting them as undelivered.
    pub(crate) fn discard(&self, items: impl IntoIterator<Item = T>) {
        let (mut count, mut bytes) = (0u64, 0usize);
        for item in items {
            count += 1;
            bytes += (self.weigh)(&item);
        }
        if count == 0 {
            return;
        }
        self.record_undelivered(count, bytes);
        self.uncount(bytes);
    }

    /// Stops accepting items; a close for [`CloseReason::Evicted`] also records the eviction in the metrics. The
    /// first reason sticks, except that an error met while draining after a graceful
    /// `close()` replaces `Closed` so later observers learn what happened. With `drop_queued`, queued items are
    /// discarded. Returns whether this call changed the reason.
    pub(crate) fn close(&self, reason: CloseReason, drop_queued: bool) -> bool {
        let (changed, dropped, receiver) = {
            let mut queue = self.queue.lock();
            let changed = match &queue.reason {
                None => true,
                Some(old) => old.is_graceful() && reason.is_failure(),
            };
            if changed {
                queue.reason = Some(reason.clone());
            }
            let dropped = if drop_queued {
                std::mem::take(&mut queue.items)
            } else {
                VecDeque::new()
            };
            (changed, dropped, queue.receiver.take())
        };
        if drop_queued {
            self.aborted.store(true, Ordering::Release);
        }
        if matches!(reason, CloseReason::Evicted { .. }) {
            self.stats.evicted.store(true, Ordering::Relaxed);
        }
        self.closed.store(true, Ordering::Release);
        self.discard(dropped);
        // Also without a new reason: an abort after a failure is news to a writer waiting on a write.
        self.closing.notify_waiters();
        if let Some(waker) = receiver {
            waker.wake();
        }
        self.writable.wake_all();
        self.space.wake_all();
        changed
    }

    /// Counts one write call of the writer that made progress, of `bytes` bytes. Only the writer writes (a sender
    /// writing for it holds its lock), so the counters need no read-modify-write.
    pub(crate) fn record_write(&self, bytes: usize) {
        Stats::bump(&self.stats.writes, 1);
        Stats::bump(&self.stats.sent_bytes, bytes as u64);
    }

    /// Waits until the queue is closed and returns the reason.
    pub(crate) async fn closed(&self) -> CloseReason {
        loop {
            // Registered before the reason is read, so a close right after the read still wakes this wait.
            let mut closing = pin!(self.closing.notified());
            closing.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            closing.await;
        }
    }

    pub(crate) fn subscribe_writability(&self) -> watch::Receiver<bool> {
        let _clock = self.clock.lock();
        let observe = self
            .observe
            .get_or_init(|| watch::Sender::new(self.level.is_writable()));
        let watch = observe.subscribe();
        self.publish(self.level.is_writable());
        watch
    }

    /// Changes the marks in force: the queue's own, or its set's (for every member).
    pub(crate) fn set_limits(&self, limits: Limits) {
        match self.membership.get() {
            Some(membership) => membership.set.set_limits(limits),
            None => {
                self.own_limits.set(limits);
                self.relimit();
            }
        }
    }

    /// Re-decides writability under the marks in force; wakes waiters, who re-check their room too.
    fn relimit(&self) {
        if self.level.relimit(&self.limits().get()) {
            self.on_flip();
        }
        self.writable.wake_all();
        self.space.wake_all();
    }

    /// Joins `set` (see [`QueueSet::add`](super::QueueSet::add)); `false` if the queue is in a set already.
    pub(crate) fn join(self: &Arc<Self>, set: &Arc<SetCore>) -> bool
    where
        T: Send + 'static,
    {
        if self.membership.get().is_some() {
            return false;
        }
        let weak: Weak<Shared<T>> = Arc::downgrade(self);
        let membership = set.join(weak);
        if let Err(lost) = self.membership.set(membership) {
            // A concurrent join to another set won.
            lost.leave(Default::default());
            return false;
        }
        self.relimit();
        true
    }

    /// Records a flip. Concurrent flips may record in any order, so the clock and the watch are brought in line with
    /// the current state under the clock's lock rather than with the flip that was observed: the last one to run
    /// publishes the final state.
    fn on_flip(&self) {
        self.stats.flips.fetch_add(1, Ordering::Relaxed);
        let mut clock = self.clock.lock();
        let writable = self.level.is_writable();
        match (writable, clock.since) {
            (false, None) => clock.since = Some(Instant::now()),
            (true, Some(since)) => {
                clock.total += since.elapsed();
                clock.since = None;
            }
            _ => {}
        }
        self.flipped.notify_waiters();
        // Publishing wakes through several locks even with no watcher, so skip it then; `subscribe_writability`
        // catches the value up under the same lock before anyone can watch.
        if self.observe.get().is_some_and(|o| o.receiver_count() > 0) {
            self.publish(writable);
        }
    }

    fn publish(&self, writable: bool) {
        let Some(observe) = self.observe.get() else {
            return;
        };
        observe.send_if_modified(|published| {
            let changed = *published != writable;
            *published = writable;
            changed
        });
    }

    /// When the current unwritable stretch began, if the queue is unwritable.
    pub(crate) fn unwritable_since(&self) -> Option<Instant> {
        self.clock.lock().since
    }

    pub(crate) fn metrics(&self) -> WatermarkMetrics {
        let accepted = self.queue.lock().accepted;
        let (since, total) = {
            let clock = self.clock.lock();
            (clock.since, clock.total)
        };
        let unwritable = total + since.map_or(Duration::ZERO, |s| s.elapsed());
        self.stats.snapshot(&self.level, accepted, unwritable)
    }

    /// The set this queue belongs to, if any.
    pub(crate) fn set(&self) -> Option<&Arc<SetCore>> {
        self.membership.get().map(|membership| &membership.set)
    }

    pub(crate) fn close_from_last_sender(&self) {
        self.close(CloseReason::Closed, false);
    }

    pub(crate) fn weigh(&self, item: &T) -> usize {
        (self.weigh)(item)
    }

    /// Counts `err` in `refused` if it is a refusal (hard cap or budget) rather than a closed queue.
    pub(crate) fn count_refusal<U>(&self, err: &SendError<U>) {
        if err.is_refusal() {
            self.note_refused();
        }
    }

    /// Counts one refusal: the hard cap or the budget refused an item.
    pub(crate) fn note_refused(&self) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an item that a [`FramedSender`](super::FramedSender) had accepted and could not queue when it was
    /// dropped: accepted and undelivered at once, so `accepted = delivered + undelivered + queued` still holds.
    pub(crate) fn lose(&self, item: impl Items<T>) {
        let bytes = item.weigh(self.weigh);
        let count = item.count();
        drop(item);
        self.queue.lock().accepted += count;
        self.record_undelivered(count, bytes);
    }

    fn record_undelivered(&self, count: u64, bytes: usize) {
        self.stats
            .undelivered_items
            .fetch_add(count, Ordering::Relaxed);
        self.stats
            .undelivered_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl<T: Send> Member for Shared<T> {
    fn sample(&self) -> Sample {
        Sample {
            queued: self.level.bytes(),
            unwritable: !self.level.is_writable(),
            counts: self.stats.counts(),
        }
    }

    fn relimit(&self) {
        Shared::relimit(self);
    }
}

impl<T> Drop for Shared<T> {
    /// The queue's final counts go to its set, whose totals keep counting after it is gone.
    fn drop(&mut self) {
        if let Some(membership) = self.membership.get() {
            membership.leave(self.stats.counts());
        }
    }
}
