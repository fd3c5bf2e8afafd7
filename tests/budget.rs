//! `MemoryBudget`: limits, child budgets, waiting, cancellation and live limits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use proptest::prelude::*;
use tidegate::budget::{BudgetError, MemoryBudget, Reservation};

/// Awaits `fut`, failing the test instead of hanging it if it does not finish in time.
async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out")
}

#[test]
fn refusal_reports_the_numbers_and_changes_nothing() {
    let budget = MemoryBudget::new(100);
    let _held = budget.try_reserve(60).unwrap();
    let err = budget.try_reserve(50).unwrap_err();
    assert_eq!(
        err,
        BudgetError::Exhausted {
            requested: 50,
            used: 60,
            limit: 100
        }
    );
    assert_eq!(budget.used(), 60);
    let m = budget.metrics();
    assert_eq!((m.granted, m.refused, m.peak), (1, 1, 60));
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::OutOfMemory);
}

#[test]
fn child_reservations_count_against_every_ancestor() {
    let root = MemoryBudget::new(1000);
    let conn = root.child(300);
    let stream = conn.child(200);
    let a = stream.try_reserve(200).unwrap();
    assert_eq!((stream.used(), conn.used(), root.used()), (200, 200, 200));
    let b = conn.try_reserve(100).unwrap();
    assert!(matches!(
        conn.try_reserve(1),
        Err(BudgetError::Exhausted { limit: 300, .. })
    ));
    let other = root.child(1000);
    let c = other.try_reserve(700).unwrap();
    assert!(
        other.try_reserve(1).is_err(),
        "the root is full even though `other` is not"
    );
    drop((a, b, c));
    assert_eq!((stream.used(), conn.used(), root.used()), (0, 0, 0));
}

#[test]
fn reservations_shrink_grow_split_and_merge() {
    let budget = MemoryBudget::new(100);
    let mut r = budget.try_reserve(40).unwrap();
    r.try_grow(60).unwrap();
    assert!(r.try_grow(1).is_err());
    assert_eq!(r.bytes(), 100);
    r.shrink_to(30);
    assert_eq!(budget.used(), 30);
    let part = r.split(10);
    assert_eq!((r.bytes(), part.bytes()), (20, 10));
    r.merge(part);
    assert_eq!((r.bytes(), budget.used()), (30, 30));
    drop(r);
    assert_eq!(budget.used(), 0);
}

#[test]
#[should_panic(expected = "different budgets")]
fn merging_across_budgets_panics() {
    let a = MemoryBudget::new(10);
    let b = MemoryBudget::new(10);
    let mut ra = a.try_reserve(1).unwrap();
    ra.merge(b.try_reserve(1).unwrap());
}

#[test]
fn lowering_the_limit_keeps_what_is_held() {
    let budget = MemoryBudget::new(100);
    let held = budget.try_reserve(90).unwrap();
    budget.set_limit(50);
    assert_eq!(budget.used(), 90);
    assert!(budget.try_reserve(1).is_err());
    drop(held);
    assert!(budget.try_reserve(50).is_ok());
    assert!(matches!(
        budget.try_reserve(51),
        Err(BudgetError::ExceedsLimit {
            requested: 51,
            limit: 50
        })
    ));
}

#[tokio::test]
async fn reserve_fails_at_once_when_it_can_never_fit() {
    let root = MemoryBudget::new(10);
    let child = root.child(100);
    let err = child.reserve(11).await.unwrap_err();
    assert_eq!(
        err,
        BudgetError::ExceedsLimit {
            requested: 11,
            limit: 10
        }
    );
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_and_resumes_when_bytes_come_back() {
    let budget = MemoryBudget::new(100);
    let held = budget.try_reserve(80).unwrap();
    let waiter = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(50).await.map(|r| r.bytes()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "50 bytes do not fit next to 80");
    assert_eq!(budget.metrics().waits, 1);
    drop(held);
    assert_eq!(within(waiter).await.unwrap(), Ok(50));
    assert_eq!(budget.used(), 0);
}

// Multi-threaded with a timeout: a waiter that spins instead of sleeping (as an early version did while the parent
// stayed full) then fails the test instead of hanging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_release_wakes_a_child_waiter() {
    let root = MemoryBudget::new(100);
    let child = root.child(100);
    let held = root.try_reserve(100).unwrap();
    let waiter = tokio::spawn({
        let child = child.clone();
        async move { child.reserve(10).await.map(|r| r.bytes()) }
    });
    // Wait (bounded) until the child's reserve is queued, instead of sleeping for a guessed time.
    tokio::time::timeout(Duration::from_secs(10), async {
        while child.metrics().waits == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the child's reserve must start waiting");
    assert_eq!(
        root.used(),
        100,
        "the waiting child holds nothing of the root"
    );
    assert_eq!(child.used(), 0, "nor of itself");
    drop(held);
    let got = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert_eq!(got.expect("the waiter must wake").unwrap(), Ok(10));
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_wakes_waiters_and_lowering_fails_them() {
    let budget = MemoryBudget::new(10);
    let _held = budget.try_reserve(10).unwrap();
    let fits_later = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(5).await.map(|r| r.bytes()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    budget.set_limit(15);
    assert_eq!(within(fits_later).await.unwrap(), Ok(5));

    let never = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(12).await.map(|r| r.bytes()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    budget.set_limit(11);
    assert!(matches!(
        within(never).await.unwrap(),
        Err(BudgetError::ExceedsLimit { requested: 12, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_reserve_reserves_nothing() {
    let budget = MemoryBudget::new(100);
    let held = budget.try_reserve(100).unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(20), budget.reserve(10)).await;
    assert!(timed_out.is_err());
    drop(held);
    assert_eq!(budget.used(), 0, "the cancelled wait must not hold bytes");
    assert!(budget.try_reserve(100).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_under_concurrent_reservers() {
    const LIMIT: usize = 1000;
    let budget = MemoryBudget::new(LIMIT);
    let child = budget.child(600);
    let over_limit = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..16 {
        let budget = if task % 2 == 0 {
            budget.clone()
        } else {
            child.clone()
        };
        let (root, over_limit) = (child.clone(), over_limit.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let bytes = 1 + (task * 37 + i * 13) % 250;
                let r = if i % 2 == 0 {
                    budget.reserve(bytes).await.unwrap()
                } else {
                    match budget.try_reserve(bytes) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                };
                if budget.used() > budget.limit() || root.used() > 600 {
                    over_limit.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
                drop(r);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(over_limit.load(Ordering::Relaxed), 0);
    assert_eq!((budget.used(), child.used()), (0, 0));
    assert!(budget.metrics().peak <= LIMIT);
    assert!(child.metrics().peak <= 600);
}

// ---- Wake-ups: a release wakes only the waiters it lets in (issue #10) ----
//
// These poll `reserve` futures by hand with wakers that count, so the number of wake-ups is observed exactly
// rather than inferred from timing.

/// A waker that counts how often it was woken.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type ReserveFuture<'a> = Pin<Box<dyn Future<Output = Result<Reservation, BudgetError>> + 'a>>;

/// A `reserve` future polled by hand.
struct Polled<'a> {
    fut: ReserveFuture<'a>,
    count: Arc<WakeCount>,
    waker: Waker,
}

impl<'a> Polled<'a> {
    /// Starts `budget.reserve(bytes)` and polls it once.
    fn start(
        budget: &'a MemoryBudget,
        bytes: usize,
    ) -> (Self, Poll<Result<Reservation, BudgetError>>) {
        let count = Arc::new(WakeCount::default());
        let mut polled = Polled {
            fut: Box::pin(budget.reserve(bytes)),
            waker: Waker::from(count.clone()),
            count,
        };
        let first = polled.poll();
        (polled, first)
    }

    /// Starts `budget.reserve(bytes)`, which must have to wait.
    fn waiting(budget: &'a MemoryBudget, bytes: usize) -> Self {
        let (polled, first) = Self::start(budget, bytes);
        assert!(first.is_pending(), "{bytes} bytes must not fit yet");
        polled
    }

    fn poll(&mut self) -> Poll<Result<Reservation, BudgetError>> {
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    fn wakes(&self) -> usize {
        self.count.0.load(Ordering::SeqCst)
    }

    fn granted(&mut self) -> Reservation {
        match self.poll() {
            Poll::Ready(Ok(r)) => r,
            other => panic!("expected a reservation, got {other:?}"),
        }
    }
}

fn wakes(waiters: &[Polled<'_>]) -> Vec<usize> {
    waiters.iter().map(Polled::wakes).collect()
}

#[test]
fn one_release_wakes_only_the_waiter_it_lets_in() {
    const WAITERS: usize = 1000;
    let budget = MemoryBudget::new(10);
    let held = budget.try_reserve(10).unwrap();
    let mut waiters: Vec<_> = (0..WAITERS).map(|_| Polled::waiting(&budget, 10)).collect();
    assert_eq!(budget.metrics().waits, WAITERS as u64);

    drop(held);
    let total: usize = wakes(&waiters).iter().sum();
    assert_eq!(
        total, 1,
        "one release of 10 bytes lets exactly one waiter in"
    );
    assert_eq!(waiters[0].wakes(), 1, "the oldest waiter goes first");
    assert_eq!(
        budget.used(),
        10,
        "the bytes were handed to the woken waiter"
    );
    let first = waiters[0].granted();
    assert_eq!(first.bytes(), 10);
    assert!(waiters[1].poll().is_pending());

    drop(first);
    assert_eq!(wakes(&waiters).iter().sum::<usize>(), 2);
    assert_eq!(waiters[1].wakes(), 1, "then the next oldest");
    drop(waiters);
    assert_eq!(
        budget.used(),
        0,
        "dropped waiters, granted or not, hold nothing"
    );
    assert!(budget.try_reserve(10).is_ok());
}

#[test]
fn a_release_serves_waiters_that_fit_in_arrival_order_skipping_the_rest() {
    let budget = MemoryBudget::new(10);
    let held = budget.try_reserve(10).unwrap();
    let mut w: Vec<_> = [6, 5, 4, 1]
        .into_iter()
        .map(|bytes| Polled::waiting(&budget, bytes))
        .collect();

    drop(held);
    // 6 fits; 5 does not next to it and keeps its place; 4 fits in what is left; 1 does not.
    assert_eq!(wakes(&w), [1, 0, 1, 0]);
    assert_eq!(budget.used(), 10);
    let six = w[0].granted();
    let four = w[2].granted();
    assert!(w[1].poll().is_pending() && w[3].poll().is_pending());

    drop(four);
    assert_eq!(
        wakes(&w),
        [1, 0, 1, 1],
        "4 bytes back: 5 still does not fit, 1 does"
    );
    let one = w[3].granted();
    drop(six);
    assert_eq!(wakes(&w), [1, 1, 1, 1]);
    let five = w[1].granted();
    assert_eq!(budget.used(), 6);
    drop((one, five));
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_child_waiter_is_woken_once_every_level_has_room_whoever_releases() {
    let root = MemoryBudget::new(20);
    let (a, b, c) = (root.child(10), root.child(5), root.child(100));
    let hold_b = b.try_reserve(5).unwrap();
    let hold_a = a.try_reserve(10).unwrap();
    assert_eq!(root.used(), 15);
    let mut on_b = Polled::waiting(&b, 5); // held back by b's own limit
    let mut on_a = Polled::waiting(&a, 5); // held back by a's own limit
    let mut on_c = Polled::waiting(&c, 12); // held back by the root's limit

    drop(hold_a);
    assert_eq!(
        (on_b.wakes(), on_a.wakes(), on_c.wakes()),
        (0, 1, 0),
        "a's release lets a's waiter in; b is still full and 12 more bytes do not fit the root"
    );
    let got_a = on_a.granted();
    drop(hold_b);
    assert_eq!((on_b.wakes(), on_c.wakes()), (1, 0));
    let got_b = on_b.granted();
    assert_eq!(root.used(), 10);

    drop(got_a);
    assert_eq!(
        on_c.wakes(),
        1,
        "a release in sibling a makes room in the root for c's waiter"
    );
    let got_c = on_c.granted();
    assert_eq!((a.used(), b.used(), c.used(), root.used()), (0, 5, 12, 17));
    drop((got_b, got_c));
    assert_eq!(root.used(), 0);
}

#[test]
fn a_granted_reserve_that_is_dropped_passes_the_bytes_on() {
    let budget = MemoryBudget::new(10);
    let held = budget.try_reserve(10).unwrap();
    let chosen = Polled::waiting(&budget, 10);
    let mut next = Polled::waiting(&budget, 10);

    drop(held);
    assert_eq!((chosen.wakes(), next.wakes()), (1, 0));
    // Cancelled after being chosen, before it ran: the bytes it was handed must reach the next waiter.
    drop(chosen);
    assert_eq!(next.wakes(), 1, "the wake-up is passed on");
    let r = next.granted();
    assert_eq!((r.bytes(), budget.used()), (10, 10));
    drop(r);
    assert_eq!(budget.used(), 0);
    assert_eq!(
        budget.metrics().granted,
        3,
        "held, chosen (given back) and next"
    );
}

#[test]
fn a_queued_reserve_that_is_dropped_leaves_the_queue_and_holds_nothing() {
    let budget = MemoryBudget::new(10);
    let held = budget.try_reserve(10).unwrap();
    let mut first = Polled::waiting(&budget, 10);
    let gone = Polled::waiting(&budget, 10);
    let mut last = Polled::waiting(&budget, 10);
    drop(gone);

    drop(held);
    assert_eq!((first.wakes(), last.wakes()), (1, 0));
    drop(first.granted());
    assert_eq!(
        last.wakes(),
        1,
        "the dropped waiter is skipped, not handed bytes"
    );
    drop(last.granted());
    assert_eq!(budget.used(), 0);
}

#[test]
fn lowering_a_limit_fails_only_the_waiters_that_can_never_fit() {
    let budget = MemoryBudget::new(10);
    let held = budget.try_reserve(10).unwrap();
    let mut small = Polled::waiting(&budget, 5);
    let mut big = Polled::waiting(&budget, 9);

    budget.set_limit(8);
    assert_eq!((small.wakes(), big.wakes()), (0, 1));
    assert!(matches!(
        big.poll(),
        Poll::Ready(Err(BudgetError::ExceedsLimit {
            requested: 9,
            limit: 8
        }))
    ));
    budget.set_limit(15);
    assert_eq!(small.wakes(), 1, "raising the limit lets the small one in");
    let r = small.granted();
    assert_eq!(budget.used(), 15);
    drop((r, held));
    assert_eq!(budget.used(), 0);
}

// ---- A reference model of the queue: FIFO among the requests that fit, with hand-off ----

#[derive(Debug, Clone)]
enum Op {
    /// `reserve(bytes)` on budget `on` (0 = root, 1 and 2 = children).
    Reserve { on: usize, bytes: usize },
    /// Drop a held reservation.
    Release(usize),
    /// Drop a pending future (queued, or granted but not yet polled).
    Cancel(usize),
    /// Poll every pending future.
    Run,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 1..=10usize).prop_map(|(on, bytes)| Op::Reserve { on, bytes }),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Run),
    ]
}

/// Budget `i`'s levels, itself first.
fn path(i: usize) -> Vec<usize> {
    if i == 0 {
        vec![0]
    } else {
        vec![i, 0]
    }
}

struct Model {
    limits: [usize; 3],
    used: [usize; 3],
    /// Pending requests in arrival order: (budget, bytes, granted).
    pending: Vec<(usize, usize, bool)>,
}

impl Model {
    fn fits(&self, on: usize, bytes: usize) -> bool {
        path(on)
            .into_iter()
            .all(|l| self.used[l] + bytes <= self.limits[l])
    }

    fn charge(&mut self, on: usize, bytes: usize, sign: isize) {
        for l in path(on) {
            self.used[l] = self.used[l]
                .checked_add_signed(sign * bytes as isize)
                .unwrap();
        }
    }

    /// What a release does: grant, oldest first, every queued request that fits.
    fn offer(&mut self) {
        for i in 0..self.pending.len() {
            let (on, bytes, granted) = self.pending[i];
            if !granted && self.fits(on, bytes) {
                self.charge(on, bytes, 1);
                self.pending[i].2 = true;
            }
        }
    }
}

proptest! {
    #[test]
    fn waiters_are_served_like_the_reference_queue(ops in proptest::collection::vec(op(), 1..60)) {
        let root = MemoryBudget::new(10);
        let budgets = [root.clone(), root.child(6), root.child(4)];
        let mut model = Model { limits: [10, 6, 4], used: [0; 3], pending: Vec::new() };
        let mut held: Vec<(usize, Reservation)> = Vec::new();
        let mut pending: Vec<Polled<'_>> = Vec::new();
        for op in ops {
            match op {
                Op::Reserve { on, bytes } => {
                    let (polled, first) = Polled::start(&budgets[on], bytes);
                    let smallest = path(on).into_iter().map(|l| model.limits[l]).min().unwrap();
                    if bytes > smallest {
                        let never = matches!(first, Poll::Ready(Err(BudgetError::ExceedsLimit { .. })));
                        prop_assert!(never, "{} bytes can never fit budget {}", bytes, on);
                    } else if model.fits(on, bytes) {
                        model.charge(on, bytes, 1);
                        match first {
                            Poll::Ready(Ok(r)) => held.push((on, r)),
                            other => prop_assert!(false, "expected a grant, got {:?}", other),
                        }
                    } else {
                        prop_assert!(first.is_pending());
                        pending.push(polled);
                        model.pending.push((on, bytes, false));
                    }
                }
                Op::Release(i) if !held.is_empty() => {
                    let (on, r) = held.remove(i % held.len());
                    model.charge(on, r.bytes(), -1);
                    drop(r);
                    model.offer();
                }
                Op::Cancel(i) if !pending.is_empty() => {
                    let i = i % pending.len();
                    drop(pending.remove(i));
                    let (on, bytes, granted) = model.pending.remove(i);
                    if granted {
                        model.charge(on, bytes, -1);
                        model.offer();
                    }
                }
                Op::Run => {
                    let mut i = 0;
                    while i < pending.len() {
                        let (on, bytes, granted) = model.pending[i];
                        match pending[i].poll() {
                            Poll::Ready(Ok(r)) if granted => {
                                prop_assert_eq!(r.bytes(), bytes);
                                held.push((on, r));
                                pending.remove(i);
                                model.pending.remove(i);
                            }
                            Poll::Pending if !granted => i += 1,
                            other => prop_assert!(false, "granted: {}, got {:?}", granted, other),
                        }
                    }
                }
                Op::Release(_) | Op::Cancel(_) => {}
            }
            for (i, budget) in budgets.iter().enumerate() {
                prop_assert_eq!(budget.used(), model.used[i], "used of budget {}", i);
            }
            for (polled, &(_, _, granted)) in pending.iter().zip(&model.pending) {
                prop_assert_eq!(polled.wakes(), usize::from(granted), "woken iff granted");
            }
        }
        drop(pending);
        drop(held);
        prop_assert_eq!(root.used(), 0);
    }
}
