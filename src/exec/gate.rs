//! Run slots: at most `limit` tasks hold one at a time; the rest wait in FIFO order.
//!
//! The running count lives in the executor's state word (see `state`), next to a flag that says whether
//! anyone waits, so the uncontended path is one load and one CAS to take a slot, and giving it back is part of
//! the single operation by which a task leaves: the value it replaces says whether anyone waits, which makes
//! the release-versus-enqueue race a question of one location's modification order.
//! tokio's `Semaphore` takes its waiter mutex on every release; this gate only locks when someone waits.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::loom::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::loom::{Arc, Mutex};

#[cfg(all(test, tidegate_loom))]
use super::state::RUNNING_ONE;
use super::state::{running_of, State, MAX_RUNNING, WAITING};

pub(crate) struct Gate {
    pub(crate) state: State,
    limit: AtomicUsize,
    queue: Mutex<Queue>,
}

/// `WAITING` is only changed under this lock, where it is set exactly when `waiters` is non-empty (or, briefly,
/// while the holder is about to queue).
#[derive(Default)]
struct Queue {
    waiters: VecDeque<Arc<Waiter>>,
    waited_total: Duration,
    waited_max: Duration,
}

/// A queued task's hold on its place, kept in the task until it is granted a slot or leaves.
pub(crate) type WaiterRef = Arc<Waiter>;

/// One task's place in the queue. `granted` is only set under the queue lock.
pub(crate) struct Waiter {
    granted: AtomicBool,
    waker: Mutex<Option<Waker>>,
    enqueued: Instant,
}

/// Figures for `metrics()`.
pub(crate) struct GateStats {
    pub(crate) running: usize,
    pub(crate) waited_total: Duration,
    pub(crate) waited_max: Duration,
}

impl Gate {
    pub(crate) fn new(limit: usize) -> Self {
        Gate {
            state: State::default(),
            limit: AtomicUsize::new(limit.min(MAX_RUNNING)),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Takes a slot if one is free. With `fair`, only while nobody waits, so newcomers do not overtake queued
    /// tasks.
    #[inline]
    fn try_take(&self, fair: bool) -> bool {
        self.state.try_take(self.limit.load(SeqCst), fair)
    }

    /// Takes a slot or queues `slot`'s task. `Ready` means the caller now holds a slot.
    #[inline]
    pub(crate) fn poll_acquire(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Arc<Waiter>>,
    ) -> Poll<()> {
        if slot.is_none() && self.try_take(true) {
            return Poll::Ready(());
        }
        self.poll_acquire_slow(cx, slot)
    }

    #[cold]
    #[inline(never)]
    fn poll_acquire_slow(&self, cx: &mut Context<'_>, slot: &mut Option<Arc<Waiter>>) -> Poll<()> {
        if let Some(waiter) = slot {
            if waiter.granted.load(SeqCst) {
                *slot = None;
                return Poll::Ready(());
            }
            *waiter.waker.lock() = Some(cx.waker().clone());
            // Granted between the first check and storing the waker: the granter may have seen no waker.
            if waiter.granted.load(SeqCst) {
                *slot = None;
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        let mut queue = self.queue.lock();
        if queue.waiters.is_empty() {
            // Announce before re-trying, on the word a release decrements: a concurrent release either frees
            // the slot we take here or sees the flag and grants us under the lock we hold until we are queued.
            // With waiters already queued the flag is set and stays set while we hold the lock.
            self.state.set(WAITING);
            if self.try_take(false) {
                self.state.clear(WAITING);
                return Poll::Ready(());
            }
        }
        let waiter = Arc::new(Waiter {
            granted: AtomicBool::new(false),
            waker: Mutex::new(Some(cx.waker().clone())),
            enqueued: Instant::now(),
        });
        queue.waiters.push_back(Arc::clone(&waiter));
        *slot = Some(waiter);
        Poll::Pending
    }

    /// Leaves the queue. Returns `true` if a slot had already been granted, which the caller then owns.
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter>) -> bool {
        let mut queue = self.queue.lock();
        if waiter.granted.load(SeqCst) {
            return true;
        }
        // Cancellation is rare (abort, shutdown); a scan of at most `max_pending` entries is fine.
        if let Some(pos) = queue.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            queue.waiters.remove(pos);
            if queue.waiters.is_empty() {
                self.state.clear(WAITING);
            }
        }
        false
    }

    /// Takes `delta` off the state word (a run slot, a place in flight, or both; `holds_slot` says whether it
    /// includes a slot) and hands a freed slot to the oldest waiter. While no flag is set this is one CAS and
    /// nothing follows it. Otherwise the word changes unconditionally and work follows (grants here, wake-ups
    /// in the caller), so `keep_alive` runs first, while the caller is still counted, and what it returns is
    /// handed back to be held through that work. Returns the word before the change.
    pub(crate) fn leave<K>(
        &self,
        delta: u64,
        holds_slot: bool,
        keep_alive: impl FnOnce() -> K,
    ) -> (u64, Option<K>) {
        if let Ok(prev) = self.state.try_leave_quietly(delta) {
            return (prev, None);
        }
        let keep = keep_alive();
        let prev = self.state.leave(delta);
        if holds_slot && prev & WAITING != 0 {
            self.grant_waiters();
        }
        (prev, Some(keep))
    }

    /// Gives a slot back on its own, as a task leaving does together with its place in flight.
    #[cfg(all(test, tidegate_loom))]
    pub(crate) fn release(&self) {
        self.leave(RUNNING_ONE, true, || ());
    }

    /// Hands free slots to queued tasks, oldest first.
    fn grant_waiters(&self) {
        let mut queue = self.queue.lock();
        while !queue.waiters.is_empty() && self.try_take(false) {
            let waiter = queue.waiters.pop_front().expect("checked non-empty");
            if queue.waiters.is_empty() {
                self.state.clear(WAITING);
            }
            let waited = waiter.enqueued.elapsed();
            queue.waited_total += waited;
            queue.waited_max = queue.waited_max.max(waited);
            waiter.granted.store(true, SeqCst);
            let waker = waiter.waker.lock().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit.min(MAX_RUNNING), SeqCst);
        // Raising the limit frees slots without any release; hand them to waiters now.
        self.grant_waiters();
    }

    pub(crate) fn running(&self) -> usize {
        running_of(self.state.load())
    }

    /// How long the task at the head of the queue has waited, if any task waits.
    pub(crate) fn oldest_wait(&self) -> Option<Duration> {
        if self.state.load() & WAITING == 0 {
            return None;
        }
        self.queue
            .lock()
            .waiters
            .front()
            .map(|w| w.enqueued.elapsed())
    }

    /// The waiting flag and the queue length, which agree whenever no operation is under way.
    #[cfg(all(test, tidegate_loom))]
    pub(crate) fn queued(&self) -> (bool, usize) {
        let queue = self.queue.lock();
        (self.state.load() & WAITING != 0, queue.waiters.len())
    }

    pub(crate) fn stats(&self) -> GateStats {
        let queue = self.queue.lock();
        GateStats {
            running: self.running(),
            waited_total: queue.waited_total,
            waited_max: queue.waited_max,
        }
    }
}
