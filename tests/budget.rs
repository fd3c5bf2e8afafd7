//! `MemoryBudget`: limits, child budgets, waiting, cancellation and live limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidegate::budget::{BudgetError, MemoryBudget};

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

#[tokio::test]
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
    assert_eq!(waiter.await.unwrap(), Ok(50));
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
    tokio::time::sleep(Duration::from_millis(20)).await;
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

#[tokio::test]
async fn raising_the_limit_wakes_waiters_and_lowering_fails_them() {
    let budget = MemoryBudget::new(10);
    let _held = budget.try_reserve(10).unwrap();
    let fits_later = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(5).await.map(|r| r.bytes()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    budget.set_limit(15);
    assert_eq!(fits_later.await.unwrap(), Ok(5));

    let never = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(12).await.map(|r| r.bytes()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    budget.set_limit(11);
    assert!(matches!(
        never.await.unwrap(),
        Err(BudgetError::ExceedsLimit { requested: 12, .. })
    ));
}

#[tokio::test]
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
