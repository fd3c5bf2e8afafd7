//! `BufPool` and `PooledBuf`: reuse, caps, budgets, counters and leak reports.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use tidegate::budget::MemoryBudget;
use tidegate::buf::{BufPool, LeakTracking, PoolError, PooledBuf};

fn storage_addr(buf: &PooledBuf) -> usize {
    buf.as_ptr() as usize
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BufPool>();
    send_sync::<PooledBuf>();
    send_sync::<PoolError>();
}

#[test]
fn storage_comes_back_after_the_last_bytes_drops() {
    let pool = BufPool::new();
    let mut buf = pool.try_acquire(4096).unwrap();
    let addr = storage_addr(&buf);
    buf.put_slice(b"abcdef");
    let frozen = buf.freeze();
    let slice = frozen.slice(2..4);
    drop(frozen);
    let other = pool.try_acquire(4096).unwrap();
    assert_ne!(
        storage_addr(&other),
        addr,
        "`slice` still holds the storage"
    );
    assert_eq!(&slice[..], b"cd");
    drop(slice);
    let again = pool.try_acquire(4096).unwrap();
    assert_eq!(storage_addr(&again), addr, "the same allocation is reused");
    let m = pool.metrics();
    assert_eq!((m.total.misses, m.total.hits), (2, 1));
}

fn reused_after_drop_on_another_thread(pool: BufPool) {
    let mut buf = pool.try_acquire(4096).unwrap();
    let addr = storage_addr(&buf);
    buf.put_slice(b"crosses threads");
    let frozen: Bytes = buf.freeze();
    let clone = frozen.clone();
    std::thread::spawn(move || {
        assert_eq!(&clone[..], b"crosses threads");
        drop(clone);
        drop(frozen);
    })
    .join()
    .unwrap();
    assert_eq!(pool.metrics().total.outstanding_buffers, 0);
    let again = pool.try_acquire(4096).unwrap();
    assert_eq!(storage_addr(&again), addr);
}

#[test]
fn storage_dropped_on_another_thread_is_reused() {
    reused_after_drop_on_another_thread(BufPool::new());
}

#[test]
fn storage_dropped_on_another_thread_is_reused_without_thread_caches() {
    reused_after_drop_on_another_thread(BufPool::builder().thread_cache_bytes(0).build().unwrap());
}

#[test]
fn dropping_an_unfrozen_buffer_returns_it() {
    let pool = BufPool::new();
    let buf = pool.try_acquire(100).unwrap();
    let addr = storage_addr(&buf);
    assert_eq!(pool.metrics().classes[0].outstanding_buffers, 1);
    drop(buf);
    let m = pool.metrics();
    assert_eq!(m.classes[0].outstanding_buffers, 0);
    assert_eq!(m.classes[0].retained_buffers, 1);
    assert_eq!(storage_addr(&pool.try_acquire(1).unwrap()), addr);
}

#[test]
fn a_buffer_never_grows_beyond_its_class() {
    let pool = BufPool::builder().size_classes([16]).build().unwrap();
    let mut buf = pool.try_acquire(10).unwrap();
    assert_eq!((buf.capacity(), buf.remaining_mut()), (16, 16));
    buf.put_slice(&[7; 16]);
    assert_eq!(buf.remaining_mut(), 0);
    let overflow = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| buf.put_u8(1)));
    assert!(overflow.is_err(), "BufMut panics rather than growing");
    assert_eq!(buf.len(), 16);
}

#[test]
fn reading_into_the_unfilled_part() {
    let pool = BufPool::new();
    let mut buf = pool.try_acquire(512).unwrap();
    buf.put_slice(b"ab");
    buf.unfilled_mut()[..3].copy_from_slice(b"cde");
    buf.advance_filled(3);
    assert_eq!(&buf[..], b"abcde");
    buf.truncate(1);
    assert_eq!(&buf[..], b"a");
    buf.clear();
    assert!(buf.is_empty());
    assert!(buf.freeze().is_empty());
    assert_eq!(
        pool.metrics().total.outstanding_buffers,
        0,
        "an empty freeze returns at once"
    );
}

#[test]
fn requests_above_the_largest_class_are_unpooled() {
    let budget = MemoryBudget::new(1 << 20);
    let pool = BufPool::builder()
        .size_classes([512, 4096])
        .budget(Some(budget.clone()))
        .build()
        .unwrap();
    let big = pool.try_acquire(10_000).unwrap();
    assert_eq!(big.capacity(), 10_000);
    assert_eq!(budget.used(), 10_000);
    let m = pool.metrics().total;
    assert_eq!((m.unpooled, m.outstanding_bytes), (1, 10_000));
    drop(big);
    let m = pool.metrics().total;
    assert_eq!((m.outstanding_buffers, m.retained_bytes), (0, 0));
    assert_eq!(budget.used(), 0);
}

#[test]
fn retained_memory_stays_under_the_cap() {
    let pool = BufPool::builder()
        .max_retained_bytes(64 * 1024)
        .thread_cache_bytes(16 * 1024)
        .build()
        .unwrap();
    let held: Vec<_> = (0..100).map(|_| pool.try_acquire(4096).unwrap()).collect();
    drop(held);
    let m = pool.metrics().total;
    assert_eq!(m.outstanding_buffers, 0);
    assert!(
        m.retained_bytes <= 64 * 1024,
        "retained {}",
        m.retained_bytes
    );
    assert!(m.retained_bytes >= 16 * 1024, "the pool did keep some");
    pool.set_max_retained_bytes(16 * 1024);
    let m = pool.metrics().total;
    assert!(
        m.retained_bytes <= 16 * 1024,
        "trimmed to {}",
        m.retained_bytes
    );
}

#[test]
fn retained_counts_are_exact_across_the_thread_cache_and_the_shared_list() {
    // This thread's cache may keep two 4 KiB blocks; the shared list takes the rest, under the cap.
    let pool = BufPool::builder()
        .max_retained_bytes(64 * 1024)
        .thread_cache_bytes(8 * 1024)
        .build()
        .unwrap();
    let counts = |pool: &BufPool| {
        let class = pool.metrics().classes[1];
        (
            class.acquired,
            class.returned,
            class.misses,
            class.retained_buffers,
        )
    };
    let held: Vec<_> = (0..5).map(|_| pool.try_acquire(4096).unwrap()).collect();
    drop(held);
    assert_eq!(
        counts(&pool),
        (5, 5, 5, 5),
        "2 cached here, 3 on the shared list"
    );
    let held: Vec<_> = (0..5).map(|_| pool.try_acquire(4096).unwrap()).collect();
    assert_eq!(
        counts(&pool),
        (10, 5, 5, 0),
        "all five reused, none allocated"
    );
    drop(held);
    assert_eq!(counts(&pool), (10, 10, 5, 5));
}

/// The peak is sampled on every allocation from every thread's counters, including those of caches already gone,
/// and unpooled buffers count too.
#[test]
fn the_peak_sampled_on_an_allocation_counts_every_threads_buffers() {
    let pool = BufPool::new();
    let big = pool.try_acquire(100_000).unwrap();
    let from_a_gone_thread: Vec<PooledBuf> = std::thread::spawn({
        let pool = pool.clone();
        move || (0..3).map(|_| pool.try_acquire(4096).unwrap()).collect()
    })
    .join()
    .unwrap();
    let mine: Vec<_> = (0..2).map(|_| pool.try_acquire(4096).unwrap()).collect();
    drop((big, from_a_gone_thread, mine));
    let m = pool.metrics().total;
    assert_eq!((m.outstanding_bytes, m.misses), (0, 5));
    assert_eq!(m.peak_outstanding_bytes, 100_000 + 5 * 4096);

    // Five come from idle storage; the sixth allocates and samples six outstanding.
    let again: Vec<_> = (0..6).map(|_| pool.try_acquire(4096).unwrap()).collect();
    drop(again);
    let m = pool.metrics().total;
    assert_eq!((m.outstanding_bytes, m.misses), (0, 6));
    assert_eq!(m.peak_outstanding_bytes, 100_000 + 5 * 4096);
    let m = pool.metrics().classes[1];
    assert_eq!(m.peak_outstanding_buffers, 6);
}

/// Lowering the cap reaches the idle storage other threads cache for the pool: on their next acquire or release,
/// from any pool, their quotas go and what no longer fits under the cap is freed.
#[test]
fn lowering_the_cap_reaches_other_threads_caches_on_their_next_operation() {
    const WAIT: Duration = Duration::from_secs(30);
    let pool = BufPool::builder()
        .max_retained_bytes(1 << 20)
        .build()
        .unwrap();
    let (to_worker, worker_rx) = std::sync::mpsc::channel::<()>();
    let (to_main, main_rx) = std::sync::mpsc::channel::<()>();
    let worker = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let other = BufPool::new();
            drop(other.try_acquire(100).unwrap()); // this thread's cache for `other` keeps the block
                                                   // 16 blocks of 16 KiB: the default 256 KiB cache quota, full.
            let held: Vec<_> = (0..16)
                .map(|_| pool.try_acquire(16 * 1024).unwrap())
                .collect();
            drop(held);
            to_main.send(()).unwrap();
            worker_rx.recv_timeout(WAIT).unwrap();
            drop(other.try_acquire(100).unwrap()); // another pool's operation, served from its cache
            to_main.send(()).unwrap();
            worker_rx.recv_timeout(WAIT).unwrap();
        })
    };
    main_rx.recv_timeout(WAIT).unwrap();
    assert_eq!(pool.metrics().total.retained_bytes, 256 * 1024);
    pool.set_max_retained_bytes(64 * 1024);
    to_worker.send(()).unwrap();
    main_rx.recv_timeout(WAIT).unwrap();
    let m = pool.metrics().total;
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(
        m.retained_bytes,
        64 * 1024,
        "what fits under the new cap stays"
    );
    assert_eq!((m.acquired, m.returned), (16, 16));
}

/// More threads than the pool has cache slots, starting and exiting in waves: the threads beyond the slots take the
/// shared path, slots are reused, and every count adds up.
#[test]
fn counts_stay_exact_when_more_threads_than_cache_slots_come_and_go() {
    // 64 KiB / 16 KiB: four threads may cache at once.
    let pool = BufPool::builder()
        .max_retained_bytes(64 * 1024)
        .thread_cache_bytes(16 * 1024)
        .build()
        .unwrap();
    const THREADS: usize = 8;
    const CYCLES: usize = 50;
    for _wave in 0..3 {
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..CYCLES {
                        let a = pool.try_acquire([512, 4096][(t + i) % 2]).unwrap();
                        let b = pool.try_acquire(4096).unwrap();
                        drop(a);
                        drop(b.freeze());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    let m = pool.metrics().total;
    let acquired = (3 * THREADS * CYCLES * 2) as u64;
    assert_eq!((m.acquired, m.returned), (acquired, acquired));
    assert_eq!((m.outstanding_buffers, m.outstanding_bytes), (0, 0));
    assert_eq!(m.hits + m.misses, acquired);
    assert!(
        m.retained_bytes <= 64 * 1024,
        "retained {}",
        m.retained_bytes
    );
    assert!(m.peak_outstanding_bytes <= THREADS * 2 * 4096);
}

#[test]
fn a_zero_cap_pool_keeps_nothing_but_still_counts() {
    let pool = BufPool::builder().max_retained_bytes(0).build().unwrap();
    drop(pool.try_acquire(4096).unwrap());
    let m = pool.metrics().total;
    assert_eq!(
        (m.acquired, m.returned, m.retained_bytes, m.misses),
        (1, 1, 0, 1)
    );
}

#[test]
fn the_budget_refuses_and_nothing_is_allocated() {
    let budget = MemoryBudget::new(8192);
    let pool = BufPool::builder()
        .budget(Some(budget.clone()))
        .build()
        .unwrap();
    let a = pool.try_acquire(4096).unwrap();
    let b = pool.try_acquire(3000).unwrap();
    let err = pool.try_acquire(1).unwrap_err();
    let PoolError::Budget { capacity, .. } = err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(capacity, 512);
    let m = pool.metrics().total;
    assert_eq!((m.refused, m.acquired), (1, 2));
    drop((a, b));
    assert_eq!(budget.used(), 0);
}

#[test]
fn buffers_outlive_the_pool_handle() {
    let budget = MemoryBudget::new(1 << 20);
    let pool = BufPool::builder()
        .budget(Some(budget.clone()))
        .build()
        .unwrap();
    let mut buf = pool.try_acquire(100).unwrap();
    buf.put_slice(b"still here");
    let frozen = buf.freeze();
    let other_thread = {
        let mut b = pool.try_acquire(100).unwrap();
        b.put_slice(b"x");
        b.freeze()
    };
    drop(pool);
    assert_eq!(&frozen[..], b"still here");
    std::thread::spawn(move || drop(other_thread))
        .join()
        .unwrap();
    drop(frozen);
    assert_eq!(budget.used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_return_to_zero_after_a_concurrent_workload() {
    let budget = MemoryBudget::new(64 << 20);
    let pool = BufPool::builder()
        .budget(Some(budget.clone()))
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let consumer = tokio::spawn(async move {
        let mut seen = 0usize;
        while let Some(frame) = rx.recv().await {
            seen += frame.len();
        }
        seen
    });
    let mut producers = Vec::new();
    for p in 0..4usize {
        let (pool, tx) = (pool.clone(), tx.clone());
        producers.push(tokio::spawn(async move {
            let mut sent = 0;
            for i in 0..2000usize {
                let size = [10, 700, 5000, 20_000, 100_000][(p + i) % 5];
                let mut buf = pool.acquire(size).await.unwrap();
                buf.put_bytes(1, size.min(64));
                let frame = buf.freeze();
                if i % 3 == 0 {
                    drop(frame.clone());
                }
                sent += frame.len();
                tx.send(frame).await.unwrap();
            }
            sent
        }));
    }
    drop(tx);
    let mut sent = 0;
    for p in producers {
        sent += p.await.unwrap();
    }
    assert_eq!(consumer.await.unwrap(), sent);
    let m = pool.metrics();
    assert_eq!(m.total.acquired, 8000);
    assert_eq!(m.total.returned, 8000);
    assert_eq!(
        (m.total.outstanding_buffers, m.total.outstanding_bytes),
        (0, 0)
    );
    assert!(m.classes.iter().all(|c| c.outstanding_buffers == 0));
    assert_eq!(m.total.unpooled, 1600);
    assert!(m.total.peak_outstanding_bytes > 0);
    assert_eq!(budget.used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_under_concurrent_acquire() {
    const BUFFERS: usize = 6;
    let budget = MemoryBudget::new(BUFFERS * 4096);
    let pool = BufPool::builder()
        .budget(Some(budget.clone()))
        .build()
        .unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (pool, budget, live, peak) = (pool.clone(), budget.clone(), live.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..300 {
                let buf = if (t + i) % 2 == 0 {
                    pool.acquire(4096).await.unwrap()
                } else {
                    match pool.try_acquire(4000) {
                        Ok(buf) => buf,
                        Err(PoolError::Budget { .. }) => {
                            refused += 1;
                            continue;
                        }
                        Err(other) => panic!("{other:?}"),
                    }
                };
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                assert!(budget.used() <= BUFFERS * 4096);
                tokio::task::yield_now().await;
                live.fetch_sub(1, Ordering::SeqCst);
                drop(buf);
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= BUFFERS);
    assert_eq!(pool.metrics().total.refused, refused);
    assert_eq!(pool.metrics().total.outstanding_buffers, 0);
    assert_eq!(budget.used(), 0);
    assert!(budget.metrics().peak <= BUFFERS * 4096);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_takes_nothing() {
    let pool = BufPool::builder()
        .max_outstanding_bytes(4096)
        .build()
        .unwrap();
    let held = pool.acquire(4096).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(20), pool.acquire(4096)).await;
    assert!(waited.is_err());
    drop(held);
    let m = pool.metrics().total;
    assert_eq!((m.acquired, m.outstanding_buffers), (1, 0));
    assert_eq!(pool.budget().unwrap().used(), 0);
}

#[test]
fn leak_report_names_the_acquisition_site() {
    let pool = BufPool::builder()
        .leak_tracking(LeakTracking::All)
        .build()
        .unwrap();
    let line = line!() + 1;
    let held = pool.try_acquire(2000).unwrap();
    drop(pool.try_acquire(10).unwrap()); // returned: not a leak
    std::thread::sleep(Duration::from_millis(30));
    let report = pool.leak_report(Duration::from_millis(20));
    assert_eq!(report.outstanding_buffers, 1);
    assert_eq!(report.leaks.len(), 1);
    let leak = &report.leaks[0];
    assert_eq!(
        (leak.location.file(), leak.location.line()),
        (file!(), line)
    );
    assert_eq!(leak.capacity, 4096);
    assert!(leak.age >= Duration::from_millis(20));
    assert!(leak.backtrace.is_none());
    assert!(report.to_string().contains(&format!("{}:{line}", file!())));
    assert!(pool.leak_report(Duration::from_secs(60)).leaks.is_empty());
    drop(held);
    assert!(pool.leak_report(Duration::ZERO).leaks.is_empty());
}

#[test]
fn sampled_tracking_records_one_in_n_with_a_backtrace() {
    let pool = BufPool::builder()
        .leak_tracking(LeakTracking::Sampled(NonZeroU32::new(4).unwrap()))
        .build()
        .unwrap();
    let held: Vec<_> = (0..8).map(|_| pool.try_acquire(64).unwrap()).collect();
    let report = pool.leak_report(Duration::ZERO);
    assert_eq!(report.outstanding_buffers, 8);
    assert_eq!(report.leaks.len(), 2);
    assert!(report.leaks.iter().all(|leak| leak.backtrace.is_some()));
    drop(held);
}

#[test]
fn tracking_off_lists_nothing() {
    let pool = BufPool::new();
    let _held = pool.try_acquire(64).unwrap();
    let report = pool.leak_report(Duration::ZERO);
    assert_eq!((report.outstanding_buffers, report.leaks.len()), (1, 0));
}

/// The chain an error reporter (`anyhow`'s `{:#}`, say) prints: each error's message, then its source's.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        messages.push(err.to_string());
        next = err.source();
    }
    messages
}

/// Asserts that every cause's text appears exactly once in the printed chain.
fn assert_each_cause_printed_once(err: &(dyn std::error::Error + 'static)) {
    let messages = chain(err);
    let printed = messages.join(": ");
    for message in &messages {
        assert_eq!(
            printed.matches(message.as_str()).count(),
            1,
            "{message:?} is printed more than once in {printed:?}"
        );
    }
}

#[test]
fn a_refusal_prints_the_budgets_reason_once_in_its_chain() {
    let pool = BufPool::builder()
        .max_outstanding_bytes(4096)
        .build()
        .unwrap();
    let _held = pool.try_acquire(4096).unwrap();
    for err in [
        pool.try_acquire(4096).unwrap_err(),    // exhausted
        pool.try_acquire(1 << 20).unwrap_err(), // exceeds the limit
    ] {
        let messages = chain(&err);
        assert_eq!(
            messages.len(),
            2,
            "the pool's refusal, then the budget's reason: {messages:?}"
        );
        assert_each_cause_printed_once(&err);
        let io = std::io::Error::from(err);
        assert_eq!(
            io.kind(),
            std::io::ErrorKind::OutOfMemory,
            "a refusal is not WouldBlock"
        );
        assert_each_cause_printed_once(&io);
    }
}

#[test]
fn build_refuses_configurations_that_cannot_work() {
    assert_eq!(
        BufPool::builder().size_classes([]).build().unwrap_err(),
        PoolError::NoSizeClasses
    );
    assert_eq!(
        BufPool::builder()
            .size_classes([512, 0])
            .build()
            .unwrap_err(),
        PoolError::ZeroSizeClass
    );
    let err = BufPool::builder()
        .max_retained_bytes(64 * 1024)
        .thread_cache_bytes(128 * 1024)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::ThreadCacheExceedsRetained {
            thread_cache_bytes: 128 * 1024,
            max_retained_bytes: 64 * 1024
        }
    );
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    );
    // The default thread cache only shrinks away under a small cap; a pass-through pool stays valid.
    assert!(BufPool::builder().max_retained_bytes(0).build().is_ok());
    assert!(BufPool::builder()
        .max_retained_bytes(64 * 1024)
        .thread_cache_bytes(0)
        .build()
        .is_ok());
    let pool = BufPool::builder()
        .size_classes([4096, 512, 4096])
        .build()
        .unwrap();
    assert_eq!(pool.size_classes(), vec![512, 4096]);
}

#[test]
fn a_budget_set_to_none_is_removed() {
    let budget = MemoryBudget::new(1024);
    let pool = BufPool::builder()
        .budget(Some(budget.clone()))
        .budget(None)
        .build()
        .unwrap();
    assert!(pool.budget().is_none());
    drop(pool.try_acquire(4096).unwrap());
    assert_eq!(budget.metrics().granted, 0);
}
