//! A counting global allocator (alone in this test binary) shows that a broadcast allocates nothing per member:
//! the frame is shared by reference count, and the members' queues reuse their storage.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tidegate::conn::Group;
use tidegate::watermark::{self, Config, Limits, Receiver};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MEMBERS: usize = 1_000;

/// Allocations made by `f` (on any thread; this binary runs one test).
fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let result = f();
    (ALLOCATIONS.load(Ordering::SeqCst) - before, result)
}

fn drain_all(receivers: &mut [Receiver<Bytes>]) {
    for rx in receivers {
        while let Ok(Some(_)) = rx.try_recv() {}
    }
}

// One test only: the allocator counts every thread of this binary, so the scenarios run one after the other.
#[test]
fn broadcast_allocates_nothing_per_member() {
    let group = Group::new();
    let mut receivers = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..MEMBERS {
        let config = Config::builder()
            .limits(Limits::new(200, 400, 4096))
            .build();
        let (tx, rx) = watermark::channel::<Bytes>(config);
        handles.push(tx.clone());
        group.add(tx);
        receivers.push(rx);
    }
    // Warm-up: every member's queue and its receiver's stash get their storage, which they then swap.
    for _ in 0..3 {
        assert_eq!(group.broadcast(Bytes::from(vec![1; 100])).sent, MEMBERS);
        drain_all(&mut receivers);
    }

    // Writable members: one allocation at most, when the frame's first clone makes its storage shared.
    for round in 0..10u8 {
        let frame = Bytes::from(vec![round; 100]);
        let (allocations, report) = allocations_in(|| group.broadcast(frame));
        assert_eq!(report.sent, MEMBERS);
        assert!(
            allocations <= 2,
            "{allocations} allocations to send to {MEMBERS} members"
        );
        drain_all(&mut receivers);
    }

    // Unwritable members: skipped without allocating.
    for _ in 0..5 {
        assert_eq!(group.broadcast(Bytes::from(vec![2; 100])).sent, MEMBERS);
    }
    let frame = Bytes::from(vec![3; 100]);
    let (allocations, report) = allocations_in(|| group.broadcast(frame));
    assert_eq!(report.skipped, MEMBERS);
    assert!(
        allocations <= 2,
        "{allocations} allocations to skip {MEMBERS} members"
    );
    drain_all(&mut receivers);

    // Every member closed: pruned in one write pass; only the group's own vectors resize (a logarithmic number of
    // times), never once per member.
    for tx in &handles {
        tx.close();
    }
    let frame = Bytes::from(vec![4; 100]);
    let (allocations, report) = allocations_in(|| group.broadcast(frame));
    assert_eq!(report.pruned, MEMBERS);
    assert!(
        allocations <= 32,
        "{allocations} allocations to prune {MEMBERS} members"
    );
    assert!(group.is_empty());
}
