//! Run slots: at most `limit` tasks hold one at a time; the rest wait in FIFO order.
//!
//! The uncontended path is one load and one CAS to take a slot and one `fetch_sub` plus one load to give it
//! back. tokio's `Semaphore` takes its waiter mutex on every release; this gate only locks when someone waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// What every task touches when it is admitted, starts and finishes, alone on its cache line(s): the
/// executor's in-flight word, the running count and the completion counter. Measured on 2 workers, keeping
/// them together and away from the read-mostly limits cut the per-task cost noticeably.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Hot {
    /// Tasks admitted and not finished, plus the executor's closed flag (see `Shared`).
    pub(crate) state: AtomicUsize,
    pub(crate) running: AtomicUsize,
    pub(crate) completed: AtomicU64,
}

pub(crate) struct Gate {
    pub(crate) hot: Hot,
    limit: AtomicUsize,
    /// Queued waiters; read without the lock so that release only locks when someone waits.
    waiting: AtomicUsize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiters: VecDeque<Arc<Waiter>>,
    waited_total: Duration,
    waited_max: Duration,
}

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
            hot: Hot::default(),
            limit: AtomicUsize::new(limit),
            waiting: AtomicUsize::new(0),
            queue: Mutex::new(Queue::default()),
        }
    }

    fn try_take(&self) -> bool {
        let limit = self.limit.load(SeqCst);
        let mut cur = self.hot.running.load(SeqCst);
        while cur < limit {
            match self
                .hot
                .running
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
        // Newcomers do not overtake queued tasks: only take a free slot when nobody waits.
        if self.waiting.load(SeqCst) == 0 && self.try_take() {
            return Poll::Ready(());
        }
        let mut queue = self.queue.lock();
        // Announce before re-trying, so that a concurrent `release` either frees the slot we take here or
        // sees `waiting > 0` and grants us under the lock we hold until we are queued.
        self.waiting.fetch_add(1, SeqCst);
        if queue.waiters.is_empty() && self.try_take() {
            self.waiting.fetch_sub(1, SeqCst);
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
            self.waiting.fetch_sub(1, SeqCst);
        }
        false
    }

    pub(crate) fn release(&self) {
        self.hot.running.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            self.grant_waiters();
        }
    }

    fn grant_waiters(&self) {
        let mut queue = self.queue.lock();
        while !queue.waiters.is_empty() && self.try_take() {
            let waiter = queue.waiters.pop_front().expect("checked non-empty");
            self.waiting.fetch_sub(1, SeqCst);
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
        self.limit.store(limit, SeqCst);
        // Raising the limit frees slots without any release; hand them to waiters now.
        self.grant_waiters();
    }

    pub(crate) fn running(&self) -> usize {
        self.hot.running.load(SeqCst)
    }

    /// How long the task at the head of the queue has waited, if any task waits.
    pub(crate) fn oldest_wait(&self) -> Option<Duration> {
        if self.waiting.load(SeqCst) == 0 {
            return None;
        }
        self.queue
            .lock()
            .waiters
            .front()
            .map(|w| w.enqueued.elapsed())
    }

    pub(crate) fn stats(&self) -> GateStats {
        let queue = self.queue.lock();
        GateStats {
            running: self.hot.running.load(SeqCst),
            waited_total: queue.waited_total,
            waited_max: queue.waited_max,
        }
    }
}
