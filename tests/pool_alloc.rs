//! A tracking global allocator (alone in this test binary) shows that pooled buffers leave no live allocation
//! beyond the pool's retained bytes, and nothing at all once the pool and its thread caches are gone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::BufMut;
use tidegate::BufPool;

struct Tracking;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
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

// One test only: the allocator counts every thread of this binary.
#[test]
fn cycles_leave_nothing_beyond_retained_bytes_and_nothing_after_the_pool() {
    const MAX_RETAINED: usize = 512 * 1024;
    // Bookkeeping beyond the idle blocks themselves: thread-cache vectors and counters, a few KiB per thread.
    const BOOKKEEPING: isize = 16 * 1024;
    // Each block carries a small header next to its storage (documented on `max_retained_bytes`): 40 bytes on
    // 64-bit targets, allowed 64 here.
    const BLOCK_HEADER: isize = 64;
    // The first spawn, and the first blocking `recv` on this thread, set up state in std that stays for the life of
    // the process or thread: do both before measuring.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(10));
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();
    let before = live();
    let pool = BufPool::builder().max_retained_bytes(MAX_RETAINED).build();
    let with_empty_pool = live();

    // Two workers; the first stays alive (its thread cache too) until we have measured.
    let (finished_tx, finished_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let first = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            workload(&pool, 100_000);
            finished_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        })
    };
    let second = {
        let pool = pool.clone();
        std::thread::spawn(move || workload(&pool, 100_000))
    };
    second.join().unwrap();
    finished_rx.recv().unwrap();
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
