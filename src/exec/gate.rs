//! Run slots: at most `limit` tasks hold one at a time; the rest wait in FIFO order.
//!
//! The running count and the number of queued waiters share one atomic word, so the uncontended path is one
//! load and one CAS to take a slot and a single `fetch_sub` to give it back: the value it returns says whether
//! anyone waits, which makes the release-versus-enqueue race a question of one location's modification order
//! (a load of a second word after the `fetch_sub` would need a store-load argument that loom cannot check).
//! tokio's `Semaphore` takes its waiter mutex on every release; this gate only locks when someone waits.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::loom::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use crate::loom::{Arc, Mutex};

/// Low half of `Hot::slots`: tasks holding a slot. High half: tasks queued (or about to queue) for one.
const RUNNING_MASK: u64 = (1 << 32) - 1;
const ONE_WAITING: u64 = 1 << 32;
/// The most slots the gate hands out; higher limits are clamped to it (it already exceeds what a runtime can
/// hold in memory).
pub(crate) const MAX_SLOTS: usize = RUNNING_MASK as usize;

/// What every task touches when it is admitted, starts and finishes, alone on its cache line(s): the
/// executor's in-flight word, the slot word and the completion counter. Measured on 2 workers, keeping
/// them together and away from the read-mostly limits cut the per-task cost noticeably.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Hot {
    /// Tasks admitted and not finished, plus the executor's closed flag (see `Shared`).
    pub(crate) state: AtomicUsize,
    /// Running count (low 32 bits) and waiting count (high 32 bits).
    slots: AtomicU64,
    pub(crate) completed: AtomicU64,
}

pub(crate) struct Gate {
    pub(crate) hot: Hot,
    limit: AtomicUsize,
    queue: Mutex<Queue>,
}

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

fn running_of(slots: u64) -> usize {
    (slots & RUNNING_MASK) as usize
}

impl Gate {
    pub(crate) fn new(limit: usize) -> Self {
        Gate {
            hot: Hot::default(),
            limit: AtomicUsize::new(limit.min(MAX_SLOTS)),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Takes a slot if one is free. With `fair`, only while nobody waits, so newcomers do not overtake queued
    /// tasks.
    fn try_take(&self, fair: bool) -> bool {
        let limit = self.limit.load(SeqCst);
        let mut cur = self.hot.slots.load(SeqCst);
        while running_of(cur) < limit && !(fair && cur >= ONE_WAITING) {
            match self
                .hot
                .slots
                .compare_exchange_weak(cur, cur + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        false
    }

    /// Takes a slot or queues `slot`'s task. `Ready` means the caller now holds a slot.
    pub(crate) fn poll_acquire(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Arc<Waiter>>,
    ) -> Poll<()> {
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
        if self.try_take(true) {
            return Poll::Ready(());
        }
        let mut queue = self.queue.lock();
        // Announce before re-trying, on the word `release` decrements: a concurrent release either frees the
        // slot we take here or sees us waiting and grants us under the lock we hold until we are queued.
        self.hot.slots.fetch_add(ONE_WAITING, SeqCst);
        if queue.waiters.is_empty() && self.try_take(false) {
            self.hot.slots.fetch_sub(ONE_WAITING, SeqCst);
            return Poll::Ready(());
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
            self.hot.slots.fetch_sub(ONE_WAITING, SeqCst);
        }
        false
    }

    pub(crate) fn release(&self) {
        if self.hot.slots.fetch_sub(1, SeqCst) >= ONE_WAITING {
            self.grant_waiters();
        }
    }

    fn grant_waiters(&self) {
        let mut queue = self.queue.lock();
        while !queue.waiters.is_empty() && self.try_take(false) {
            let waiter = queue.waiters.pop_front().expect("checked non-empty");
            self.hot.slots.fetch_sub(ONE_WAITING, SeqCst);
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
        self.limit.store(limit.min(MAX_SLOTS), SeqCst);
        // Raising the limit frees slots without any release; hand them to waiters now.
        self.grant_waiters();
    }

    pub(crate) fn running(&self) -> usize {
        running_of(self.hot.slots.load(SeqCst))
    }

    /// How long the task at the head of the queue has waited, if any task waits.
    pub(crate) fn oldest_wait(&self) -> Option<Duration> {
        if self.hot.slots.load(SeqCst) < ONE_WAITING {
            return None;
        }
        self.queue
            .lock()
            .waiters
            .front()
            .map(|w| w.enqueued.elapsed())
    }

    /// The waiting counter and the queue length, which agree whenever no operation is under way.
    #[cfg(all(test, tidegate_loom))]
    pub(crate) fn queued(&self) -> (usize, usize) {
        let queue = self.queue.lock();
        let waiting = self.hot.slots.load(SeqCst) / ONE_WAITING;
        (usize::try_from(waiting).unwrap(), queue.waiters.len())
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
