//! Loom models of the budget: limits hold at every level, every byte comes back, and the waiter queue loses no
//! wake-up when a release, a limit change or a cancellation races a waiter queueing or being granted.
//!
//! Run with `scripts/loom.sh` (`RUSTFLAGS="--cfg tidegate_loom" cargo test --lib --release loom`). A lost wake-up
//! shows as a deadlock: `block_on` parks the loom thread and loom reports that no thread can make progress.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use ::loom::future::block_on;
use ::loom::thread;

use super::MemoryBudget;

/// Every interleaving of concurrent reservers and releasers: the limit is never exceeded at any level, and every
/// byte comes back.
#[test]
fn loom_limits_hold_and_bytes_come_back() {
    ::loom::model(|| {
        let root = MemoryBudget::new(3);
        let child = root.child(2);
        let threads: Vec<_> = [root.clone(), child.clone()]
            .into_iter()
            .map(|budget| {
                thread::spawn(move || {
                    let r = budget.try_reserve(2);
                    let used = budget.used();
                    assert!(used <= budget.limit());
                    drop(r);
                })
            })
            .collect();
        let mine = child.try_reserve(1);
        assert!(root.used() <= 3 && child.used() <= 2);
        drop(mine);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((root.used(), child.used()), (0, 0));
    });
}

/// A release in one child races a `reserve` in its sibling that the full root holds back: whichever comes first,
/// the waiter gets the byte (the releaser sees it queued, or its retry under the lock sees the byte free).
#[test]
fn loom_a_release_racing_an_enqueue_is_not_lost() {
    ::loom::model(|| {
        let root = MemoryBudget::new(1);
        let (a, b) = (root.child(1), root.child(1));
        let held = b.try_reserve(1).unwrap();
        let releaser = thread::spawn(move || drop(held));
        let got = block_on(a.reserve(1)).unwrap();
        assert_eq!((a.used(), root.used()), (1, 1));
        releaser.join().unwrap();
        drop(got);
        assert_eq!((a.used(), b.used(), root.used()), (0, 0, 0));
    });
}

/// A raised limit races a `reserve` queueing: the waiter gets through.
#[test]
fn loom_a_raised_limit_racing_an_enqueue_is_not_lost() {
    ::loom::model(|| {
        let budget = MemoryBudget::new(1);
        let held = budget.try_reserve(1).unwrap();
        let raiser = thread::spawn({
            let budget = budget.clone();
            move || budget.set_limit(2)
        });
        let got = block_on(budget.reserve(1)).unwrap();
        raiser.join().unwrap();
        drop((got, held));
        assert_eq!(budget.used(), 0);
    });
}

/// A queued `reserve` is dropped while a release may be granting it the byte, and a second waiter queues behind
/// it: the second always gets the byte (passed on if the first was granted it), and nothing leaks.
#[test]
fn loom_a_cancel_racing_a_grant_passes_the_bytes_on() {
    ::loom::model(|| {
        let budget = MemoryBudget::new(1);
        let held = budget.try_reserve(1).unwrap();
        let mut first = Box::pin(budget.reserve(1));
        let waker = futures_util::task::noop_waker_ref();
        assert!(first
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending());
        let second = thread::spawn({
            let budget = budget.clone();
            move || drop(block_on(budget.reserve(1)).unwrap())
        });
        let releaser = thread::spawn(move || drop(held));
        drop(first);
        releaser.join().unwrap();
        second.join().unwrap();
        assert_eq!(budget.used(), 0);
        let mut again = pin!(budget.reserve(1));
        assert!(matches!(
            again.as_mut().poll(&mut Context::from_waker(waker)),
            Poll::Ready(Ok(_))
        ));
    });
}
