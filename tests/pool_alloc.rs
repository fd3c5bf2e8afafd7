//! A tracking global allocator (alone in this test binary) shows that pooled buffers leave no live allocation
//! beyond the pool's retained bytes, nothing at all once the pool and its thread caches are gone, and that a
//! dropped pool's idle storage does not wait for its threads to exit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::BufMut;
use tidegate::BufPool;

struct Tracking;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn live() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

/// Acquire, write, freeze, clone and drop, `cycles` times, over every size class and the unpooled path.
fn workload(pool: &BufPool, cycles: usize) {
    let sizes = [100, 512, 3000, 4096, 9000, 60_000, 70_000];
    for i in 0..cycles {
        let size = sizes[i % sizes.len()];
        let mut buf = pool.try_acquire(size).unwrap();
        buf.put_u64(i as u64);
        let frozen = buf.freeze();
        let clone = frozen.clone();
        let keep_a_while = if i % 7 == 0 {
            Some(frozen.slice(2..))
        } else {
            None
        };
        drop(frozen);
        drop(clone);
        drop(keep_a_while);
    }
}

/// Every wait between threads gives up after this.
const WAIT: Duration = Duration::from_secs(30);

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

// One test only: the allocator counts every thread of this binary, so the scenarios run one after the other.
#[test]
fn live_allocations_follow_the_pools() {
    // The first spawn, and the first blocking `recv` on this thread, set up state in std that stays for the life of
    // the process or thread: do both before measuring.
    // The warm-up thread is joined: until it has exited (its thread-locals destroyed, its handle dropped) it frees
    // memory on its own schedule, and a measurement taken meanwhile sees the count drop later (`left: -104`).
    let (tx, rx) = mpsc::channel();
    let warm_up = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.send(()).unwrap();
    });
    rx.recv_timeout(WAIT).unwrap();
    warm_up.join().unwrap();

    cycles_leave_nothing_beyond_retained_bytes_and_nothing_after_the_pool();
    a_dropped_pools_idle_storage_goes_on_the_threads_next_operation();
    a_pool_dropped_on_a_caching_thread_frees_that_threads_cache_at_once();
    storage_coming_back_after_the_pool_is_dropped_is_freed();
    an_allocation_miss_allocates_the_block_and_nothing_else();
}

fn cycles_leave_nothing_beyond_retained_bytes_and_nothing_after_the_pool() {
    const MAX_RETAINED: usize = 512 * 1024;
    // Bookkeeping beyond the idle blocks themselves: thread-cache vectors and counters, a few KiB per thread.
    const BOOKKEEPING: isize = 16 * 1024;
    // Each block carries a small header next to its storage (documented on `max_retained_bytes`): 40 bytes on
    // 64-bit targets, allowed 64 here.
    const BLOCK_HEADER: isize = 64;
    let before = live();
    let pool = BufPool::builder()
        .max_retained_bytes(MAX_RETAINED)
        .build()
        .unwrap();
    let with_empty_pool = live();

    // Two workers; the first stays alive (its thread cache too) until we have measured.
    let (finished_tx, finished_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let first = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            workload(&pool, 100_000);
            finished_tx.send(()).unwrap();
            done_rx.recv_timeout(WAIT).unwrap();
        })
    };
    let second = {
        let pool = pool.clone();
        std::thread::spawn(move || workload(&pool, 100_000))
    };
    second.join().unwrap();
    finished_rx.recv_timeout(WAIT).unwrap();
    let metrics = pool.metrics();
    let m = metrics.total;
    let retained_blocks: usize = metrics.classes.iter().map(|c| c.retained_buffers).sum();
    drop(metrics);
    let grown = live() - with_empty_pool;
    done_tx.send(()).unwrap();
    first.join().unwrap();

    assert!(m.acquired >= 100_000);
    assert!(m.retained_bytes <= MAX_RETAINED);
    assert!(
        grown
            <= m.retained_bytes as isize
                + retained_blocks as isize * BLOCK_HEADER
                + 2 * BOOKKEEPING,
        "live grew by {grown} with {} retained in {retained_blocks} blocks",
        m.retained_bytes
    );
    let m = pool.metrics().total;
    assert_eq!(
        (m.acquired, m.returned, m.outstanding_buffers),
        (200_000, 200_000, 0)
    );

    // Thread caches hand their blocks back when their thread exits; dropping the pool frees everything.
    drop((done_tx, finished_rx));
    drop(pool);
    assert_eq!(
        live() - before,
        0,
        "bytes still live after the pool and its threads are gone"
    );
}

/// Storage in a thread cache's idle lists: 16 blocks of 16 KiB fill the default 256 KiB quota exactly.
const CACHED_BLOCKS: usize = 16;
const CACHED_SIZE: usize = 16 * 1024;

/// Leaves `CACHED_BLOCKS` idle blocks in this thread's cache for `pool`.
fn fill_this_threads_cache(pool: &BufPool) {
    let held: Vec<_> = (0..CACHED_BLOCKS)
        .map(|_| pool.try_acquire(CACHED_SIZE).unwrap())
        .collect();
    drop(held);
    let m = pool.metrics().total;
    assert_eq!(m.retained_bytes, CACHED_BLOCKS * CACHED_SIZE);
}

/// A long-lived thread caches storage for pools `a` and `b`; `a` is dropped elsewhere; the thread's next operation,
/// on `b`, served from its cache, lets go of `a`'s idle storage.
fn a_dropped_pools_idle_storage_goes_on_the_threads_next_operation() {
    let (a, b) = (BufPool::new(), BufPool::new());
    let (to_worker, worker_rx) = mpsc::channel::<()>();
    let (to_main, main_rx) = mpsc::channel::<()>();
    let worker = {
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            drop(b.try_acquire(4096).unwrap()); // `b`'s cache now holds one idle 4 KiB block
            fill_this_threads_cache(&a);
            drop(a);
            to_main.send(()).unwrap();
            worker_rx.recv_timeout(WAIT).unwrap();
            drop(b.try_acquire(4096).unwrap()); // a hit in `b`'s cache: the fast path
            to_main.send(()).unwrap();
            worker_rx.recv_timeout(WAIT).unwrap();
        })
    };
    main_rx.recv_timeout(WAIT).unwrap();
    let with_a = live();
    drop(a);
    to_worker.send(()).unwrap();
    main_rx.recv_timeout(WAIT).unwrap();
    let freed = with_a - live();
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    assert!(
        freed >= (CACHED_BLOCKS * CACHED_SIZE) as isize,
        "only {freed} bytes freed after the thread's next operation; the dropped pool's cache is still there"
    );
    drop(b);
}

/// The thread that drops a pool's last handle lets go of its own cache for that pool right away.
fn a_pool_dropped_on_a_caching_thread_frees_that_threads_cache_at_once() {
    let (to_main, main_rx) = mpsc::channel::<isize>();
    let (to_worker, worker_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let pool = BufPool::new();
        fill_this_threads_cache(&pool);
        let with_pool = live();
        drop(pool);
        to_main.send(with_pool - live()).unwrap();
        worker_rx.recv_timeout(WAIT).unwrap();
    });
    let freed = main_rx.recv_timeout(WAIT).unwrap();
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    assert!(
        freed >= (CACHED_BLOCKS * CACHED_SIZE) as isize,
        "only {freed} bytes freed when the pool was dropped on the thread caching it"
    );
}

/// Storage on the shared lists, and storage that comes back after the last handle is gone, is freed even while
/// one buffer keeps the pool's internals alive: nobody can acquire it again.
fn storage_coming_back_after_the_pool_is_dropped_is_freed() {
    let before = live();
    let pool = BufPool::builder().thread_cache_bytes(0).build().unwrap();
    let with_empty_pool = live();
    let mut held: Vec<_> = (0..17)
        .map(|_| pool.try_acquire(CACHED_SIZE).unwrap())
        .collect();
    let keep = held.pop().unwrap();
    let later = held.split_off(8);
    drop(held); // onto the shared list
    assert_eq!(pool.metrics().total.retained_bytes, 8 * CACHED_SIZE);
    drop(pool);
    drop(later); // back after the last handle
    let kept = live() - with_empty_pool;
    assert!(
        kept < 2 * CACHED_SIZE as isize,
        "{kept} bytes still live with one {CACHED_SIZE}-byte buffer out"
    );
    drop(keep);
    assert_eq!(live(), before);
}

/// A miss allocates the block (its header and its storage) and nothing else: sampling the peak takes no snapshot.
fn an_allocation_miss_allocates_the_block_and_nothing_else() {
    for thread_cache_bytes in [0, 256 * 1024] {
        let pool = BufPool::builder()
            .thread_cache_bytes(thread_cache_bytes)
            .build()
            .unwrap();
        drop(pool.try_acquire(4096).unwrap()); // creates this thread's cache, if any
        let hit = pool.try_acquire(4096).unwrap();
        let before = allocations();
        let miss = pool.try_acquire(4096).unwrap();
        let allocated = allocations() - before;
        assert_eq!(
            allocated, 2,
            "a miss with thread_cache_bytes({thread_cache_bytes}) made {allocated} allocations"
        );
        assert_eq!(pool.metrics().total.peak_outstanding_bytes, 2 * 4096);
        drop((hit, miss));
    }
}
