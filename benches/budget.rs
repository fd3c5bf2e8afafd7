//! A release while 10,000 `reserve` calls wait on an exhausted budget (issue #10).
//!
//! `budget_release_10k_waiters` measures one release→wake→grant cycle: drop the reservation that holds the whole
//! budget, poll every task that was woken, take the reservation of the one that got the bytes (it becomes the held
//! one for the next cycle) and start a fresh `reserve` in its place, polled once so it queues. So 10,000 requests
//! wait before and after every cycle, and each cycle lets exactly one through.
//!
//! * `tidegate`: `MemoryBudget::reserve`. The release hands the bytes to the oldest waiter and wakes only it.
//! * `notify_all`: a minimal budget in this file that does what tidegate did before the fix: one
//!   `tokio::sync::Notify` per budget, `notify_waiters` on every release when anyone waits, and every woken task
//!   re-arms its `Notified` and retries a compare-and-swap. The release wakes all 10,000; one wins, 9,999 re-queue.
//!
//! Both sides run on the same hand-rolled executor (below): each task has its own waker that appends it to a ready
//! list once, and a cycle polls exactly the tasks on that list. Both budgets hold 64 bytes and every request is for
//! 64 bytes. So the two sides do the same useful work (one release, one grant, one new waiter queued) and differ only
//! in how many tasks a release wakes and what a woken task then does: the ratio is the cost of the herd.
//!
//! Under `cargo test` (no `--bench` argument) 1,000 waiters instead of 10,000 keep the test run quick.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use tidegate::MemoryBudget;
use tokio::sync::Notify;

const BYTES: usize = 64;

fn benching() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Tasks that are woken go on this list once each, until polled.
struct Ready {
    queued: Vec<AtomicBool>,
    list: Mutex<Vec<usize>>,
}

struct TaskWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.ready.queued[self.index].swap(true, Ordering::AcqRel) {
            self.ready.list.lock().unwrap().push(self.index);
        }
    }
}

/// `waiters` hand-polled `reserve` futures on an exhausted budget, and the reservation that exhausts it.
struct Herd<F: Future> {
    tasks: Vec<Pin<Box<F>>>,
    wakers: Vec<Waker>,
    ready: Arc<Ready>,
    held: Option<F::Output>,
    start: Box<dyn Fn() -> F>,
    polled: Vec<usize>,
}

impl<F: Future> Herd<F> {
    /// `held` must exhaust the budget that the futures made by `start` reserve from.
    fn new(waiters: usize, held: F::Output, start: impl Fn() -> F + 'static) -> Self {
        let ready = Arc::new(Ready {
            queued: (0..waiters).map(|_| AtomicBool::new(false)).collect(),
            list: Mutex::new(Vec::with_capacity(waiters)),
        });
        let wakers = (0..waiters)
            .map(|index| {
                Waker::from(Arc::new(TaskWaker {
                    index,
                    ready: ready.clone(),
                }))
            })
            .collect();
        let mut herd = Herd {
            tasks: Vec::with_capacity(waiters),
            wakers,
            ready,
            held: Some(held),
            start: Box::new(start),
            polled: Vec::with_capacity(waiters),
        };
        for index in 0..waiters {
            herd.tasks.push(Box::pin((herd.start)()));
            assert!(
                herd.poll(index).is_pending(),
                "the budget must be exhausted"
            );
        }
        herd
    }

    fn poll(&mut self, index: usize) -> Poll<F::Output> {
        self.tasks[index]
            .as_mut()
            .poll(&mut Context::from_waker(&self.wakers[index]))
    }

    /// Release, poll the woken, hand the bytes on to the next cycle and queue a fresh waiter.
    fn cycle(&mut self) {
        drop(self.held.take());
        std::mem::swap(&mut self.polled, &mut self.ready.list.lock().unwrap());
        let mut granted = None;
        for i in 0..self.polled.len() {
            let index = self.polled[i];
            self.ready.queued[index].store(false, Ordering::Release);
            if let Poll::Ready(out) = self.poll(index) {
                assert!(granted.is_none(), "one release of 64 bytes admits one");
                granted = Some((index, out));
            }
        }
        self.polled.clear();
        let (index, out) = granted.expect("the release must admit a waiter");
        self.held = Some(black_box(out));
        self.tasks[index].set((self.start)());
        assert!(self.poll(index).is_pending());
    }
}

fn release_10k_waiters(c: &mut Criterion) {
    let waiters = if benching() { 10_000 } else { 1_000 };
    let mut group = c.benchmark_group("budget_release_10k_waiters");
    group.bench_function("tidegate", |b| {
        let budget = MemoryBudget::new(BYTES);
        let held = Ok(budget.try_reserve(BYTES).unwrap());
        let mut herd = Herd::new(waiters, held, move || {
            let budget = budget.clone();
            async move { budget.reserve(BYTES).await }
        });
        b.iter(|| herd.cycle());
    });
    group.bench_function("notify_all", |b| {
        let budget = Arc::new(NotifyAllBudget::new(BYTES));
        let held = budget.try_reserve(BYTES).unwrap();
        let mut herd = Herd::new(waiters, held, move || {
            let budget = budget.clone();
            async move { budget.reserve(BYTES).await }
        });
        b.iter(|| herd.cycle());
    });
    group.finish();
}

/// The baseline: a one-level budget that wakes every waiter on each release (tidegate's code before issue #10).
struct NotifyAllBudget {
    limit: usize,
    used: AtomicUsize,
    waiters: AtomicUsize,
    released: Notify,
}

/// The baseline's reservation.
struct Held {
    budget: Arc<NotifyAllBudget>,
    bytes: usize,
}

impl NotifyAllBudget {
    fn new(limit: usize) -> Self {
        NotifyAllBudget {
            limit,
            used: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            let wanted = used.checked_add(bytes).filter(|&w| w <= self.limit)?;
            match self
                .used
                .compare_exchange_weak(used, wanted, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Some(Held {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    async fn reserve(self: &Arc<Self>, bytes: usize) -> Held {
        if let Some(held) = self.try_reserve(bytes) {
            return held;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Leave(&self.waiters);
        loop {
            // Register before retrying, so a release between the retry and the await still wakes us.
            let mut released = pin!(self.released.notified());
            released.as_mut().enable();
            if let Some(held) = self.try_reserve(bytes) {
                return held;
            }
            released.await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
        if self.budget.waiters.load(Ordering::SeqCst) > 0 {
            self.budget.released.notify_waiters();
        }
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

criterion_group!(benches, release_10k_waiters);
criterion_main!(benches);
